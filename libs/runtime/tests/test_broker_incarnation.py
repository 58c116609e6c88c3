"""A new embedded broker is a new incarnation, and a running service notices it."""

from __future__ import annotations

import asyncio

import pytest

from servicedesk_runtime.kafka import broker_incarnation
from servicedesk_runtime.service import BrokerReplaced, _watch_incarnation
from servicedesk_runtime.tansu import EmbeddedBroker

pytestmark = pytest.mark.integration


async def test_every_embedded_broker_start_is_a_new_incarnation() -> None:
    with EmbeddedBroker() as first, EmbeddedBroker() as second:
        one = await broker_incarnation(first.bootstrap)
        assert one == first.cluster_id
        assert await broker_incarnation(second.bootstrap) != one
        assert await broker_incarnation(first.bootstrap) == one  # stable while it runs


async def test_a_service_stops_when_its_broker_is_replaced() -> None:
    with EmbeddedBroker() as old, EmbeddedBroker() as new:
        stop = asyncio.Event()
        unchanged = asyncio.create_task(
            _watch_incarnation(old.bootstrap, old.cluster_id, stop, 0.1)
        )
        with pytest.raises(BrokerReplaced, match=old.cluster_id):
            await _watch_incarnation(new.bootstrap, old.cluster_id, stop, every=0.1)
        assert not unchanged.done()  # the same broker: keeps watching
        stop.set()
        await unchanged


async def test_a_killed_broker_restarts_on_its_port_as_a_new_incarnation() -> None:
    first = EmbeddedBroker()
    first.start()
    first.kill()  # kill -9: no clean shutdown
    with EmbeddedBroker(port=first.port) as second:
        assert second.bootstrap == first.bootstrap
        assert await broker_incarnation(second.bootstrap) == second.cluster_id != first.cluster_id
