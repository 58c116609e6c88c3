"""Intake's stored events -> the ticket messages it publishes."""

from __future__ import annotations

from typing import Any

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_intake.domain import Ticket
from servicedesk_runtime.relay import envelope_of

PRODUCER = "intake"


def translate(event: Any) -> tuple[str, Message] | None:
    if not isinstance(event, Ticket.Event):
        return None  # reference numbers and receipts stay inside intake
    message = _message(event)
    return (topics.TICKETS, message) if message is not None else None


def _message(event: Any) -> Message | None:
    envelope = envelope_of(event, PRODUCER)
    if isinstance(event, Ticket.Opened):
        data = m.TicketOpenedData(
            **event.request, reference=event.reference, received_at=event.received_at
        )
        return m.TicketOpened(**envelope, data=data, correlation_id=event.request_id)
    if isinstance(event, Ticket.StatusChanged):
        return m.TicketStatusChanged(
            **envelope,
            data=m.TicketStatusChangedData(
                reference=event.reference,
                from_status=event.from_status,
                to_status=event.to_status,
                changed_by=event.changed_by,
                reason=event.reason,
                changed_at=event.changed_at,
            ),
        )
    if isinstance(event, Ticket.AgentReplied):
        return m.AgentReplied(
            **envelope,
            data=m.AgentRepliedData(
                reference=event.reference,
                agent=event.agent,
                body=event.body,
                replied_at=event.replied_at,
            ),
        )
    if isinstance(event, Ticket.CustomerReplied):
        return m.CustomerReplied(
            **envelope,
            data=m.CustomerRepliedData(
                reference=event.reference,
                author_email=event.author_email,
                body=event.body,
                replied_at=event.replied_at,
            ),
        )
    if isinstance(event, Ticket.TimeLogged):
        return m.TimeLogged(
            **envelope,
            data=m.TimeLoggedData(
                entry_id=event.entry_id,
                agent=event.agent,
                started_at=event.started_at,
                duration_minutes=event.duration_minutes,
                work_type=event.work_type,
                billable=event.billable,
                reference=event.reference,
                agreement_id=event.agreement_id,
                category=event.category,
            ),
        )
    return None
