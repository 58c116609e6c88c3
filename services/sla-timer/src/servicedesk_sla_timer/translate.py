"""sla-timer's stored events -> SLA messages."""

from __future__ import annotations

from typing import Any

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_contracts.envelope import Data
from servicedesk_runtime.relay import envelope_of
from servicedesk_sla_timer.domain import SlaClock

PRODUCER = "sla-timer"

# Stored clock event -> (message, its data model, the data fields taken from the event).
_COMMON = ("reference", "kind", "priority")
_MESSAGES: dict[type[Any], tuple[type[Message], type[Data], tuple[str, ...]]] = {
    SlaClock.Started: (
        m.SlaClockStarted,
        m.SlaClockStartedData,
        ("target_minutes", "started_at", "due_at"),
    ),
    SlaClock.Paused: (m.SlaClockPaused, m.SlaClockPausedData, ("paused_at", "spent_minutes")),
    SlaClock.Resumed: (m.SlaClockResumed, m.SlaClockResumedData, ("resumed_at", "due_at")),
    SlaClock.Retargeted: (
        m.SlaClockRetargeted,
        m.SlaClockRetargetedData,
        ("target_minutes", "spent_minutes", "retargeted_at", "due_at"),
    ),
    SlaClock.Warned: (m.SlaWarning, m.SlaWarningData, ("threshold", "due_at", "warned_at")),
    SlaClock.Stopped: (
        m.SlaClockStopped,
        m.SlaClockStoppedData,
        ("stopped_at", "due_at", "met", "spent_minutes"),
    ),
    SlaClock.Breached: (m.SlaBreached, m.SlaBreachedData, ("due_at", "breached_at")),
}


def translate(event: Any) -> tuple[str, Message] | None:
    found = _MESSAGES.get(type(event))
    if found is None:
        return None  # registration, triage notes and observations stay inside
    message, data_model, fields = found
    data = data_model.model_validate(
        {
            "clock_id": event.originator_id,
            **{name: getattr(event, name) for name in (*_COMMON, *fields)},
        }
    )
    envelope = {**envelope_of(event, PRODUCER), "subject_id": event.ticket_id}
    return topics.SLA, message(**envelope, data=data)
