"""What operators see is what happened: a real Prometheus scrapes the embedded stack while a
scripted workload opens tickets, breaches targets, dead-letters garbage, fails a delivery
and issues statements. Then every query of every dashboard panel and the alert rules are
run, and their numbers compared with what the workload did.

A stat panel must show the exact count; a graph of counts per interval must add up to it,
series by series; every other graph must have data. A panel the test does not know fails
it, so a new panel comes with its expected number."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from tests.conftest import StackFactory, metric_value
from tests.kafka_tools import publish_raw
from tests.prometheus_tools import Prometheus, scraping

from servicedesk_contracts import topics
from servicedesk_contracts.messages import ticket_id_for_request
from servicedesk_stack.dashboards import DASHBOARD_DIR
from servicedesk_stack.mail_sink import MailSink
from servicedesk_stack.stack import SERVICES, Stack
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ADMIN = {"Authorization": "Bearer admin-token"}
AGENT = {"Authorization": "Bearer agent-token"}
COPENHAGEN = ZoneInfo("Europe/Copenhagen")
BOUNCING = "nobody@bounce.example.com"
STEP = "15s"  # a graph's step and $__interval, as Grafana would pick for a short range


def agreement(matrix: str, priorities: list[str], response_minutes: float) -> dict[str, Any]:
    return {
        "customer": f"{matrix} customer",
        "plan": "24x7",
        "calendar": {"timezone": "Europe/Copenhagen", "always_open": True},
        "matrix": matrix,
        "targets": {p: {"response_minutes": response_minutes} for p in priorities},
        "billing": {"model": "monthly_invoice", "hourly_rate_cents": 9500, "vat_rate": "0.25"},
    }


def raw_request(agreement_id: str, n: int, occurred_at: datetime) -> tuple[str, bytes]:
    request_id = str(uuid.uuid4())
    document = {
        "event_id": request_id,
        "event_type": "SubmitTicket",
        "schema_version": 1,
        "occurred_at": occurred_at.isoformat(),
        "producer": "monitoring",
        "subject_id": request_id,
        "data": {
            "agreement_id": agreement_id,
            "reporter_email": f"noc{n}@nordlicht.de",
            "reporter_name": "NOC",
            "organisation": "Nordlicht GmbH",
            "channel": "api",
            "subject": f"Backup job {n} failing",
            "body": "Every run fails.",
            "category": "incident",
            "impact": "whole organisation",
            "urgency": "medium",
        },
    }
    return request_id, json.dumps(document).encode()


class Workload:
    """Drives the stack as its users would, and keeps what it did."""

    def __init__(self, stack: Stack, sink: MailSink) -> None:
        self.stack = stack
        self.sink = sink
        self.gateway = httpx.Client(
            base_url=f"http://127.0.0.1:{stack.config.gateway_port}", timeout=10
        )
        self.fast_tickets: list[str] = []  # 3 s response target: they breach
        self.slow_tickets: list[str] = []  # 10 h response target: answered in time

    def run(self) -> None:
        fast = self._register(agreement("Z-P1P4", ["P1", "P2", "P3", "P4"], 0.05))
        slow = self._register(agreement("R-ABCD", ["A", "B", "C", "D"], 600))
        self.slow_agreement = slow
        wait_for(lambda: self._known(fast) and self._known(slow), 60, "both agreements")
        for n in range(3):
            self.fast_tickets.append(self._phone_ticket(fast, f"caller{n}@nordlicht.de"))
        now = datetime.now(UTC)
        requests = [raw_request(slow, n, now) for n in range(2)]
        publish_raw(
            self.stack.config.bootstrap,
            topics.INBOUND,
            [(request_id.encode(), value) for request_id, value in requests],
        )
        self.slow_tickets += [str(ticket_id_for_request(uuid.UUID(r))) for r, _ in requests]
        self.sink.refuse(BOUNCING)
        self.bouncing_ticket = self._phone_ticket(slow, BOUNCING)
        self._garbage(now)
        wait_for(lambda: all(map(self._triaged, self.tickets)), 90, "every ticket triaged")
        wait_for(lambda: all(map(self._breached, self.fast_tickets)), 90, "3 breaches")
        for ticket in [*self.slow_tickets, self.fast_tickets[0]]:
            self._reply(ticket)
        last_month = datetime.now(COPENHAGEN).replace(day=1) - timedelta(days=20)
        self._log_time(self.slow_tickets[0], last_month, 30)
        self._log_time(self.fast_tickets[1], last_month + timedelta(hours=2), 45)
        self._wait_for_billing(75 * 60)
        for agreement_id in (fast, slow):
            response = self.gateway.post(
                f"/agreements/{agreement_id}/statements",
                headers=ADMIN,
                json={"month": last_month.strftime("%Y-%m")},
            )
            assert response.status_code == 202, response.text

    @property
    def tickets(self) -> list[str]:
        return [*self.fast_tickets, *self.slow_tickets, self.bouncing_ticket]

    def ticket(self, ticket_id: str) -> dict[str, Any] | None:
        response = self.gateway.get(f"/tickets/{ticket_id}", headers=AGENT)
        return response.json() if response.status_code == 200 else None

    def priority(self, ticket_id: str) -> str:
        return str((self.ticket(ticket_id) or {})["priority"])

    def _register(self, terms: dict[str, Any]) -> str:
        response = self.gateway.post("/agreements", json=terms, headers=ADMIN)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def _known(self, agreement_id: str) -> bool:
        response = self.gateway.get(f"/agreements/{agreement_id}", headers=AGENT)
        return response.status_code == 200

    def _phone_ticket(self, agreement_id: str, reporter: str) -> str:
        matrix_words = (
            {"impact": "medium", "urgency": "high"}
            if reporter.endswith("nordlicht.de")
            else {"impact": "whole organisation", "urgency": "medium"}
        )
        response = self.gateway.post(
            "/tickets",
            headers=AGENT,
            json={
                "agreement_id": agreement_id,
                "reporter_email": reporter,
                "reporter_name": "Caller",
                "organisation": "Nordlicht GmbH",
                "channel": "phone",
                "subject": "Phones down",
                "body": "Since this morning",
                "category": "incident",
                **matrix_words,
            },
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def _garbage(self, now: datetime) -> None:
        """5 dead letters: 3 not JSON at all, 1 missing what a request needs, 1 from the
        future (a refusal: also counted as a rejected request)."""
        future_id, future = raw_request(self.slow_agreement, 9, now)
        future_document = json.loads(future)
        future_document["occurred_at"] = (now + timedelta(days=1)).isoformat()
        publish_raw(
            self.stack.config.bootstrap,
            topics.INBOUND,
            [
                (b"g1", b"{not json"),
                (b"g2", b"[1, 2]"),
                (b"g3", b'{"a": '),
                (b"g4", json.dumps({"event_type": "SubmitTicket", "schema_version": 1}).encode()),
                (future_id.encode(), json.dumps(future_document).encode()),
            ],
        )

    def _triaged(self, ticket_id: str) -> bool:
        return bool((self.ticket(ticket_id) or {}).get("priority"))

    def _breached(self, ticket_id: str) -> bool:
        clock = ((self.ticket(ticket_id) or {}).get("sla") or {}).get("response") or {}
        return bool(clock.get("breached_at"))

    def _reply(self, ticket_id: str) -> None:
        response = self.gateway.post(
            f"/tickets/{ticket_id}/replies", headers=AGENT, json={"body": "On it"}
        )
        assert response.status_code == 202, response.text

        def stopped() -> bool:
            clock = ((self.ticket(ticket_id) or {}).get("sla") or {}).get("response") or {}
            return bool(clock.get("stopped_at"))

        wait_for(stopped, 60, f"the response clock of {ticket_id} to stop")

    def _log_time(self, ticket_id: str, when: datetime, minutes: int) -> None:
        response = self.gateway.post(
            f"/tickets/{ticket_id}/time-entries",
            headers=AGENT,
            json={"started_at": when.isoformat(), "duration_minutes": minutes},
        )
        assert response.status_code == 202, response.text

    def _wait_for_billing(self, seconds: float) -> None:
        port = self.stack.config.port_of("billing")

        def recorded() -> bool:
            name = "servicedesk_time_logged_seconds_total"
            return metric_value(port, name, billable="true") == seconds

        wait_for(recorded, 60, f"billing to record {seconds} s")


def service_total(stack: Stack, service: str, name: str, **labels: str) -> float:
    """A counter summed over its series, as the service itself exports it."""
    from prometheus_client.parser import text_string_to_metric_families

    port = stack.config.port_of(service)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def resolve(expr: str, range_seconds: int) -> str:
    """The query Grafana sends for a panel, its variables filled in."""
    return (
        expr.replace("$__rate_interval", "30s")
        .replace("$__interval", STEP)
        .replace("$__range", f"{range_seconds}s")
        .replace("$service", ".*")
    )


def panels() -> list[tuple[str, dict[str, Any]]]:
    """(dashboard uid, panel) for every panel with queries."""
    found = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        board = json.loads(path.read_text())
        found += [(board["uid"], panel) for panel in board["panels"] if panel.get("targets")]
    return found


def series_totals(matrix: list[dict[str, Any]]) -> dict[tuple[str, ...], float]:
    """Per series (its label values, sorted by label name), the sum of its points; series
    that add up to zero are left out."""
    totals: dict[tuple[str, ...], float] = {}
    for series in matrix:
        key = tuple(value for _, value in sorted(series["metric"].items()))
        total = sum(float(value) for _, value in series["values"] if value != "NaN")
        if total:
            totals[key] = totals.get(key, 0) + total
    return totals


def test_dashboards_and_alerts_show_what_the_workload_did(
    make_stack: StackFactory,
    mail_sink: MailSink,
    tmp_path: Path,
    real_command: Callable[[str, str], str],
) -> None:
    prometheus_binary = real_command("prometheus", "prometheus")
    stack = make_stack()
    stack.start()
    stack.wait_ready()
    with scraping(stack, tmp_path / "prometheus", prometheus_binary) as prometheus:
        started = time.time()
        wait_for(lambda: len(prometheus.instant("up == 1")) == len(SERVICES), 60, "every target up")
        workload = Workload(stack, mail_sink)
        workload.run()
        expected = settle(stack, workload, mail_sink)

        # A range that holds the whole run: what Grafana's "last 15 minutes" would be.
        range_seconds = int(time.time() - started) + 60
        check_stats(prometheus, stack, expected, range_seconds)
        check_tables(prometheus, expected, range_seconds)
        check_graphs(prometheus, expected, started, range_seconds)
        check_alerts(prometheus, expected)


def settle(stack: Stack, workload: Workload, sink: MailSink) -> dict[str, Any]:
    """Waits until every service has counted what the workload did; returns the numbers the
    dashboards must show, from the workload and the mail the customers received."""
    fast = {workload.priority(t) for t in workload.fast_tickets}
    assert len(fast) == 1
    fast_priority = fast.pop()
    priorities = Counter(workload.priority(t) for t in workload.tickets)
    slow = [*workload.slow_tickets, workload.bouncing_ticket]
    fast_customer, slow_customer = "Z-P1P4 customer", "R-ABCD customer"
    bouncing = workload.ticket(workload.bouncing_ticket) or {}
    next_deadline = datetime.fromisoformat(bouncing["sla"]["response"]["due_at"]).timestamp()

    def counted(service: str, name: str, value: float, **labels: str) -> None:
        wait_for(
            lambda: service_total(stack, service, name, **labels) == value,
            90,
            f"{service} to count {value} {name} {labels}, not "
            f"{service_total(stack, service, name, **labels)}",
        )

    counted("billing", "servicedesk_statements_issued_total", 2)
    counted("notifier", "servicedesk_notifications_failed_total", 1)
    counted("sla-timer", "servicedesk_sla_clocks_stopped_total", 3)
    # Every mail the notifier counts as sent reached the sink, and none is still on its way.
    wait_for(
        lambda: (
            service_total(stack, "notifier", "servicedesk_notifications_sent_total")
            == len(sink.messages)
            and len(sink.messages) >= 5 + 3 + 3
        ),  # 5 confirmations, 3 replies, 3 breach alerts
        90,
        "the notifier's count of sent mail to match the mails received",
    )
    sent_by_kind = Counter(str(mail["X-Servicedesk-Kind"]) for mail in sink.messages)
    inbound = topics.INBOUND
    return {
        "fast_priority": fast_priority,
        "stats": {
            "Tickets opened": 6,
            "Tickets triaged": 6,
            "Requests rejected": 1,
            "SLA breaches": 3,
            # Clocks with a deadline ahead: the bounced reporter's, unanswered in its 10 h.
            # The breached ones wait for nothing more; the answered ones stopped.
            "Open SLA clocks": 1,
            "SLA met ratio": 2 / (2 + 3),
            "Mails received": 0,
            "Mails set aside": 0,
            "Mail deferred (451)": 0,
            "IMAP rounds failed": 0,
            "Statements issued": 2,
            "Agreements registered": 2,
            "Notifications sent": len(sink.messages),
            "Notifications failed": 1,
            "Agent time logged": 75 * 60,
            "Dead-lettered messages": 5,
            "Tickets at risk": 0,  # every running clock has 10 h left
            "Open tickets breached": 3,  # answered late or not at all, none closed
            "Open tickets": 6,
        },
        "risk": {  # the SLA risk table: (customer, priority) -> its columns
            (fast_customer, fast_priority): {"Open": 3, "At risk": 0, "Breached": 3},
            **{
                (slow_customer, p): {"Open": n, "At risk": 0, "Breached": 0}
                for p, n in Counter(workload.priority(t) for t in slow).items()
            },
        },
        "next_deadline": next_deadline,
        "bars": {
            ("Tickets opened by channel", "A"): {("phone",): 4, ("api",): 2},
            ("Tickets triaged by priority", "A"): {(p,): n for p, n in priorities.items()},
            ("Mails decided by outcome", "A"): {},
            ("SLA breaches by kind and priority", "A"): {("response", fast_priority): 3},
            ("SLA clocks stopped: met vs breached", "A"): {
                ("response", "met"): 2,
                ("response", "breached"): 1,
            },
            ("SLA clocks started by kind and priority", "A"): {
                ("response", p): n for p, n in priorities.items()
            },
            ("Statements issued by billing model", "A"): {("monthly_invoice",): 2},
            ("Notifications sent and failed by kind", "A"): {
                (kind,): n for kind, n in sent_by_kind.items()
            },
            ("Notifications sent and failed by kind", "B"): {("ticket_confirmation",): 1},
            ("Duplicates skipped", "A"): {},
            ("Dead-lettered by service, topic and reason", "A"): {
                ("invalid_json", "intake", inbound): 3,
                ("validation_failed", "intake", inbound): 1,
                ("future_timestamp", "intake", inbound): 1,
            },
        },
    }


def check_stats(
    prometheus: Prometheus, stack: Stack, expected: dict[str, Any], range_seconds: int
) -> None:
    stats: dict[str, float] = expected["stats"]
    seen = set()
    for uid, panel in panels():
        if panel["type"] != "stat":
            continue
        title, (target,) = panel["title"], panel["targets"]
        seen.add(title)
        query = resolve(target["expr"], range_seconds)
        if title == "Next deadline in":  # the bounced reporter's ticket, 10 h ahead
            (result,) = prometheus.instant(query)
            at, left = result["value"]
            assert abs(float(left) - (expected["next_deadline"] - float(at))) < 1, result
        elif title in ("Service ready", "Scrape targets up"):
            values = [float(r["value"][1]) for r in prometheus.instant(query)]
            assert values == [1.0] * len(SERVICES), (title, values)
        elif title == "Triage lag p95":
            (result,) = prometheus.instant(query)
            assert 0 < float(result["value"][1]) < 60, (title, result)
        else:
            assert title in stats, f"{uid}: a stat panel this test does not know: {title!r}"
            want = stats[title]

            def shows(query: str = query, want: float = want) -> bool:
                result = prometheus.instant(query)
                return len(result) == 1 and math.isclose(float(result[0]["value"][1]), want)

            # Prometheus scrapes each second, the sla-timer counts open clocks every 10 s,
            # the gateway its risk board every 15 s.
            wait_for(shows, 45, f"{title!r} to show {want}: {prometheus.instant(query)}")
    assert set(stats) <= seen, f"stats the dashboards lost: {set(stats) - seen}"


def check_tables(prometheus: Prometheus, expected: dict[str, Any], range_seconds: int) -> None:
    """The risk table: each column's query, row by row (customer, priority)."""
    (panel,) = [panel for _, panel in panels() if panel["type"] == "table"]
    renames = panel["transformations"][1]["options"]["renameByName"]
    for target in panel["targets"]:
        column = renames[f"Value #{target['refId']}"]
        query = resolve(target["expr"], range_seconds)
        rows = {
            (r["metric"]["customer"], r["metric"]["priority"]): float(r["value"][1])
            for r in prometheus.instant(query)
        }
        if column == "Next deadline in":
            assert all(0 < left <= 600 * 60 for left in rows.values()), rows
            continue
        want = {row: columns[column] for row, columns in expected["risk"].items()}
        assert rows == want, (column, rows)


def check_graphs(
    prometheus: Prometheus, expected: dict[str, Any], started: float, range_seconds: int
) -> None:
    bars: dict[tuple[str, str], dict[tuple[str, ...], float]] = expected["bars"]
    end = time.time()
    checked = set()
    for uid, panel in panels():
        if panel["type"] != "timeseries":
            continue
        for target in panel["targets"]:
            key = (panel["title"], target["refId"])
            query = resolve(target["expr"], range_seconds)
            matrix = prometheus.over_time(query, started - 30, end, STEP)
            if "offset $__interval" in target["expr"]:  # counts per interval
                assert key in bars, f"{uid}: a graph of counts this test does not know: {key}"
                assert series_totals(matrix) == bars[key], (key, series_totals(matrix))
                checked.add(key)
            else:
                points = [v for series in matrix for _, v in series["values"] if v != "NaN"]
                assert points, f"{uid}: {panel['title']!r} ({target['refId']}) shows nothing"
    assert set(bars) <= checked, f"graphs the dashboards lost: {set(bars) - checked}"


def check_alerts(prometheus: Prometheus, expected: dict[str, Any]) -> None:
    inbound = topics.INBOUND

    def dead(reason: str) -> tuple[str, frozenset[tuple[str, str]]]:
        labels = {"service": "intake", "topic": inbound, "reason": reason}
        return ("ServicedeskMessagesDeadLettered", frozenset(labels.items()))

    want = {
        (
            "ServicedeskSLABreaches",
            frozenset({"kind": "response", "priority": expected["fast_priority"]}.items()),
        ),
        dead("invalid_json"),
        dead("validation_failed"),
        dead("future_timestamp"),
        ("ServicedeskNotificationFailures", frozenset({"kind": "ticket_confirmation"}.items())),
    }
    wait_for(lambda: prometheus.firing() == want, 60, f"alerts {want}: {prometheus.firing()}")
