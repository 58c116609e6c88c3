"""The gateway's follower on the real embedded broker: "caught up" means everything the
topics held at its start is in the view, whatever end offsets the broker reports."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_gateway.follower import TopicFollower
from servicedesk_gateway.read_model import ReadModel
from servicedesk_runtime.kafka import ensure_topics
from servicedesk_runtime.tansu import EmbeddedBroker

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def opened(n: int) -> m.TicketOpened:
    return m.TicketOpened.create(
        producer="intake",
        subject_id=uuid.uuid4(),
        data={
            "agreement_id": uuid.uuid4(),
            "reporter_email": "anna@acme.example",
            "reporter_name": "Anna",
            "organisation": "Acme",
            "channel": "email",
            "subject": f"Request {n}",
            "body": "Hall 2",
            "category": "incident",
            "impact": "high",
            "urgency": "high",
            "reference": f"SD-{n:06d}",
            "received_at": NOW,
        },
    )


async def publish_in_one_batch(bootstrap: str, messages: list[Message]) -> None:
    """All on one partition in one record batch: Tansu then reports the partition's end
    as 1 (its first offset + 1)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=1000,
        max_batch_size=8 << 20,
        max_request_size=16 << 20,
    )
    await producer.start()
    try:
        sent = [
            await producer.send(topics.TICKETS, message.to_json(), partition=0)
            for message in messages
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


class RecordingView(ReadModel):
    """Counts what is applied after the follower said it had caught up."""

    def __init__(self) -> None:
        super().__init__()
        self.follower: TopicFollower | None = None
        self.after_caught_up = 0

    def apply(self, message: Message) -> None:
        if self.follower is not None and self.follower.caught_up:
            self.after_caught_up += 1
        super().apply(message)


async def test_the_view_is_caught_up_only_once_it_holds_everything_published_before() -> None:
    count = 3000
    with EmbeddedBroker() as broker:
        await ensure_topics(broker.bootstrap)
        await publish_in_one_batch(broker.bootstrap, [opened(n) for n in range(count)])
        view = RecordingView()
        follower = TopicFollower(broker.bootstrap, view, max_records=1000)
        view.follower = follower
        stop = asyncio.Event()
        running = asyncio.create_task(follower.run(stop))
        try:
            async with asyncio.timeout(60):
                while not follower.caught_up:  # noqa: ASYNC110  (a flag, polled)
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await running
        assert view.applied == count
        assert view.after_caught_up == 0
