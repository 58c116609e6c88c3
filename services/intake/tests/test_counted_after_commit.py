"""Intake counts opened tickets and refusals when they are committed, not when a handler
that may run again (a retried batch) meets them."""

from __future__ import annotations

import uuid

import pytest

from servicedesk_contracts import messages as m
from servicedesk_runtime.consumer import Rejected
from servicedesk_runtime.metrics import CATALOGUE
from servicedesk_runtime.store import ServiceStore

from .test_intake import NOW, intake, open_ticket

__all__ = ["intake"]  # the fixture, shared with the intake tests


def sample(name: str, **labels: str) -> float:
    return CATALOGUE.get_sample_value(name, labels) or 0.0


def test_an_opened_ticket_and_a_refusal_are_counted_once_per_commit(
    intake: tuple[ServiceStore, dict[str, object]],
) -> None:
    store, handlers = intake
    opened = sample("servicedesk_tickets_opened_total", channel="email")
    open_ticket(store, handlers)
    assert sample("servicedesk_tickets_opened_total", channel="email") == opened + 1

    refused = sample("servicedesk_ticket_requests_rejected_total", reason="unknown_ticket")
    change = m.ChangeTicketStatus.create(
        producer="gateway",
        subject_id=uuid.uuid4(),
        occurred_at=NOW,
        data={"status": "in_progress", "changed_by": "mette"},
    )
    thrown_away = store.unit_of_work()
    with pytest.raises(Rejected):
        handlers["ChangeTicketStatus"](change, thrown_away)  # type: ignore[operator]
    assert sample("servicedesk_ticket_requests_rejected_total", reason="unknown_ticket") == refused
    uow = store.unit_of_work()
    with pytest.raises(Rejected):
        handlers["ChangeTicketStatus"](change, uow)  # type: ignore[operator]
    uow.commit()  # the consumer commits the batch after dead-lettering the refusal
    assert (
        sample("servicedesk_ticket_requests_rejected_total", reason="unknown_ticket") == refused + 1
    )
