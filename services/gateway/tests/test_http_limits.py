"""Hostile requests against a real server (uvicorn in its own process, a real HTTP client):
no body is read before the token is checked, and no body over the limit is buffered."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servicedesk_runtime.tansu import free_port
from servicedesk_stack.waiting import wait_for

MIB = 1 << 20
LIMIT = MIB
OVERSIZE = 64 * MIB
AGENT = {"Authorization": "Bearer a-token"}

SERVER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime

    import uvicorn

    from servicedesk_gateway.auth import parse_tokens
    from servicedesk_gateway.http import create_http_app
    from servicedesk_gateway.view.store import GatewayView
    from servicedesk_runtime.database import Database, DatabaseUrl

    async def publish(topic, message):
        pass

    app = create_http_app(
        GatewayView(Database(DatabaseUrl.parse(sys.argv[3], "gateway"))).queries,
        publish, parse_tokens("a-token:agent"), lambda: datetime.now(UTC),
        max_body_bytes=int(sys.argv[2]),
    )
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM): a body held for a moment and
    freed again still shows."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    database = f"sqlite:///{tmp_path}/gateway.db"
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(LIMIT), database])
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}")
        try:
            return httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 30, "the gateway's HTTP server")
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def chunks(total: int) -> Iterator[bytes]:
    """A body streamed in 1 MiB pieces, so the client holds little of it."""
    piece = b"x" * MIB
    for _ in range(total // MIB):
        yield piece


def post(url: str, *, headers: dict[str, str], declared: bool) -> int:
    """POSTs an oversize body, with Content-Length or chunked; returns the status (or 0
    when the server closed the connection without an answer the client could read)."""
    if declared:
        headers = {**headers, "Content-Length": str(OVERSIZE)}
    try:
        response = httpx.post(f"{url}/tickets", content=chunks(OVERSIZE), headers=headers)
    except httpx.TransportError:
        return 0
    return response.status_code


def test_oversize_and_unauthenticated_bodies_are_refused_without_being_buffered(
    server: tuple[str, int],
) -> None:
    url, pid = server
    before = peak_rss_bytes(pid)
    statuses = [
        post(url, headers={}, declared=True),
        post(url, headers={}, declared=False),
        post(url, headers={"Authorization": "Bearer wrong"}, declared=False),
        post(url, headers=AGENT, declared=True),
        post(url, headers=AGENT, declared=False),
        post(url, headers=AGENT, declared=False),
    ]
    after = peak_rss_bytes(pid)
    print(
        f"gateway peak RSS before {before / MIB:.1f} MiB, after six {OVERSIZE // MIB} MiB bodies "
        f"{after / MIB:.1f} MiB (statuses {statuses})"
    )
    # A declared oversize body may be refused for its size before the token is looked at.
    assert statuses[0] in (401, 413)
    assert statuses[1:] == [401, 401, 413, 413, 413]
    # Refused bodies are never held: the server grows by far less than one of them.
    assert after - before < OVERSIZE // 4
    # A normal request still works on the same server.
    assert httpx.get(f"{url}/tickets", headers=AGENT).status_code == 200
    assert httpx.get(f"{url}/tickets").status_code == 401


def test_operations_and_documentation_routes_stay_public(server: tuple[str, int]) -> None:
    url, _ = server
    for path in ("/openapi.json", "/docs"):
        assert httpx.get(f"{url}{path}").status_code == 200, path
