"""sla-timer's stored events -> SLA messages."""

from __future__ import annotations

from typing import Any

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_runtime.relay import envelope_of
from servicedesk_sla_timer.domain import SlaClock

PRODUCER = "sla-timer"


def translate(event: Any) -> tuple[str, Message] | None:
    envelope = {**envelope_of(event, PRODUCER), "subject_id": getattr(event, "ticket_id", None)}
    common = {"clock_id": event.originator_id}
    if isinstance(event, SlaClock.Started):
        data = m.SlaClockStartedData(
            **common,
            reference=event.reference,
            kind=event.kind,
            priority=event.priority,
            target_minutes=event.target_minutes,
            started_at=event.started_at,
            due_at=event.due_at,
        )
        return topics.SLA, m.SlaClockStarted(**envelope, data=data)
    if isinstance(event, SlaClock.Stopped):
        stopped = m.SlaClockStoppedData(
            **common,
            reference=event.reference,
            kind=event.kind,
            priority=event.priority,
            stopped_at=event.stopped_at,
            due_at=event.due_at,
            met=event.met,
        )
        return topics.SLA, m.SlaClockStopped(**envelope, data=stopped)
    if isinstance(event, SlaClock.Breached):
        breached = m.SlaBreachedData(
            **common,
            reference=event.reference,
            kind=event.kind,
            priority=event.priority,
            due_at=event.due_at,
            breached_at=event.breached_at,
        )
        return topics.SLA, m.SlaBreached(**envelope, data=breached)
    return None
