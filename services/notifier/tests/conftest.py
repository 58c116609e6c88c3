"""The notifier's real parts for its integration tests: a SQLite file or a PostgreSQL
schema, an SMTP sink, and the service itself running in a thread of the test."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from eventsourcing.utils import get_topic

from servicedesk_contracts import messages as m
from servicedesk_notifier.application import Notifier
from servicedesk_notifier.config import NotifierSettings
from servicedesk_notifier.domain import Delivery
from servicedesk_notifier.main import NAME, dispatcher_for
from servicedesk_notifier.translate import translate
from servicedesk_runtime.consumer import Handler
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.service import Service
from servicedesk_runtime.store import ServiceStore
from servicedesk_runtime.tansu import free_port
from servicedesk_stack.mail_sink import MailSink
from servicedesk_stack.waiting import wait_for

OUTCOME_TOPICS = {get_topic(Delivery.Dispatched): "sent", get_topic(Delivery.Failed): "failed"}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'notifier.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"t{uuid.uuid4().hex[:8]}_notifier"
    yield f"{base}?schema={schema}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """The notifier's plain tables; on PostgreSQL it makes the schema the store needs."""
    opened = Database(DatabaseUrl.parse(database_url, NAME))
    yield opened
    opened.close()


@pytest.fixture
def store(database_url: str, database: Database) -> Iterator[ServiceStore]:
    opened = ServiceStore(DatabaseUrl.parse(database_url, NAME), NAME)
    yield opened
    opened.close()


@pytest.fixture
def sink() -> Iterator[MailSink]:
    with MailSink(free_port()) as running:
        yield running


def ticket_opened(n: int, subject: str | None = None) -> m.TicketOpened:
    return m.TicketOpened.create(
        producer="intake",
        subject_id=uuid.uuid4(),
        data={
            "agreement_id": uuid.uuid4(),
            "reporter_email": f"user{n}@nordlicht.de",
            "reporter_name": f"User {n}",
            "organisation": "Nordlicht GmbH",
            "channel": "email",
            "subject": subject or f"Request {n}",
            "body": "Something is wrong",
            "category": "incident",
            "impact": "high",
            "urgency": "medium",
            "reference": f"SD-{n:06d}",
            "received_at": datetime.now(UTC),
        },
    )


def outcomes(store: ServiceStore) -> dict[uuid.UUID, list[str]]:
    """Every recorded outcome per delivery, in order."""
    found: dict[uuid.UUID, list[str]] = {}
    for notification in store.process_recorder.select_notifications(
        1, 100_000, topics=list(OUTCOME_TOPICS)
    ):
        delivery_id = uuid.UUID(str(notification.originator_id))
        found.setdefault(delivery_id, []).append(OUTCOME_TOPICS[notification.topic])
    return found


def message_ids(sink: MailSink) -> Counter[str]:
    return Counter(str(mail["Message-ID"]) for mail in sink.messages)


class RunningNotifier:
    """The notifier as `main.run` composes it (consumer, dispatcher, relay), in a thread of
    the test, with hooks to break its parts on purpose."""

    def __init__(
        self,
        settings: NotifierSettings,
        wrap_handlers: Callable[[dict[str, Handler]], dict[str, Handler]] = lambda h: h,
        prepare: Callable[[Service], None] = lambda _: None,
    ) -> None:
        self.settings = settings
        self.wrap_handlers = wrap_handlers
        self.prepare = prepare
        self.service: Service | None = None
        self.failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RunningNotifier:
        self._thread.start()
        wait_for(lambda: self.service is not None and self.service.is_ready(), 60, "ready")
        return self

    def stop(self) -> None:
        if self._loop is not None and self.service is not None:
            self._loop.call_soon_threadsafe(self.service.stop.set)
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the notifier did not stop"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # reported by the test, not lost in the thread
            self.failure = error

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        service = Service(NAME, self.settings)
        self.prepare(service)
        self.service = service
        await service.run(
            topics=["servicedesk.tickets.v1", "servicedesk.sla.v1"],
            handlers=self.wrap_handlers(Notifier(self.settings.alert_email).handlers()),
            translate=translate,
            loops=[dispatcher_for(service, self.settings).run],
        )


def mail_id_of(store: ServiceStore, delivery_id: uuid.UUID) -> str:
    """The Message-ID a delivery's mail carries (from servicedesk@example.com)."""
    delivery = store.repository.get(delivery_id)
    assert isinstance(delivery, Delivery)
    return delivery.message_id("example.com")
