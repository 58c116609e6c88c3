"""What each service's /metrics exports: its own metrics only, each sample labelled with the
service, and the series Prometheus must see before their first increment already there."""

from __future__ import annotations

import itertools

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from servicedesk_runtime import metrics
from servicedesk_runtime.metrics import (
    CATALOGUE,
    OWNED_BY,
    PIPELINE,
    service_registry,
    start_service_series,
)

SERVICES = ("intake", "triage", "sla-timer", "billing", "notifier", "gateway")


def exported(service: str) -> dict[str, list[dict[str, str]]]:
    """servicedesk family name -> the label sets of its samples, as Prometheus reads them."""
    text = generate_latest(service_registry(service)).decode()
    return {
        family.name: [sample.labels for sample in family.samples]
        for family in text_string_to_metric_families(text)
        if family.name.startswith("servicedesk_")
    }


def family_name(metric: object) -> str:
    return str(metric._name)  # type: ignore[attr-defined]


def test_every_catalogued_metric_has_exactly_one_owner_or_is_the_pipeline() -> None:
    owned = [family_name(m) for m in itertools.chain.from_iterable(OWNED_BY.values())]
    pipeline = [family_name(m) for m in PIPELINE]
    assert len(owned) == len(set(owned)), "a metric owned by two services"
    assert not set(owned) & set(pipeline)
    catalogued = {family.name for family in CATALOGUE.collect()}
    assert catalogued == set(owned) | set(pipeline)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_exports_its_own_and_the_pipeline_metrics_only(service: str) -> None:
    start_service_series(service, ["servicedesk.tickets.v1"])
    families = exported(service)
    expected = {family_name(m) for m in PIPELINE + OWNED_BY[service]}
    assert set(families) <= expected
    others = {family_name(m) for s in SERVICES if s != service for m in OWNED_BY[s]}
    assert not set(families) & others
    # Not only the pipeline: its own domain metrics are there too.
    assert set(families) & {family_name(m) for m in OWNED_BY[service]}


@pytest.mark.parametrize("service", SERVICES)
def test_every_sample_names_its_service(service: str) -> None:
    start_service_series(service, ["servicedesk.tickets.v1"])
    for name, label_sets in exported(service).items():
        for labels in label_sets:
            assert labels.get("service") == service, (name, labels)


def test_sla_clocks_open_is_the_sla_timers_alone() -> None:
    assert "servicedesk_sla_clocks_open" in exported("sla-timer")
    for service in set(SERVICES) - {"sla-timer"}:
        assert "servicedesk_sla_clocks_open" not in exported(service)
        assert "servicedesk_triage_lag_seconds" not in exported(service) or service == "triage"


def test_series_alerts_depend_on_exist_at_zero_before_anything_happens() -> None:
    start_service_series("sla-timer", ["servicedesk.tickets.v1"])
    breaches = exported("sla-timer")["servicedesk_sla_breaches"]
    for kind, priority in itertools.product(("response", "resolution"), ("A", "D", "P1", "P4")):
        assert {"kind": kind, "priority": priority, "service": "sla-timer"} in breaches
    stopped = exported("sla-timer")["servicedesk_sla_clocks_stopped"]
    assert {"kind": "resolution", "outcome": "breached", "service": "sla-timer"} in stopped

    start_service_series("notifier", ["servicedesk.tickets.v1"])
    dead = exported("notifier")["servicedesk_messages_dead_lettered"]
    labels = {"topic": "servicedesk.tickets.v1", "reason": "invalid_json", "service": "notifier"}
    assert labels in dead
    failed = exported("notifier")["servicedesk_notifications_failed"]
    assert {"kind": "sla_breach", "service": "notifier"} in failed


def test_an_increment_shows_in_the_owners_export() -> None:
    series = {"kind": "response", "priority": "B"}
    before = CATALOGUE.get_sample_value("servicedesk_sla_breaches_total", series) or 0.0
    metrics.SLA_BREACHES.labels(**series).inc()
    text = generate_latest(service_registry("sla-timer")).decode()
    line = 'servicedesk_sla_breaches_total{kind="response",priority="B",service="sla-timer"}'
    assert f"{line} {before + 1}" in text
