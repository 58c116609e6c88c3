"""The view's queries on both engines (SQLite with FTS5, PostgreSQL with tsvector): every
filter narrows, sorting follows the next deadline, pages are stable and complete, search
finds words in subjects and messages and treats the query as words, never as syntax."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from services.gateway.tests.view_messages import (
    NOW,
    breached,
    customer_reply,
    opened,
    started,
    status,
    triaged,
    warned,
)

from servicedesk_gateway.view.queries import BadCursor, Sort, TicketFilter
from servicedesk_gateway.view.store import GatewayView
from servicedesk_runtime.database import Database, DatabaseUrl


@pytest.fixture
def view(database_url: str) -> Iterator[GatewayView]:
    database = Database(DatabaseUrl.parse(database_url, "gateway"))
    yield GatewayView(database)
    database.close()


EVERYTHING = TicketFilter()


def references(view: GatewayView, where: TicketFilter = EVERYTHING, sort: str = "due") -> list[str]:
    page = view.queries.tickets(where, Sort.parse(sort), limit=500)
    return [ticket.reference for ticket in page.tickets]


@pytest.fixture
def desk(view: GatewayView) -> GatewayView:
    """Five tickets: due in 4 h, 1 h (warned), 30 min (breached), 2 h (waiting on the
    customer, who wrote back about a barcode), and one not triaged yet."""
    hours = {1: 4.0, 2: 1.0, 3: 0.5, 4: 2.0}
    tickets = {n: opened(n, NOW + timedelta(minutes=n)) for n in range(1, 6)}
    tickets[4] = opened(4, NOW + timedelta(minutes=4), channel="phone", organisation="Nordlys")
    for n, ticket in tickets.items():
        view.apply(ticket)
        if n in hours:
            view.apply(triaged(ticket, f"P{n}"), started(ticket, timedelta(hours=hours[n])))
    due_2 = tickets[2].data.received_at + timedelta(hours=1)
    due_3 = tickets[3].data.received_at + timedelta(minutes=30)
    view.apply(warned(tickets[2], due_2), warned(tickets[3], due_3), breached(tickets[3], due_3))
    later = NOW + timedelta(minutes=20)
    view.apply(status(tickets[4], "awaiting_reply", later))
    view.apply(customer_reply(tickets[4], "The barcode reader is a Zebra DS2208", later))
    return view


def test_the_next_deadline_orders_the_queue_and_no_deadline_comes_last(
    desk: GatewayView,
) -> None:
    # SD-3 breached: its clock no longer runs towards a deadline.
    by_due = references(desk)
    assert by_due[:3] == ["SD-000002", "SD-000004", "SD-000001"]
    assert set(by_due[3:]) == {"SD-000003", "SD-000005"}  # no deadline: by id among them
    assert references(desk, sort="-received")[0] == "SD-000005"
    assert references(desk, sort="priority")[:4] == [f"SD-00000{n}" for n in (1, 2, 3, 4)]


def test_every_filter_narrows(desk: GatewayView) -> None:
    assert references(desk, TicketFilter(breached=True)) == ["SD-000003"]
    assert references(desk, TicketFilter(at_risk=True)) == ["SD-000002"]  # 3 is past risk
    assert references(desk, TicketFilter(waiting_on_customer=True)) == ["SD-000004"]
    assert references(desk, TicketFilter(channel="phone")) == ["SD-000004"]
    assert references(desk, TicketFilter(organisation="Nordlys")) == ["SD-000004"]
    assert references(desk, TicketFilter(priority=["P1", "P3"])) == ["SD-000001", "SD-000003"]
    assert len(references(desk, TicketFilter(status=["open"]))) == 4
    assert references(desk, TicketFilter(agreement_id=uuid.uuid4())) == []
    assert len(references(desk, TicketFilter(unassigned=True))) == 5
    assert references(desk, TicketFilter(breached=True, channel="phone")) == []


def test_search_finds_words_of_subjects_and_messages(desk: GatewayView) -> None:
    assert references(desk, TicketFilter(text="zebra")) == ["SD-000004"]  # a reply
    assert references(desk, TicketFilter(text="Scanner 3")) == ["SD-000003"]
    assert references(desk, TicketFilter(text="SD-000005")) == ["SD-000005"]
    assert references(desk, TicketFilter(text="zebra scanner 1")) == []  # every word
    for syntax in ('"', "AND OR NOT", "*", "scanner)", "NEAR(a b)", "'; DROP TABLE x;--"):
        references(desk, TicketFilter(text=syntax))  # words, never FTS5 or SQL syntax


def test_pages_are_complete_and_never_repeat(view: GatewayView) -> None:
    tickets = [opened(n, NOW + timedelta(minutes=n % 7)) for n in range(1, 38)]  # ties
    view.apply(*tickets)
    for sort in ("received", "-received", "due", "priority", "-updated"):
        seen: list[str] = []
        cursor = None
        while True:
            page = view.queries.tickets(TicketFilter(), Sort.parse(sort), cursor, limit=5)
            seen += [t.reference for t in page.tickets]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == sorted(t.data.reference for t in tickets), sort
        assert len(seen) == len(set(seen)), sort


def test_a_cursor_from_elsewhere_is_refused(view: GatewayView) -> None:
    view.apply(*(opened(n) for n in range(1, 4)))
    page = view.queries.tickets(TicketFilter(), Sort.parse("received"), limit=1)
    assert page.next_cursor is not None
    with pytest.raises(BadCursor, match="pages the order 'received'"):
        view.queries.tickets(TicketFilter(), Sort.parse("due"), page.next_cursor)
    too_deep = base64.urlsafe_b64encode(b"[" * 10_000).decode()
    for garbage in ("", "abc", "W10", "bm90IGpzb24", page.next_cursor[:-2], too_deep):
        with pytest.raises(BadCursor):
            view.queries.tickets(TicketFilter(), Sort.parse("received"), garbage)


def test_a_reference_finds_the_ticket_as_its_id_does(view: GatewayView) -> None:
    ticket = opened(42)
    view.apply(ticket)
    by_id = view.queries.ticket(ticket.subject_id)
    assert by_id is not None
    assert view.queries.ticket("SD-000042") == by_id
    assert view.queries.ticket("sd-000042") == by_id
    assert view.queries.ticket("SD-000043") is None


def test_an_event_applied_twice_counts_once(view: GatewayView) -> None:
    ticket = opened(1)
    reply = customer_reply(ticket, "Still broken", NOW + timedelta(minutes=5))
    assert view.apply(ticket, reply) == 2
    assert view.apply(reply, ticket) == 0  # a relay republished them for a new broker
    shown = view.queries.ticket(ticket.subject_id)
    assert shown is not None
    assert shown.customer_replies == 1
    assert references(view, TicketFilter(text="still broken")) == ["SD-000001"]


def test_a_view_of_another_schema_version_is_dropped_for_a_rebuild(
    view: GatewayView, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servicedesk_gateway.view import store

    view.apply(opened(1))
    assert GatewayView(view.database).queries.ticket("SD-000001") is not None  # same version
    monkeypatch.setattr(store, "SCHEMA_VERSION", "a later one")
    rebuilt = GatewayView(view.database)
    assert rebuilt.queries.ticket("SD-000001") is None
    assert rebuilt.store.positions() == {}  # read again from the topics
    assert rebuilt.tables.version() == "a later one"
