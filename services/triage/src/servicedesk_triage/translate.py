"""Triage's stored events -> `TicketTriaged` messages."""

from __future__ import annotations

from typing import Any

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_runtime.relay import message_for
from servicedesk_triage.domain import Triage

PRODUCER = "triage"


def translate(event: Any) -> tuple[str, Message] | None:
    if not isinstance(event, Triage.Decided):
        return None
    return topics.TRIAGE, message_for(event, m.TicketTriaged, PRODUCER, subject_id=event.ticket_id)
