"""The gateway's Kafka side, one broker incarnation at a time.

For each incarnation (the broker's cluster id) the gateway feeds its stored view with a
tracked consumer (consumer group `gateway`: replicas share the partitions and the view's
tables) and publishes its stored commands with an outbox relay; both record positions that
belong to that incarnation. When the broker is replaced (the embedded broker restarted: new
cluster id, empty topics) both are started again against the new broker: the relay
republishes every stored command (same `event_id`s, consumers drop duplicates) and the
consumer reads the republished topics from offset 0, skipping what the view has applied.

Why in the process and not by exiting, as the services do: its HTTP side keeps accepting
commands (they are stored) and answering from the view meanwhile, and it needs no
supervisor to come back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer, TopicPartition
from prometheus_client import Gauge

from servicedesk_contracts import topics
from servicedesk_gateway.outbox import translate
from servicedesk_gateway.view.store import GatewayView
from servicedesk_runtime.consumer import (
    DEFAULT_PACING,
    INFRASTRUCTURE_ERRORS,
    FetchPacing,
    TrackedConsumer,
)
from servicedesk_runtime.ends import end_offsets, partitions_of
from servicedesk_runtime.kafka import (
    broker_incarnation,
    ensure_topics,
    new_producer,
    until_replaced,
)
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import (
    NEXT_DEADLINE,
    OPEN_TICKETS,
    RISK_BOARD,
    TICKETS_AT_RISK,
    TICKETS_BREACHED_OPEN,
    TICKETS_BY_STATUS,
)
from servicedesk_runtime.relay import OutboxRelay, RelayPositions
from servicedesk_runtime.retry import Backoff, Stopped, retry
from servicedesk_runtime.store import ServiceStore

log = get_logger(__name__)
MAX_BACKOFF_SECONDS = 30.0
STOP_GRACE_SECONDS = 5.0
T = TypeVar("T")

GAUGE_SECONDS = 15.0
"""How often the tickets-by-status gauge is counted once caught up: a GROUP BY over every
ticket (a million rows take a while), not worth doing every poll."""

FOLLOWED = (
    topics.TICKETS,
    topics.TRIAGE,
    topics.SLA,
    topics.AGREEMENTS,
    topics.BILLING,
    topics.NOTIFICATIONS,
    topics.COMMAND_OUTCOMES,
)


class BrokerSide:
    """Runs the view's consumer and the command relay for the current broker incarnation."""

    def __init__(
        self,
        *,
        bootstrap: str,
        store: ServiceStore,
        positions: RelayPositions,
        view: GatewayView,
        relay_batch_max: int = 500,
        poll_interval: float = 1.0,
        check_every: float = 2.0,
        pacing: FetchPacing = DEFAULT_PACING,
    ) -> None:
        self.bootstrap = bootstrap
        self.store = store
        self.positions = positions
        self.view = view
        self.relay_batch_max = relay_batch_max
        self.poll_interval = poll_interval
        self.check_every = check_every
        self.pacing = pacing
        self.incarnation: str | None = None
        self._consumer: TrackedConsumer | None = None
        self._caught_up = False
        self._relay: OutboxRelay | None = None

    def ready(self) -> bool:
        """The view holds everything the current broker had when following began (by this
        replica or another), and its database answers."""
        return self._consumer is not None and self._consumer.ready and self._caught_up

    def assigned(self) -> set[TopicPartition]:
        """The partitions of the followed topics this replica feeds the view from."""
        return self._consumer.assigned() if self._consumer is not None else set()

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
        self._caught_up = False
        self._consumer = TrackedConsumer(
            service="gateway",
            bootstrap=self.bootstrap,
            topics=FOLLOWED,
            handlers=self.view.handlers,
            store=self.view.store,
            producer=producer,
            incarnation=incarnation,
            command_topics=(),
            pacing=self.pacing,
        )
        self.incarnation = incarnation
        log.info("following_broker", incarnation=incarnation)
        done = asyncio.Event()  # this incarnation is over: replaced, stopping or failed
        tasks = [
            asyncio.create_task(self._consumer.run(done), name="view"),
            asyncio.create_task(self._watch_view(self._consumer, done), name="view-watch"),
            asyncio.create_task(self._keep_relaying(incarnation, producer, done), name="relay"),
            asyncio.create_task(self._until_replaced(incarnation, done), name="watch"),
        ]
        stopping = asyncio.create_task(stop.wait(), name="stop")
        try:
            ended, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
            log.info(
                "incarnation_round_ended",
                by=sorted(task.get_name() for task in ended),
                errors=[repr(t.exception())[:300] for t in ended if _failed(t)],
            )
        finally:
            self._consumer = None  # not ready from here on
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

    async def _watch_view(self, consumer: TrackedConsumer, done: asyncio.Event) -> None:
        """Finds when the view has caught up with what the topics held at the start (from
        the positions every replica records), then keeps the status gauge current."""
        partitions = await partitions_of(self.bootstrap, FOLLOWED)
        ends = await end_offsets(self.bootstrap, partitions)
        while not done.is_set():
            try:
                await self._look_at_view(consumer, ends)
            except INFRASTRUCTURE_ERRORS as away:  # the consumer waits for it too
                log.warning("view_database_unavailable", error=repr(away)[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.2 if not self._caught_up else GAUGE_SECONDS)

    async def _look_at_view(
        self, consumer: TrackedConsumer, ends: dict[TopicPartition, int]
    ) -> None:
        if not self._caught_up:
            recorded = await asyncio.to_thread(self.view.store.positions)
            self._caught_up = all(
                recorded.get(consumer.tracking_name(tp), 0) >= end for tp, end in ends.items()
            )
            if self._caught_up:
                log.info("view_caught_up", incarnation=self.incarnation)
            return
        counts = await asyncio.to_thread(self.view.queries.count_by_status)
        for status, count in counts.items():
            TICKETS_BY_STATUS.labels(status).set(count)
        show_risk(await asyncio.to_thread(self.view.queries.sla_risk))

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


def _failed(task: asyncio.Task[Any]) -> bool:
    return not task.cancelled() and task.exception() is not None


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


_shown_risk: dict[Gauge, set[tuple[str, ...]]] = {}


def show_risk(groups: list[dict[str, Any]]) -> None:
    """The SLA risk board's gauges, as the view has them now: a group that has no open
    ticket (or no deadline) any more disappears rather than staying at its last value. Set
    first, then removed: a scrape in between never sees the board empty."""
    now: dict[Gauge, set[tuple[str, ...]]] = {gauge: set() for gauge in RISK_BOARD}
    for group in groups:
        labels = (group["agreement_id"], group["customer"], group["priority"])
        values = {
            OPEN_TICKETS: group["open"],
            TICKETS_AT_RISK: group["at_risk"],
            TICKETS_BREACHED_OPEN: group["breached"],
        }
        if group["next_due_micros"] is not None:
            values[NEXT_DEADLINE] = group["next_due_micros"] / 1_000_000
        for gauge, value in values.items():
            gauge.labels(*labels).set(value)
            now[gauge].add(labels)
    for gauge, labels_now in now.items():
        for gone in _shown_risk.get(gauge, set()) - labels_now:
            gauge.remove(*gone)
        _shown_risk[gauge] = labels_now
