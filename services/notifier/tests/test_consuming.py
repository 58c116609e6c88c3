"""The whole notifier on the real Tansu broker, a real store (SQLite and PostgreSQL) and a
real SMTP server: a batch applied again, or a message delivered again, sends no mail twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from eventsourcing.persistence import OperationalError

from servicedesk_contracts import Message, topics
from servicedesk_notifier.config import NotifierSettings
from servicedesk_notifier.domain import Delivery
from servicedesk_runtime.consumer import Handler
from servicedesk_runtime.kafka import ensure_topics
from servicedesk_runtime.service import Service
from servicedesk_runtime.store import ServiceStore
from servicedesk_runtime.tansu import EmbeddedBroker, free_port
from servicedesk_stack.mail_sink import MailSink

from .conftest import RunningNotifier, mail_id_of, message_ids, outcomes, ticket_opened, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


def settings(broker: EmbeddedBroker, database_url: str, sink: MailSink) -> NotifierSettings:
    return NotifierSettings(
        kafka_bootstrap_servers=broker.bootstrap,
        database_url=database_url,
        http_port=free_port(),
        smtp_port=sink.port,
        kafka_session_timeout_ms=2000,
        smtp_retry_max_wait_seconds=0.5,
    )


def publish(bootstrap: str, messages: list[Message], key: bytes = b"one-partition") -> None:
    """Publishes as one batch on one partition, so the notifier applies them together."""

    async def send() -> None:
        await ensure_topics(bootstrap)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
        await producer.start()
        try:
            sent = [
                await producer.send(topics.TICKETS, message.to_json(), key=key)
                for message in messages
            ]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    asyncio.run(send())


def confirmation_of(message: Message) -> uuid.UUID:
    return Delivery.create_id(message.event_id, "ticket_confirmation")


def drained(store: ServiceStore, expected: set[uuid.UUID]) -> Callable[[], bool]:
    """Every expected delivery has its outcome recorded: nothing more can go out."""
    return lambda: set(outcomes(store)) == expected


def failing_on(subject: str) -> Callable[[dict[str, Handler]], dict[str, Handler]]:
    """The TicketOpened handler raises for one subject: a handler error mid-batch."""

    def wrap(handlers: dict[str, Handler]) -> dict[str, Handler]:
        confirm = handlers["TicketOpened"]

        def handler(message: Message, uow: Any) -> None:
            if message.data.subject == subject:  # type: ignore[attr-defined]
                raise RuntimeError("a bug in the handler")
            confirm(message, uow)

        return {**handlers, "TicketOpened": handler}

    return wrap


def failing_first_commit(service: Service) -> None:
    """The first commit of a consumed batch loses its database: the batch is applied again."""
    save = service.store.save_with_tracking
    failed: list[bool] = []

    def save_once_failing(aggregates: Any, tracking: Any) -> None:
        if tracking is not None and not failed:
            failed.append(True)
            raise OperationalError("connection lost")
        save(aggregates, tracking)

    service.store.save_with_tracking = save_once_failing  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"wrap_handlers": failing_on("Request 5")}, id="handler-error"),
        pytest.param({"prepare": failing_first_commit}, id="failed-commit"),
    ],
)
def test_a_batch_applied_again_sends_no_mail_twice(
    broker: EmbeddedBroker,
    database_url: str,
    store: ServiceStore,
    sink: MailSink,
    fault: dict[str, Any],
) -> None:
    opened = [ticket_opened(n) for n in range(1, 11)]
    publish(broker.bootstrap, opened)
    notifier = RunningNotifier(settings(broker, database_url, sink), **fault).start()
    try:
        expected = {confirmation_of(o) for o in opened if o.data.subject != "Request 5"}
        if "prepare" in fault:
            expected.add(confirmation_of(opened[4]))
        wait_for(drained(store, expected), 60, f"{len(expected)} deliveries recorded")
    finally:
        notifier.stop()
    assert notifier.failure is None
    assert message_ids(sink) == {mail_id_of(store, d): 1 for d in expected}


def test_the_same_event_delivered_again_at_another_offset_sends_one_mail(
    broker: EmbeddedBroker, database_url: str, store: ServiceStore, sink: MailSink
) -> None:
    first, then = ticket_opened(1), ticket_opened(2)
    # The same TicketOpened (same event_id) twice, as a relay republishes it; then another
    # one after it on the same partition, so once that one is recorded both were applied.
    publish(broker.bootstrap, [first])
    notifier = RunningNotifier(settings(broker, database_url, sink)).start()
    try:
        wait_for(drained(store, {confirmation_of(first)}), 60, "the first delivery")
        publish(broker.bootstrap, [first, then])
        expected = {confirmation_of(first), confirmation_of(then)}
        wait_for(drained(store, expected), 60, "both deliveries recorded")
    finally:
        notifier.stop()
    assert notifier.failure is None
    assert message_ids(sink) == {mail_id_of(store, d): 1 for d in expected}
