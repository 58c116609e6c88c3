"""Triage's stored events -> `TicketTriaged` messages."""

from __future__ import annotations

from typing import Any

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_runtime.relay import envelope_of
from servicedesk_triage.domain import Triage

PRODUCER = "triage"


def translate(event: Any) -> tuple[str, Message] | None:
    if not isinstance(event, Triage.Decided):
        return None
    envelope = {**envelope_of(event, PRODUCER), "subject_id": event.ticket_id}
    data = m.TicketTriagedData(
        reference=event.reference,
        agreement_id=event.agreement_id,
        category=event.category,
        priority=event.priority,
        matrix=event.matrix,
        impact=event.impact,
        urgency=event.urgency,
        requested_priority=event.requested_priority,
        reason=event.reason,
        opened_at=event.opened_at,
    )
    return topics.TRIAGE, m.TicketTriaged(**envelope, data=data)
