"""Follows every event topic from its beginning into the read model (the Kafka adapter)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from servicedesk_contracts import InvalidMessage, decode, topics
from servicedesk_gateway.read_model import ReadModel
from servicedesk_runtime.ends import end_offsets
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import CONSUMER_LAG, MESSAGES_CONSUMED, TICKETS_BY_STATUS

log = get_logger(__name__)

FOLLOWED = (
    topics.TICKETS,
    topics.TRIAGE,
    topics.SLA,
    topics.AGREEMENTS,
    topics.BILLING,
    topics.NOTIFICATIONS,
)


class TopicFollower:
    """No consumer group and no stored positions: the view is built from offset 0, so each
    gateway replica holds the whole view. One follower serves one broker incarnation (see
    `broker.py`); a new broker gets a new follower and an empty view."""

    def __init__(self, bootstrap: str, read_model: ReadModel, max_records: int = 2000) -> None:
        self.read_model = read_model
        self.caught_up = False
        """True once everything the topics held when the follower started is in the view."""
        self._bootstrap = bootstrap
        self._max_records = max_records
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            client_id="gateway-view",
            fetch_max_wait_ms=50,  # a quiet topic would delay the view by 500 ms otherwise
        )

    async def run(self, stop: asyncio.Event) -> None:
        await self._consumer.start()
        try:
            partitions = await self._assign_all()
            # Ends read past, not as the broker reports them (Tansu's stop early).
            start_ends = await end_offsets(self._bootstrap, partitions)
            while not stop.is_set():
                batch = await self._consumer.getmany(timeout_ms=200, max_records=self._max_records)
                for tp, records in batch.items():
                    for record in records:
                        self._apply(record.value)
                    MESSAGES_CONSUMED.labels("gateway", tp.topic).inc(len(records))
                if not self.caught_up:
                    self.caught_up = await self._reached(start_ends)
                await self._report_lag(partitions)
                for status, count in self.read_model.count_by_status().items():
                    TICKETS_BY_STATUS.labels(status).set(count)
        finally:
            await self._consumer.stop()

    def _apply(self, value: bytes | None) -> None:
        try:
            self.read_model.apply(decode(value))
        except InvalidMessage as invalid:
            log.warning("view_skipped_invalid_message", reason=invalid.reason)
        except Exception as error:  # one message the view cannot take must not stop it
            log.error("view_skipped_message", error=repr(error)[:500])

    async def _assign_all(self) -> list[TopicPartition]:
        partitions = []
        for topic in FOLLOWED:
            ids = self._consumer.partitions_for_topic(topic)
            while not ids:
                await self._consumer._client.force_metadata_update()
                ids = self._consumer.partitions_for_topic(topic)
                if not ids:
                    await asyncio.sleep(0.2)
            partitions += [TopicPartition(topic, p) for p in sorted(ids)]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        return partitions

    async def _reached(self, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return False
        log.info("view_caught_up", applied=self.read_model.applied)
        return True

    async def _report_lag(self, partitions: list[TopicPartition]) -> None:
        lag: dict[str, int] = {}
        for tp in partitions:
            end = self._consumer.highwater(tp)
            if end is not None:
                behind = max(end - await self._consumer.position(tp), 0)
                lag[tp.topic] = lag.get(tp.topic, 0) + behind
        for topic, behind in lag.items():
            CONSUMER_LAG.labels("gateway", topic).set(behind)
