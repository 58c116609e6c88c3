"""The composition every consuming service shares: event store, outbox relay, tracked
consumer, operations endpoints, extra background loops, and a clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from servicedesk_runtime.clock import Clock, SystemClock
from servicedesk_runtime.consumer import Handler, TrackedConsumer
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.kafka import (
    broker_incarnation,
    ensure_topics,
    new_producer,
    until_replaced,
)
from servicedesk_runtime.logs import configure_logging, get_logger
from servicedesk_runtime.metrics import SERVICE_UP
from servicedesk_runtime.ops import add_ops_routes, serve_http
from servicedesk_runtime.relay import OutboxRelay, RelayPositions, Translate
from servicedesk_runtime.settings import ServiceSettings
from servicedesk_runtime.store import ServiceStore

log = get_logger(__name__)

BackgroundLoop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class Service:
    """One running service. Build it, register what it consumes, then `run()`."""

    def __init__(self, name: str, settings: ServiceSettings, clock: Clock | None = None) -> None:
        self.name = name
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        url = DatabaseUrl.parse(settings.database_url_for(name), name)
        self.database = Database(url)
        self.store = ServiceStore(url, name)
        self.http = FastAPI(title=f"servicedesk {name}")
        self.stop = asyncio.Event()
        self.producer: AIOKafkaProducer | None = None
        self.relay: OutboxRelay | None = None
        self._consumer: TrackedConsumer | None = None
        self._on_commit: list[Callable[[], None]] = []

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Calls `callback` (in the event loop) after every batch the consumer commits."""
        self._on_commit.append(callback)

    def _committed(self) -> None:
        self.wake_relay()
        for callback in self._on_commit:
            callback()

    def wake_relay(self) -> None:
        """Something outside the consumer stored events: publish them now."""
        if self.relay is not None:
            self.relay.wake()

    def is_ready(self) -> bool:
        """Consuming, and its event store and relay working (each retries while not)."""
        return (
            self._consumer is not None
            and self._consumer.ready
            and self.relay is not None
            and self.relay.healthy
        )

    async def run(
        self,
        *,
        topics: Sequence[str],
        handlers: Mapping[str, Handler],
        translate: Translate,
        loops: Sequence[BackgroundLoop] = (),
    ) -> None:
        settings = self.settings
        bootstrap = settings.kafka_bootstrap_servers
        configure_logging(self.name, settings.log_level)
        _stop_on_signals(self.stop)
        await ensure_topics(bootstrap)
        incarnation = await broker_incarnation(bootstrap)
        log.info("starting", incarnation=incarnation, database=self.database.url.kind)
        self.producer = new_producer(bootstrap, self.name)
        await self.producer.start()
        self.relay = OutboxRelay(
            service=self.name,
            store=self.store,
            positions=RelayPositions(self.database),
            producer=self.producer,
            incarnation=incarnation,
            translate=translate,
            batch_max=settings.relay_batch_max,
            poll_interval=settings.poll_interval_seconds,
        )
        self._consumer = TrackedConsumer(
            service=self.name,
            bootstrap=bootstrap,
            topics=topics,
            handlers=handlers,
            store=self.store,
            producer=self.producer,
            incarnation=incarnation,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            batch_max=settings.consumer_batch_max,
            on_committed=self._committed,
            pacing=settings.fetch_pacing(),
        )
        add_ops_routes(self.http, self.name, self.is_ready)
        SERVICE_UP.set(0)
        tasks = [
            asyncio.create_task(self._consumer.run(self.stop), name="consumer"),
            asyncio.create_task(self.relay.run(self.stop), name="relay"),
            asyncio.create_task(
                serve_http(self.http, settings.http_host, settings.http_port, self.stop),
                name="http",
            ),
            *(asyncio.create_task(loop(self.stop)) for loop in loops),
            asyncio.create_task(_watch_incarnation(bootstrap, incarnation, self.stop)),
            asyncio.create_task(self._report_ready(), name="ready"),
        ]
        try:
            await _until_stopped_or_failed(tasks, self.stop)
        finally:
            self.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.producer.stop()
            self.store.close()
            self.database.close()
            SERVICE_UP.set(0)
            log.info("stopped")

    async def _report_ready(self) -> None:
        while not self.stop.is_set():
            SERVICE_UP.set(1 if self.is_ready() else 0)
            await asyncio.sleep(1)


async def _until_stopped_or_failed(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Returns when `stop` is set; re-raises the first task that fails."""
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    for task in done:
        if task is not stopper and task.exception() is not None:
            log.error("task_failed", task=task.get_name(), error=repr(task.exception()))
            raise task.exception()  # type: ignore[misc]


class BrokerReplaced(RuntimeError):
    """The broker lost its data under a running service (an embedded broker restarted)."""


async def _watch_incarnation(
    bootstrap: str, incarnation: str, stop: asyncio.Event, every: float = 10
) -> None:
    """Stops the service when the broker's incarnation changes under it: its recorded
    positions belong to the old broker, and a restart is how it recovers (republish the
    log, forget old positions), so let the supervisor restart it."""
    current = await until_replaced(bootstrap, incarnation, stop, every)
    if current is not None:
        raise BrokerReplaced(f"broker changed from {incarnation} to {current}; restart")


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
