"""Messages as the services publish them, for filling a view in tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday


def opened(n: int, at: datetime = NOW, **changes: Any) -> m.TicketOpened:
    data: dict[str, Any] = {
        "agreement_id": uuid.UUID(int=1),
        "reporter_email": "anna@acme.example",
        "reporter_name": "Anna",
        "organisation": "Acme",
        "channel": "email",
        "subject": f"Scanner {n} offline",
        "body": "Hall 2 cannot scan",
        "category": "incident",
        "impact": "one user",
        "urgency": "high",
        "reference": f"SD-{n:06d}",
        "received_at": at,
        **changes,
    }
    return m.TicketOpened.create(
        producer="intake", subject_id=uuid.uuid4(), data=data, occurred_at=at
    )


def triaged(ticket: m.TicketOpened, priority: str, matrix: str = "Z-P1P4") -> m.TicketTriaged:
    return m.TicketTriaged.create(
        producer="triage",
        subject_id=ticket.subject_id,
        data={
            "reference": ticket.data.reference,
            "agreement_id": ticket.data.agreement_id,
            "category": ticket.data.category,
            "priority": priority,
            "matrix": matrix,
            "impact": "high",
            "urgency": "high",
            "reason": f"{matrix}: high x high",
            "opened_at": ticket.data.received_at,
        },
        occurred_at=ticket.occurred_at,
    )


def _clock(ticket: m.TicketOpened, kind: str) -> dict[str, Any]:
    return {"clock_id": uuid.uuid4(), "reference": ticket.data.reference, "kind": kind}


def started(
    ticket: m.TicketOpened, due_in: timedelta, kind: str = "response", priority: str = "P2"
) -> m.SlaClockStarted:
    at = ticket.data.received_at
    return m.SlaClockStarted.create(
        producer="sla-timer",
        subject_id=ticket.subject_id,
        data={
            **_clock(ticket, kind),
            "priority": priority,
            "target_minutes": due_in.total_seconds() / 60,
            "started_at": at,
            "due_at": at + due_in,
        },
        occurred_at=at,
    )


def warned(ticket: m.TicketOpened, due: datetime, kind: str = "response") -> m.SlaWarning:
    return m.SlaWarning.create(
        producer="sla-timer",
        subject_id=ticket.subject_id,
        data={
            **_clock(ticket, kind),
            "priority": "P2",
            "threshold": 0.75,
            "due_at": due,
            "warned_at": due - timedelta(minutes=15),
        },
        occurred_at=due - timedelta(minutes=15),
    )


def breached(ticket: m.TicketOpened, due: datetime, kind: str = "response") -> m.SlaBreached:
    return m.SlaBreached.create(
        producer="sla-timer",
        subject_id=ticket.subject_id,
        data={**_clock(ticket, kind), "priority": "P2", "due_at": due, "breached_at": due},
        occurred_at=due,
    )


def status(
    ticket: m.TicketOpened, to: str, at: datetime, by: str = "mette"
) -> m.TicketStatusChanged:
    return m.TicketStatusChanged.create(
        producer="intake",
        subject_id=ticket.subject_id,
        data={
            "reference": ticket.data.reference,
            "from_status": "open",
            "to_status": to,
            "changed_by": by,
            "reason": "asked the customer for the serial number",
            "changed_at": at,
        },
        occurred_at=at,
    )


def customer_reply(ticket: m.TicketOpened, body: str, at: datetime) -> m.CustomerReplied:
    return m.CustomerReplied.create(
        producer="intake",
        subject_id=ticket.subject_id,
        data={
            "reference": ticket.data.reference,
            "author_email": ticket.data.reporter_email,
            "body": body,
            "replied_at": at,
        },
        occurred_at=at,
    )


def confirmation_sent(ticket: m.TicketOpened) -> m.NotificationSent:
    return m.NotificationSent.create(
        producer="notifier",
        subject_id=uuid.uuid4(),
        data={
            "notification_id": uuid.uuid4(),
            "kind": "ticket_confirmation",
            "recipient": ticket.data.reporter_email,
            "subject_line": f"[{ticket.data.reference}] We received your request",
            "caused_by": ticket.event_id,
        },
        occurred_at=ticket.data.received_at + timedelta(seconds=2),
    )


def time_logged(ticket: m.TicketOpened, minutes: int, at: datetime) -> m.TimeLogged:
    return m.TimeLogged.create(
        producer="intake",
        subject_id=ticket.subject_id,
        data={
            "agent": "mette",
            "started_at": at,
            "duration_minutes": minutes,
            "entry_id": uuid.uuid4(),
            "reference": ticket.data.reference,
            "agreement_id": ticket.data.agreement_id,
            "category": ticket.data.category,
        },
        occurred_at=at + timedelta(minutes=minutes),
    )


TOPIC_OF_PRODUCER = {
    "intake": topics.TICKETS,
    "triage": topics.TRIAGE,
    "sla-timer": topics.SLA,
    "notifier": topics.NOTIFICATIONS,
}


def topic_of(message: Message) -> str:
    if isinstance(message, m.AgreementRegistered):
        return topics.AGREEMENTS
    if isinstance(message, m.StatementIssued):
        return topics.BILLING
    return TOPIC_OF_PRODUCER[message.producer]


async def publish(bootstrap: str, *messages: Message) -> None:
    """As the services' relays do: each on its topic, keyed by subject (one ticket's
    events stay in one partition of each topic)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for message in messages:
            await producer.send_and_wait(
                topic_of(message), message.to_json(), key=str(message.subject_id).encode()
            )
    finally:
        await producer.stop()


def statement(agreement_id: uuid.UUID, customer: str, month: str = "2026-10") -> dict[str, Any]:
    """An issued statement of nothing (the gateway only stores and shows it)."""
    return {
        "statement_id": str(uuid.uuid4()),
        "agreement_id": str(agreement_id),
        "month": month,
        "customer": customer,
        "billing_model": "monthly_invoice",
        "currency": "EUR",
        "hourly_rate_cents": 9500,
        "lines": [],
        "minutes_billed": 0,
        "subtotal_cents": 0,
        "vat_rate": "0.21",
        "vat_cents": 0,
        "total_cents": 0,
    }
