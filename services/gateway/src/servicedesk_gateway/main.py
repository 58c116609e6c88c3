"""Composition root of the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from servicedesk_contracts import Message
from servicedesk_gateway.broker import BrokerSide
from servicedesk_gateway.config import GatewaySettings
from servicedesk_gateway.http import create_http_app
from servicedesk_gateway.outbox import accepted_command, store_command
from servicedesk_gateway.people import load_people
from servicedesk_gateway.view.store import GatewayView
from servicedesk_runtime.blobs import BlobStore
from servicedesk_runtime.clock import Clock, SystemClock
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.logs import configure_logging, get_logger
from servicedesk_runtime.metrics import SERVICE_UP
from servicedesk_runtime.ops import add_ops_routes, serve_http
from servicedesk_runtime.relay import RelayPositions
from servicedesk_runtime.settings import from_environment
from servicedesk_runtime.store import ServiceStore

NAME = "gateway"
log = get_logger(__name__)


async def run(settings: GatewaySettings, clock: Clock | None = None) -> None:
    configure_logging(NAME, settings.log_level)
    try:
        people = load_people(settings)
    except ValueError as problem:  # names the file, person, line and field
        raise SystemExit(f"gateway: {problem}") from problem
    if not people.sources:
        log.warning(
            "no_people_configured", hint="set GATEWAY_TOKENS or GATEWAY_PEOPLE_FILE (README)"
        )
    clock = clock or SystemClock()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    url = DatabaseUrl.parse(settings.database_url_for(NAME), NAME)
    database = Database(url)  # first: it makes the SQLite file's directory
    store = ServiceStore(url, NAME)
    view = GatewayView(database)

    async def accept(topic: str, message: Message) -> None:
        """Stored (committed) before the caller hears 202; the relay publishes it."""
        await store_command(store, topic, message)
        broker.wake_relay()

    app = create_http_app(
        view.queries,
        accept,
        people,
        clock.now,
        settings.gateway_max_body_bytes,
        find_accepted=lambda command_id: accepted_command(store, command_id),
        blobs=BlobStore(settings.blob_dir),
    )
    broker = BrokerSide(
        bootstrap=settings.kafka_bootstrap_servers,
        store=store,
        positions=RelayPositions(database),
        view=view,
        relay_batch_max=settings.relay_batch_max,
        poll_interval=settings.poll_interval_seconds,
        pacing=settings.fetch_pacing(),
    )
    add_ops_routes(app, NAME, broker.ready)
    app.state.view_ready = broker.ready
    SERVICE_UP.set(1)
    try:
        await asyncio.gather(
            broker.run(stop), serve_http(app, settings.http_host, settings.http_port, stop)
        )
    finally:
        store.close()
        database.close()
        SERVICE_UP.set(0)
        log.info("stopped")  # as every service says it


def main() -> None:
    asyncio.run(run(from_environment(GatewaySettings, NAME)))
