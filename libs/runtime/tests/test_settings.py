"""Settings every service reads from its environment."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from servicedesk_runtime.consumer import FetchPacing
from servicedesk_runtime.settings import ServiceSettings


def test_the_fetch_waits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator on Kafka (which answers a waiting fetch at once) lengthens both waits;
    one on Tansu who wants the least latency shortens the busy one."""
    assert ServiceSettings().fetch_pacing() == FetchPacing()
    monkeypatch.setenv("KAFKA_FETCH_WAIT_MS", "500")
    monkeypatch.setenv("KAFKA_IDLE_FETCH_WAIT_MS", "5000")
    assert ServiceSettings().fetch_pacing() == FetchPacing(busy_ms=500, idle_ms=5000)


@pytest.mark.parametrize(
    ("busy", "idle", "named"),
    [
        ("200", "100", "KAFKA_IDLE_FETCH_WAIT_MS (100) is shorter than KAFKA_FETCH_WAIT_MS (200)"),
        ("0", "1000", "kafka_fetch_wait_ms"),
        ("50", "60001", "kafka_idle_fetch_wait_ms"),
        ("fast", "1000", "kafka_fetch_wait_ms"),
    ],
)
def test_a_fetch_wait_that_makes_no_sense_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, busy: str, idle: str, named: str
) -> None:
    monkeypatch.setenv("KAFKA_FETCH_WAIT_MS", busy)
    monkeypatch.setenv("KAFKA_IDLE_FETCH_WAIT_MS", idle)
    with pytest.raises(ValidationError, match=re.escape(named)):
        ServiceSettings()
