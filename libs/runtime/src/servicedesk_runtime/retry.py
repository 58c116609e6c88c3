"""One way to retry for every loop of a service: exponential backoff with jitter, capped,
and interrupted at once by the service's shutdown (tenacity underneath).

A retry that ignores shutdown keeps a dying process busy; one without backoff hammers a
database that is already down; one without a bound on its delay leaves a service asleep
long after the database is back. So: waits grow from `first` to at most `longest` seconds,
a stop event cuts any wait short, and `attempts` and `give_up_after` (None: until
stopped) bound the tries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_never,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from servicedesk_runtime.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")


class Stopped(Exception):
    """The service is shutting down: the operation was abandoned, not failed."""


@dataclass(frozen=True)
class Backoff:
    first: float = 0.1
    longest: float = 5.0
    attempts: int | None = None
    """None: no bound on the number of tries."""
    give_up_after: float | None = None
    """Seconds since the first try after which no new try starts; None: no time bound."""


def _predicate(
    retry_on: tuple[type[Exception], ...] | Callable[[BaseException], bool],
) -> Callable[[BaseException], bool]:
    if not isinstance(retry_on, tuple):
        return retry_on
    return lambda error: isinstance(error, retry_on)


class _StopWhenSet(stop_base):
    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._event.is_set()


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[Exception], ...] | Callable[[BaseException], bool],
    stop: asyncio.Event,
    what: str,
    backoff: Backoff = Backoff(),
    on_retry: Callable[[BaseException], None] = lambda _: None,
) -> T:
    """Runs `operation` until it succeeds, raising what it raised once the attempts are
    used up, or `Stopped` when `stop` is set while it waits to retry. `retry_on`: the
    exception types worth another try, or a predicate saying so of one exception."""
    worth_retrying = _predicate(retry_on)

    async def interruptible_sleep(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        assert error is not None
        on_retry(error)
        log.warning(
            "retrying",
            what=what,
            attempt=state.attempt_number,
            wait_seconds=round(state.upcoming_sleep, 2),
            error=repr(error)[:500],
        )

    limit: stop_base = (
        stop_never if backoff.attempts is None else stop_after_attempt(backoff.attempts)
    )
    if backoff.give_up_after is not None:
        limit = limit | stop_after_delay(backoff.give_up_after)
    retrying = AsyncRetrying(
        retry=retry_if_exception(worth_retrying),
        wait=wait_exponential_jitter(
            multiplier=backoff.first, max=backoff.longest, jitter=backoff.first
        ),
        stop=limit | _StopWhenSet(stop),
        sleep=interruptible_sleep,
        before_sleep=before_sleep,
        reraise=True,
    )

    async def attempt() -> T:  # tenacity awaits only what is a coroutine function
        return await operation()

    try:
        return await retrying(attempt)
    except Exception as error:
        if stop.is_set() and worth_retrying(error):
            raise Stopped(what) from None
        raise
