"""The gateway's Kafka side, one broker incarnation at a time.

For each incarnation (the broker's cluster id) the gateway builds a fresh view with a new
follower and publishes its stored commands with an outbox relay whose position belongs to
that incarnation. When the broker is replaced (the embedded broker restarted: new cluster
id, empty topics) both are thrown away and started again against the new broker: the relay
republishes every stored command (same `event_id`s, consumers drop duplicates) and the view
is rebuilt from offset 0 while `/health` says 503.

Why in the process and not by exiting, as the services do: the gateway holds no consumer
positions that could be wrong, its HTTP side keeps accepting commands (they are stored)
while the view is rebuilt, and it needs no supervisor to come back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaProducer

from servicedesk_gateway.follower import TopicFollower
from servicedesk_gateway.outbox import translate
from servicedesk_gateway.read_model import ReadModel
from servicedesk_runtime.kafka import (
    broker_incarnation,
    ensure_topics,
    new_producer,
    until_replaced,
)
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.relay import OutboxRelay, RelayPositions
from servicedesk_runtime.retry import Backoff, Stopped, retry
from servicedesk_runtime.store import ServiceStore

log = get_logger(__name__)
MAX_BACKOFF_SECONDS = 30.0
STOP_GRACE_SECONDS = 5.0
T = TypeVar("T")


class BrokerSide:
    """Runs follower and relay for the current broker incarnation; `show` receives each
    new view so the HTTP side reads from it."""

    def __init__(
        self,
        *,
        bootstrap: str,
        store: ServiceStore,
        positions: RelayPositions,
        show: Callable[[ReadModel], None],
        relay_batch_max: int = 500,
        poll_interval: float = 0.05,
        check_every: float = 2.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.store = store
        self.positions = positions
        self.show = show
        self.relay_batch_max = relay_batch_max
        self.poll_interval = poll_interval
        self.check_every = check_every
        self.incarnation: str | None = None
        self._follower: TopicFollower | None = None
        self._relay: OutboxRelay | None = None

    def ready(self) -> bool:
        """The view holds everything the current broker had when following began."""
        return self._follower is not None and self._follower.caught_up

    def wake_relay(self) -> None:
        """A command was stored: publish it now rather than at the next poll."""
        if self._relay is not None:
            self._relay.wake()

    async def run(self, stop: asyncio.Event) -> None:
        """Follows one incarnation after another until `stop`; a failed round (broker
        unreachable too long, a follower error) is logged and started again after a
        growing pause, with `/health` at 503 meanwhile."""
        with contextlib.suppress(Stopped):
            while not stop.is_set():
                await retry(
                    lambda: self._follow_one_incarnation(stop),
                    retry_on=(Exception,),
                    stop=stop,
                    what="gateway broker side",
                    backoff=Backoff(first=1.0, longest=MAX_BACKOFF_SECONDS),
                )

    async def _follow_one_incarnation(self, stop: asyncio.Event) -> None:
        incarnation = await _unless_stopped(self._connect(), stop)
        if incarnation is None:
            return
        producer = new_producer(self.bootstrap, "gateway")
        await producer.start()
        try:
            await self._run_incarnation(incarnation, producer, stop)
        finally:
            await producer.stop()

    async def _run_incarnation(
        self, incarnation: str, producer: AIOKafkaProducer, stop: asyncio.Event
    ) -> None:
        view = ReadModel()
        self._follower = TopicFollower(self.bootstrap, view)
        self.show(view)
        self.incarnation = incarnation
        log.info("following_broker", incarnation=incarnation)
        done = asyncio.Event()  # this incarnation is over: replaced, stopping or failed
        tasks = [
            asyncio.create_task(self._follower.run(done), name="follower"),
            asyncio.create_task(self._keep_relaying(incarnation, producer, done), name="relay"),
            asyncio.create_task(self._until_replaced(incarnation, done), name="watch"),
        ]
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._follower = None  # not ready from here on
            done.set()
            stopping.cancel()
            # Each task ends at `done`; one stuck on an unreachable broker is cancelled.
            _, stuck = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            for task in stuck:
                task.cancel()
            results = await asyncio.gather(*tasks, stopping, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result

    async def _connect(self) -> str:
        """The broker's incarnation, once it answers and has every topic."""
        incarnation = await broker_incarnation(self.bootstrap)
        await ensure_topics(self.bootstrap)
        return incarnation

    async def _keep_relaying(
        self, incarnation: str, producer: AIOKafkaProducer, done: asyncio.Event
    ) -> None:
        """Publishes stored commands to this incarnation (the relay waits out a broker
        that refuses produce requests for a while after a restart)."""
        self._relay = OutboxRelay(
            service="gateway",
            store=self.store,
            positions=self.positions,
            producer=producer,
            incarnation=incarnation,
            translate=translate,
            batch_max=self.relay_batch_max,
            poll_interval=self.poll_interval,
        )
        await self._relay.run(done)

    async def _until_replaced(self, incarnation: str, done: asyncio.Event) -> None:
        """Returns when the broker's incarnation is no longer `incarnation`."""
        await until_replaced(self.bootstrap, incarnation, done, self.check_every)


async def _unless_stopped(awaitable: Awaitable[T], stop: asyncio.Event) -> T | None:
    """The awaitable's result, or None (and it is cancelled) when `stop` comes first."""
    work = asyncio.ensure_future(awaitable)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([work, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if work.done():
        return work.result()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    return None
