"""Settings every service reads from its environment."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from servicedesk_runtime.consumer import FetchPacing
from servicedesk_runtime.settings import ServiceSettings, from_environment


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


def test_a_service_with_bad_settings_says_which_in_a_line_each_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_FETCH_WAIT_MS", "0")
    monkeypatch.setenv("HTTP_PORT", "abc")
    with pytest.raises(SystemExit) as exited:
        from_environment(ServiceSettings, "triage")
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "triage: HTTP_PORT='abc': Input should be a valid integer, unable to parse string as "
        "an integer",
        "triage: KAFKA_FETCH_WAIT_MS='0': Input should be greater than or equal to 1",
    ]


def test_a_rule_across_settings_is_said_in_its_own_words(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_IDLE_FETCH_WAIT_MS", "5")
    with pytest.raises(SystemExit):
        from_environment(ServiceSettings, "notifier")
    assert capsys.readouterr().err == (
        "notifier: KAFKA_IDLE_FETCH_WAIT_MS (5) is shorter than KAFKA_FETCH_WAIT_MS (25): an "
        "idle consumer would ask the broker more often than a busy one\n"
    )
