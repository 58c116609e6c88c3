"""The alert rules, on Prometheus' own tools: `promtool check rules` accepts them, and
`promtool test rules` runs infra/prometheus/tests/alerts_test.yml, where every alert fires
on the first event it is about and a quiet desk fires nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[1] / "infra" / "prometheus"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "tests" / "alerts_test.yml"


@pytest.fixture
def promtool(real_command: Callable[[str, str], str]) -> str:
    return real_command("promtool", "prometheus")


def alert_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def rule_cases() -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    return [case for test in tests for case in test.get("alert_rule_test", [])]


def test_the_rules_load(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(alert_names())} rules found" in result.stdout


def test_every_alert_fires_in_its_unit_test_and_stays_quiet_in_the_quiet_one() -> None:
    cases = rule_cases()
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alert_names() - firing == set(), "alerts no test makes fire"
    assert alert_names() - quiet == set(), "alerts no test keeps quiet"
    assert firing <= alert_names(), "tests of alerts that no longer exist"


def test_the_rule_unit_tests_pass(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """Against the old rule (plain increase()), the breach on a newborn series is missed:
    the tests above catch a rule that cannot see the first event."""
    old = RULES.read_text().replace(
        """(servicedesk_sla_breaches_total unless servicedesk_sla_breaches_total offset 15m)
            or increase(servicedesk_sla_breaches_total[15m])""",
        "increase(servicedesk_sla_breaches_total[15m])",
    )
    assert old != RULES.read_text()
    (tmp_path / "alerts.yml").write_text(old)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "alerts_test.yml").write_text(RULE_TESTS.read_text())
    result = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "tests" / "alerts_test.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "alertname: ServicedeskSLABreaches, time: 5m" in result.stdout + result.stderr
