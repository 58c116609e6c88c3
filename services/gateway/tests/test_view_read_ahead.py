"""The view reads a batch's tickets ahead, together, and writes its timeline rows together,
instead of two round trips per ticket and one per event; what it shows is exactly what
applying the same messages one by one shows, on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from libs.runtime.tests.exactly_once_kit import Feed
from services.gateway.tests.view_messages import opened, started, triaged

from servicedesk_contracts import Message, topics
from servicedesk_gateway.view.store import GatewayView
from servicedesk_runtime.database import Database, DatabaseUrl


@pytest.fixture
def views(database_url: str) -> Iterator[tuple[GatewayView, GatewayView]]:
    """Two views of their own: one fed batches as the consumer feeds them, one fed one
    message per transaction."""
    made = []
    for name in ("gateway", "gateway-one-by-one"):
        database = Database(DatabaseUrl.parse(database_url, name))
        made.append((database, GatewayView(database)))
    yield made[0][1], made[1][1]
    for database, _ in made:
        database.close()


TOPIC_OF = {
    "TicketOpened": topics.TICKETS,
    "TicketTriaged": topics.TRIAGE,
    "SlaClockStarted": topics.SLA,
}


class Consumer:
    """The gateway's real consumer (`TrackedConsumer`) on a view, fed one batch per topic
    as the broker hands them out, at rising offsets."""

    def __init__(self, view: GatewayView) -> None:
        self.view = view
        self.feeds = {t: Feed(view.store, view.handlers, t) for t in set(TOPIC_OF.values())}

    async def apply(self, messages: list[Message]) -> int:
        """Applies `messages`, a batch per topic; returns the tickets read on their own
        (each one two round trips) instead of ahead."""
        alone = 0
        read_one = self.view.projector._read_ticket

        def counted(*args: Any) -> Any:
            nonlocal alone
            alone += 1
            return read_one(*args)

        self.view.projector._read_ticket = counted  # type: ignore[method-assign,assignment]
        by_topic: dict[str, list[Message]] = {}
        for message in messages:
            by_topic.setdefault(TOPIC_OF[message.event_type], []).append(message)
        for topic, batch in by_topic.items():
            await self.feeds[topic].deliver(batch)
        return alone


def batch(tickets: list[Any]) -> list[Message]:
    messages: list[Message] = []
    for ticket in tickets:
        messages += [ticket, triaged(ticket, "P2"), started(ticket, timedelta(hours=4))]
    return messages


def shown(view: GatewayView, messages: list[Message]) -> list[Any]:
    tickets = [view.queries.ticket(m.subject_id) for m in messages[::3]]
    return [(t.to_doc(), view.queries.ticket_events(t)) if t is not None else None for t in tickets]


async def test_a_batch_reads_its_tickets_ahead_and_shows_what_one_by_one_shows(
    views: tuple[GatewayView, GatewayView],
) -> None:
    fed, one_by_one = views
    consumer = Consumer(fed)
    tickets = [opened(n) for n in range(30)]
    messages = batch(tickets)
    assert await consumer.apply(messages) == 0
    for message in messages:
        one_by_one.apply(message)
    assert shown(fed, messages) == shown(one_by_one, messages)
    assert {t[0]["priority"] for t in shown(fed, messages)} == {"P2"}
    # The same batch again (a relay republishing after a broker restart): its tickets are
    # read ahead, none is written back, and nothing they show changes.
    before = shown(fed, messages)
    written: list[int] = []
    write = fed.projector._write_tickets
    fed.projector._write_tickets = lambda uow, changed: (
        written.append(len(changed))
        or write(  # type: ignore[method-assign]
            uow, changed
        )
    )
    assert await consumer.apply(messages) == 0
    assert shown(fed, messages) == before
    assert written == []
    # Tickets changed again in a later batch are read from their rows, not made anew.
    again = [triaged(ticket, "P1") for ticket in tickets]
    assert await consumer.apply(list(again)) == 0
    assert written == [len(tickets)]
    assert {t[0]["priority"] for t in shown(fed, messages)} == {"P1"}
    assert all(len(t[1]) == 4 for t in shown(fed, messages))
