"""The HTTP server every service runs for `/metrics` and `/health`, on a real socket."""

from __future__ import annotations

import asyncio
import time

import httpx
from fastapi import FastAPI

from servicedesk_runtime.ops import add_ops_routes, serve_http
from servicedesk_runtime.tansu import free_port


async def test_the_server_keeps_its_date_fresh_and_stops_when_the_service_does() -> None:
    """It ticks once a second instead of uvicorn's ten times: the Date header still moves
    on every second, and the service's stop ends it."""
    app = FastAPI()
    add_ops_routes(app, "probe", lambda: True)
    port, stop = free_port(), asyncio.Event()
    serving = asyncio.create_task(serve_http(app, "127.0.0.1", port, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            first = await _until_served(client)
            assert first.json() == {"service": "probe", "status": "ready"}
            deadline = time.monotonic() + 4  # it moves on within a second or two
            while (await client.get("/health")).headers["date"] == first.headers["date"]:
                assert time.monotonic() < deadline, "the Date header never moved on"
                await asyncio.sleep(0.1)
    finally:
        stop.set()
    await asyncio.wait_for(serving, timeout=5)


async def _until_served(client: httpx.AsyncClient) -> httpx.Response:
    deadline = time.monotonic() + 10
    while True:
        try:
            return await client.get("/health")
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server never answered"
            await asyncio.sleep(0.05)
