"""sla-timer's stored events -> SLA messages."""

from __future__ import annotations

from typing import Any

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_runtime.relay import message_for
from servicedesk_sla_timer.domain import SlaClock

PRODUCER = "sla-timer"

_MESSAGES: dict[type[Any], type[Message]] = {
    SlaClock.Started: m.SlaClockStarted,
    SlaClock.Paused: m.SlaClockPaused,
    SlaClock.Resumed: m.SlaClockResumed,
    SlaClock.Retargeted: m.SlaClockRetargeted,
    SlaClock.Warned: m.SlaWarning,
    SlaClock.Stopped: m.SlaClockStopped,
    SlaClock.Breached: m.SlaBreached,
}


def translate(event: Any) -> tuple[str, Message] | None:
    message = _MESSAGES.get(type(event))
    if message is None:
        return None  # registration, triage notes and observations stay inside
    return topics.SLA, message_for(
        event, message, PRODUCER, clock_id=event.originator_id, subject_id=event.ticket_id
    )
