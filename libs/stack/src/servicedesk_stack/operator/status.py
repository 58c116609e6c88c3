"""`servicedesk status`: the key figures of the dashboards, read from each service's own
/health and /metrics, for people without Grafana (or before Prometheus has scraped)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from servicedesk_stack.stack import SERVICES

COMPOSE_ENDPOINTS = {
    "intake": "http://127.0.0.1:9101",
    "triage": "http://127.0.0.1:9102",
    "sla-timer": "http://127.0.0.1:9103",
    "billing": "http://127.0.0.1:9104",
    "notifier": "http://127.0.0.1:9105",
    "gateway": "http://127.0.0.1:8080",
}
ENDPOINTS_FILE = "endpoints.json"
"""Where the embedded run (`make up`) writes its services' addresses, in its data dir."""

Samples = dict[str, list[tuple[dict[str, str], float]]]


def endpoints(data_dir: Path) -> dict[str, str]:
    """The embedded run's addresses when it left them in `data_dir`, else Compose's."""
    written = data_dir / ENDPOINTS_FILE
    if written.is_file():
        found: dict[str, str] = json.loads(written.read_text())
        return found
    return dict(COMPOSE_ENDPOINTS)


@dataclass
class ServiceFigures:
    name: str
    ready: bool | None  # None: did not answer
    consumer_lag: float = 0
    relay_lag: float = 0
    dead_lettered: float = 0
    skipped: float = 0


@dataclass
class Figures:
    services: list[ServiceFigures] = field(default_factory=list)
    desk: dict[str, float | None] = field(default_factory=dict)
    backlog: dict[str, float] = field(default_factory=dict)


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        value
        for sample_labels, value in samples.get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )


def figures_of(answers: Mapping[str, tuple[bool, Samples] | None], now: float) -> Figures:
    """The figures from what each service answered (None: it did not)."""
    figures = Figures()
    for service in SERVICES:
        answer = answers.get(service)
        if answer is None:
            figures.services.append(ServiceFigures(service, None))
            continue
        ready, samples = answer
        figures.services.append(
            ServiceFigures(
                service,
                ready,
                consumer_lag=total(samples, "servicedesk_consumer_lag_messages"),
                relay_lag=total(samples, "servicedesk_relay_lag_events"),
                dead_lettered=total(samples, "servicedesk_messages_dead_lettered_total"),
                skipped=total(samples, "servicedesk_messages_skipped_total"),
            )
        )
    gateway = (answers.get("gateway") or (False, {}))[1]
    deadlines = [v for _, v in gateway.get("servicedesk_next_deadline_timestamp_seconds", [])]
    figures.desk = {
        "open tickets": total(gateway, "servicedesk_open_tickets"),
        "at risk": total(gateway, "servicedesk_tickets_at_risk"),
        "breached, still open": total(gateway, "servicedesk_tickets_breached_open"),
        "next deadline in (s)": round(min(deadlines) - now) if deadlines else None,
    }
    figures.backlog = {
        labels["status"]: value
        for labels, value in gateway.get("servicedesk_tickets", [])
        if labels.get("status") != "closed" and value
    }
    return figures


def read_service(base_url: str) -> tuple[bool, Samples] | None:
    """(ready, metric samples) of one service, or None when it does not answer."""
    try:
        health = httpx.get(f"{base_url}/health", timeout=5)
        text = httpx.get(f"{base_url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return health.status_code == 200, samples


def gather(where: Mapping[str, str]) -> Figures:
    answers = {service: read_service(url) for service, url in where.items()}
    return figures_of(answers, time.time())
