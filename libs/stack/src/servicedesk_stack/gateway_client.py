"""Reading the gateway as a client does (tests, the fault suite, the demo)."""

from __future__ import annotations

from typing import Any

import httpx


def all_tickets(
    gateway: str, headers: dict[str, str], timeout: float = 60, **filters: str
) -> list[dict[str, Any]]:
    """Every ticket `GET /tickets` lists, page after page (`gateway` is its base URL)."""
    tickets: list[dict[str, Any]] = []
    params: dict[str, str | int] = {**filters, "limit": 500}
    while True:
        answer = httpx.get(f"{gateway}/tickets", params=params, headers=headers, timeout=timeout)
        answer.raise_for_status()
        page = answer.json()
        tickets += page["tickets"]
        if page["next_cursor"] is None:
            return tickets
        params["cursor"] = page["next_cursor"]
