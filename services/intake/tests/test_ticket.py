"""Tickets and reference numbers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from servicedesk_intake.domain import ReferenceSequence, Ticket, TicketRuleBroken

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def ticket() -> Ticket:
    request = {"agreement_id": str(uuid.uuid4()), "category": "incident"}
    return Ticket(
        ticket_id=uuid.uuid4(),
        reference="SD-000007",
        request=request,
        received_at=NOW,
        request_id=uuid.uuid4(),
    )


def test_references_are_sequential_and_never_reused() -> None:
    sequence = ReferenceSequence()
    issued = [sequence.next_reference() for _ in range(3)]
    assert issued == ["SD-000001", "SD-000002", "SD-000003"]
    assert len(set(issued)) == 3


def test_a_customer_reply_reopens_a_closed_ticket() -> None:
    t = ticket()
    t.change_status("closed", "mette", "solved", NOW)
    t.add_customer_reply("jens@hygge.dk", "It broke again", NOW)
    assert t.status == "open"
    kinds = [type(e).__name__ for e in t.collect_events()]
    assert kinds[-2:] == ["CustomerReplied", "StatusChanged"]


def test_a_customer_reply_to_a_ticket_awaiting_it_puts_it_back_in_progress() -> None:
    t = ticket()
    t.change_status("in_progress", "mette", "", NOW)
    t.change_status("awaiting_reply", "mette", "asked for logs", NOW)
    t.add_customer_reply("jens@hygge.dk", "Logs attached", NOW)
    assert t.status == "in_progress"
    *_, replied, changed = t.collect_events()
    assert type(replied).__name__ == "CustomerReplied"
    assert (changed.from_status, changed.to_status) == ("awaiting_reply", "in_progress")
    assert changed.changed_by == "jens@hygge.dk"
    assert changed.changed_at == NOW


@pytest.mark.parametrize("status", ["open", "in_progress", "on_hold", "planned"])
def test_a_customer_reply_leaves_other_statuses_as_they_are(status: str) -> None:
    t = ticket()
    if status != "open":
        t.change_status(status, "mette", "", NOW)
    t.add_customer_reply("jens@hygge.dk", "Any news?", NOW)
    assert t.status == status
    assert type(t.collect_events()[-1]).__name__ == "CustomerReplied"


def test_changing_to_the_same_status_is_refused() -> None:
    with pytest.raises(TicketRuleBroken, match="already open"):
        ticket().change_status("open", "mette", "", NOW)


def test_an_agent_cannot_reply_on_a_closed_ticket() -> None:
    t = ticket()
    t.change_status("closed", "mette", "", NOW)
    with pytest.raises(TicketRuleBroken) as refused:
        t.reply_as_agent("mette", "hello", NOW)
    assert refused.value.reason == "ticket_closed"
