"""Intake's stored events -> the ticket messages it publishes."""

from __future__ import annotations

from typing import Any

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_intake.domain import Ticket
from servicedesk_intake.inbox import Contact, InboundMail
from servicedesk_runtime.relay import message_for

PRODUCER = "intake"

# Events whose attributes are named like their message's data fields.
_MESSAGES: dict[type[Any], type[Message]] = {
    Ticket.StatusChanged: m.TicketStatusChanged,
    Ticket.PriorityChangeRequested: m.TicketPriorityChangeRequested,
    Ticket.AgentReplied: m.AgentReplied,
    Ticket.CustomerReplied: m.CustomerReplied,
    Ticket.TimeLogged: m.TimeLogged,
    Ticket.Assigned: m.TicketAssigned,
    Ticket.InternalNoteAdded: m.InternalNoteAdded,
    Ticket.Linked: m.TicketLinked,
    Contact.Registered: m.ContactRegistered,
}


def translate(event: Any) -> tuple[str, Message] | None:
    if isinstance(event, Ticket.Opened):
        opened = message_for(
            event,
            m.TicketOpened,
            PRODUCER,
            **event.request,
            reference=event.reference,
            received_at=event.received_at,
        )
        return topics.TICKETS, opened.model_copy(update={"correlation_id": event.request_id})
    if isinstance(event, InboundMail.Received):
        # Intake's command to itself: decide this stored mail (on its own partition key).
        return topics.INBOUND, message_for(event, m.ReceiveMail, PRODUCER)
    if isinstance(event, InboundMail.Filed):
        filed = message_for(
            event,
            m.MailFiled,
            PRODUCER,
            mail_id=event.originator_id,
            filed_as=event.as_,
            filed_by=getattr(event, "by", None),
        )
        return topics.TICKETS, filed
    if isinstance(event, InboundMail.SetAside):
        set_aside = message_for(
            event,
            m.MailSetAside,
            PRODUCER,
            **event.facts,
            mail_id=event.originator_id,
            reason=event.reason,
            detail=event.detail,
        )
        return topics.TICKETS, set_aside
    message = _MESSAGES.get(type(event))
    if message is None:
        return None  # reference numbers and receipts stay inside intake
    return topics.TICKETS, message_for(event, message, PRODUCER)
