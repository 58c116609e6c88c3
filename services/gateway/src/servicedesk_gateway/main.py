"""Composition root of the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from servicedesk_contracts import Message
from servicedesk_gateway.auth import parse_tokens
from servicedesk_gateway.config import GatewaySettings
from servicedesk_gateway.follower import TopicFollower
from servicedesk_gateway.http import create_http_app
from servicedesk_gateway.read_model import ReadModel
from servicedesk_runtime.clock import Clock, SystemClock
from servicedesk_runtime.kafka import ensure_topics, new_producer
from servicedesk_runtime.logs import configure_logging, get_logger
from servicedesk_runtime.metrics import SERVICE_UP
from servicedesk_runtime.ops import add_ops_routes, serve_http

NAME = "gateway"
log = get_logger(__name__)


async def run(settings: GatewaySettings, clock: Clock | None = None) -> None:
    configure_logging(NAME, settings.log_level)
    callers = parse_tokens(settings.gateway_tokens)
    if not callers:
        log.warning("no_tokens_configured", hint="set GATEWAY_TOKENS=token:role,...")
    clock = clock or SystemClock()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await ensure_topics(settings.kafka_bootstrap_servers)
    producer = new_producer(settings.kafka_bootstrap_servers, NAME)
    await producer.start()
    read_model = ReadModel()
    follower = TopicFollower(settings.kafka_bootstrap_servers, read_model)

    async def publish(topic: str, message: Message) -> None:
        await producer.send_and_wait(
            topic, message.to_json(), key=message.kafka_key(), headers=message.kafka_headers()
        )

    app = create_http_app(read_model, publish, callers, clock.now, settings.gateway_max_body_bytes)
    add_ops_routes(app, NAME, lambda: follower.caught_up)
    SERVICE_UP.labels(NAME).set(1)
    try:
        await asyncio.gather(
            follower.run(stop), serve_http(app, settings.http_host, settings.http_port, stop)
        )
    finally:
        await producer.stop()
        SERVICE_UP.labels(NAME).set(0)


def main() -> None:
    asyncio.run(run(GatewaySettings()))
