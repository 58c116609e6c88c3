"""The operations endpoints every service serves: `/metrics` and `/health`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from servicedesk_runtime.metrics import service_registry


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
    """Leaves signals to the service, which stops every part of itself in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(app: FastAPI, host: str, port: int, stop: asyncio.Event) -> None:
    """Serves `app` until `stop` is set."""
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await serving
