"""Waiting for a condition in a test or a benchmark: poll it with a deadline, never sleep a
fixed time. One pair of helpers for every tier (unit, integration, end to end)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Polls until `predicate()` is truthy and returns its value; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


async def eventually(
    predicate: Callable[[], Any], timeout: float = 60, what: str = "condition"
) -> Any:
    """The same inside a running event loop: the predicate runs in a thread (it may query
    a database), so whatever runs on the loop meanwhile goes on."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
