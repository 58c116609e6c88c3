"""The operations endpoints every service serves: `/metrics` and `/health`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from servicedesk_runtime.metrics import service_registry
from servicedesk_runtime.signals import first_of


def add_ops_routes(app: FastAPI, service: str, is_ready: Callable[[], bool]) -> None:
    registry = service_registry(service)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/health",
        tags=["operations"],
        responses={503: {"description": "Starting, or its database or broker is away."}},
    )
    def health(response: Response) -> dict[str, str]:
        """200 when the service consumes and stores; 503 while it starts."""
        ready = is_ready()
        response.status_code = 200 if ready else 503
        return {"service": service, "status": "ready" if ready else "starting"}


class _Server(uvicorn.Server):
    """uvicorn's server, which leaves signals to the service (it stops every part of
    itself in order) and looks at the clock once a second instead of ten times."""

    def __init__(self, config: uvicorn.Config, stop: asyncio.Event) -> None:
        super().__init__(config)
        self.stop = stop

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        # uvicorn's loop wakes every 0.1 s to refresh its Date header once a second and to
        # see whether to exit: a tenth of an idle service's wake-ups, for nothing. Ticks a
        # second apart, counted in uvicorn's tenths, refresh the header as often; the
        # service's stop wakes the loop at once.
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864_000
            await first_of(self.stop, timeout=1.0)
            self.should_exit = self.should_exit or self.stop.is_set()


async def serve_http(app: FastAPI, host: str, port: int, stop: asyncio.Event) -> None:
    """Serves `app` until `stop` is set."""
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    await _Server(config, stop).serve()
