"""The Grafana dashboards, as code.

Built with grafana-foundation-sdk (the SDK Grafana Labs generates from its own dashboard
schema, pinned to the Grafana of docker-compose.yml), so a panel that does not fit the
schema does not build. `python -m servicedesk_stack.dashboards` (`make dashboards`) writes
infra/grafana/dashboards/*.json; a test fails while the committed files differ, and
tests/test_dashboards_prometheus.py runs every query against a real Prometheus.

Counting what happened. `increase()` cannot see a counter series being born (its first
increment) and extrapolates to the edges of its window, so a stat built on it showed 46.1
tickets where 52 were opened. Here a count is a sum of exact steps: in each `STEP`, the
counter's rise, or its whole value where it has no value a step before (born, or restarted
at zero). So a stat is the whole number of events in the range shown (to within one
`STEP` at its edges); the services create their series at zero on start-up, which keeps
this cheap (see servicedesk_runtime.metrics).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DASHBOARD_DIR = Path(__file__).resolve().parents[4] / "infra" / "grafana" / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
STEP = "15s"
"""The step of exact counts: the default scrape interval (a smaller one adds nothing)."""
SERVICE_JOBS = "intake|triage|sla-timer|billing|notifier|gateway"
P = TypeVar("P", stat.Panel, timeseries.Panel, table.Panel)


# --- PromQL --------------------------------------------------------------------------------
def _selector(metric: str, where: str) -> str:
    return f"{metric}{{{where}}}" if where else metric


def _by(labels: Sequence[str]) -> str:
    return f" by ({', '.join(labels)})" if labels else ""


def steps(metric: str, where: str = "", step: str = STEP) -> str:
    """Per series, what a counter counted in the `step` before each instant: its rise, or
    its whole value where it had none a step before (born, or restarted at zero)."""
    series = _selector(metric, where)
    # `+ 0` drops the name, as the subtraction does: one series, whichever side counted it.
    return f"(({series} - {series} offset {step}) >= 0 or {series} + 0)"


def happened(metric: str, where: str = "", by: Sequence[str] = ()) -> str:
    """How many times a counter counted in the dashboard's range, as a whole number."""
    return f"sum{_by(by)} (sum_over_time({steps(metric, where)}[$__range:{STEP}]))"


def per_interval(metric: str, where: str = "", by: Sequence[str] = ()) -> str:
    """What a counter counted in each interval of a graph: its bars add up to the total."""
    return f"sum{_by(by)} ({steps(metric, where, '$__interval')})"


def per_hour(metric: str, where: str = "", by: Sequence[str] = ()) -> str:
    """A counter's rate, per hour (a trend; for counts use `per_interval`)."""
    return f"sum{_by(by)} (rate({_selector(metric, where)}[$__rate_interval])) * 3600"


def quantile(q: float, histogram: str, window: str, by: Sequence[str] = (), where: str = "") -> str:
    labels = ", ".join((*by, "le"))
    bucket = _selector(f"{histogram}_bucket", where)
    return f"histogram_quantile({q}, sum by ({labels}) (rate({bucket}[{window}])))"


# --- building ------------------------------------------------------------------------------
class Board:
    """A dashboard being laid out: rows, and panels placed left to right, with stable ids."""

    def __init__(self, uid: str, title: str, description: str) -> None:
        self.builder = (
            dashboard.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(["servicedesk"])
            .time("now-6h", "now")
            .timezone("utc")
            .refresh("30s")
            .readonly()
            .tooltip(DashboardCursorSync.CROSSHAIR)
            .link(
                dashboard.DashboardLink("Servicedesk dashboards")
                .type(DashboardLinkType.DASHBOARDS)
                .tags(["servicedesk"])
                .keep_time(True)
            )
        )
        self._next_id = 1

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _placed(self, panel: P, title: str, description: str, width: int, height: int) -> P:
        """A new panel with its id, title, description, data source and size."""
        return (
            panel.id(self._id())
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .span(width)
            .height(height)
        )

    def row(self, title: str) -> None:
        self.builder.with_row(dashboard.Row(title).id(self._id()))

    def stat(
        self,
        title: str,
        description: str,
        expr: str,
        *,
        unit: str = "short",
        width: int = 4,
        height: int = 5,
        legend: str = "",
        mappings: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        panel = (
            self._placed(stat.Panel(), title, description, width, height)
            .with_target(_query(expr, _ref(0), legend).instant())
            .unit(unit)
            .graph_mode(common.BigValueGraphMode.NONE)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        )
        if unit == "short":
            panel.decimals(0)  # counts of events are whole numbers
        if mappings:
            panel.mappings(
                [
                    ValueMap(
                        {
                            value: ValueMappingResult(text=text, color=color, index=index)
                            for index, (value, (text, color)) in enumerate(mappings.items())
                        }
                    )
                ]
            )
        self.builder.with_panel(panel)

    def graph(
        self,
        title: str,
        description: str,
        queries: Sequence[tuple[str, str]],
        *,
        unit: str = "short",
        width: int = 12,
        height: int = 8,
        bars: bool = False,
    ) -> None:
        """A time series panel; `queries` are (expr, legend). `bars` for counts per interval."""
        panel = self._placed(timeseries.Panel(), title, description, width, height).unit(unit)
        for index, (expr, legend) in enumerate(queries):
            panel.with_target(_query(expr, _ref(index), legend).range())
        if bars:
            panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80).stacking(
                common_builders.StackingConfig().mode(common.StackingMode.NORMAL)
            )
        self.builder.with_panel(panel)

    def counts(
        self,
        title: str,
        description: str,
        counter: str,
        by: Sequence[str],
        *,
        width: int = 12,
        where: str = "",
    ) -> None:
        """Bars of what `counter` counted in each interval, a series per `by` label set."""
        legend = " ".join(f"{{{{{label}}}}}" for label in by)
        queries = [(per_interval(counter, where, by), legend)]
        self.graph(title, description, queries, width=width, bars=True)

    def table(
        self,
        title: str,
        description: str,
        columns: Sequence[tuple[str, str]],
        *,
        width: int = 24,
        height: int = 10,
    ) -> None:
        """One row per label set, a column per query: `columns` are (expr, column name)."""
        panel = self._placed(table.Panel(), title, description, width, height)
        for index, (expr, _) in enumerate(columns):
            query = _query(expr, _ref(index), "").instant()
            panel.with_target(query.format(PromQueryFormat.TABLE))
        renames = {f"Value #{_ref(i)}": name for i, (_, name) in enumerate(columns)}
        panel.with_transformation(DataTransformerConfig(id_val="merge", options={}))
        panel.with_transformation(
            DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True, "service": True}, "renameByName": renames},
            )
        )
        self.builder.with_panel(panel)

    def service_variable(self) -> None:
        query = "label_values(servicedesk_service_ready, service)"
        self.builder.with_variable(
            dashboard.QueryVariable("service")
            .label("Service")
            .datasource(DATASOURCE)
            .query(query)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .multi(True)
            .all_value(".*")
            .sort(VariableSort.ALPHABETICAL_ASC)
            .current(VariableOption(selected=True, text=["All"], value=["$__all"]))
        )

    def json(self) -> str:
        return json.dumps(self.builder.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def _ref(index: int) -> str:
    """A panel's query ids: A, B, C..."""
    return chr(ord("A") + index)


def _query(expr: str, ref_id: str, legend: str) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(DATASOURCE)
    return query.legend_format(legend) if legend else query


# --- the dashboards --------------------------------------------------------------------------
def overview() -> Board:
    board = Board(
        "servicedesk-overview",
        "Servicedesk overview",
        "Tickets, mail, triage, SLA clocks, billing and notifications. Stats count what "
        "happened in the range shown, exactly.",
    )
    board.row("Tickets")
    board.stat(
        "Tickets opened",
        "Tickets opened in the range shown, all channels.",
        happened("servicedesk_tickets_opened_total"),
    )
    board.stat(
        "Tickets triaged",
        "Triage decisions in the range shown.",
        happened("servicedesk_tickets_triaged_total"),
    )
    board.stat(
        "Requests rejected",
        "Requests intake refused (a date in the future, a channel the agreement does not "
        "allow, an unknown ticket...) in the range shown.",
        happened("servicedesk_ticket_requests_rejected_total"),
    )
    board.stat(
        "Triage lag p95",
        "95th percentile time from a ticket being opened to its triage decision, over the "
        "range shown.",
        quantile(0.95, "servicedesk_triage_lag_seconds", "$__range"),
        unit="s",
    )
    board.stat(
        "Open SLA clocks",
        "SLA clocks running now (waiting in the due-time table).",
        "max(servicedesk_sla_clocks_open)",
    )
    board.stat(
        "SLA breaches",
        "SLA targets breached in the range shown.",
        happened("servicedesk_sla_breaches_total"),
    )
    board.counts(
        "Tickets opened by channel",
        "Tickets opened in each interval, by the channel they came in through.",
        "servicedesk_tickets_opened_total",
        ["channel"],
    )
    board.counts(
        "Tickets triaged by priority",
        "Triage decisions in each interval, by the priority decided.",
        "servicedesk_tickets_triaged_total",
        ["priority"],
    )
    board.graph(
        "Triage lag",
        "Time from a ticket being opened to its triage decision.",
        [
            (quantile(0.95, "servicedesk_triage_lag_seconds", "$__rate_interval"), "p95"),
            (quantile(0.5, "servicedesk_triage_lag_seconds", "$__rate_interval"), "p50"),
        ],
        unit="s",
    )
    board.graph(
        "Ticket status changes by status entered (per hour)",
        "How often tickets enter each status: a trend.",
        [(per_hour("servicedesk_ticket_status_changes_total", by=["status"]), "{{status}}")],
    )
    board.row("Mail")
    board.stat(
        "Mails received",
        "Mails the desk's listener or IMAP poller stored in the range shown (a mail "
        "delivered twice counts once).",
        happened("servicedesk_mails_received_total", 'outcome="stored"'),
    )
    board.stat(
        "Mails set aside",
        "Received mails intake did not file on a ticket (automatic replies, unknown senders, "
        "loops...): they wait under GET /mail/set-aside.",
        happened("servicedesk_mails_decided_total", 'outcome!~"new_ticket|reply|filed_by_agent"'),
    )
    board.stat(
        "Mail deferred (451)",
        "Deliveries to the listener answered 451 because the mail could not be stored.",
        happened("servicedesk_mails_received_total", 'outcome="deferred"'),
    )
    board.stat(
        "IMAP rounds failed",
        "Rounds of the IMAP poller that failed (the server away, the login refused).",
        happened("servicedesk_imap_polls_total", 'outcome="failed"'),
    )
    board.counts(
        "Mails decided by outcome",
        "What intake made of each received mail: a new ticket, a reply, or why it was set aside.",
        "servicedesk_mails_decided_total",
        ["outcome"],
        width=8,
    )
    board.row("SLA")
    board.graph(
        "Open SLA clocks",
        "SLA clocks running, over time.",
        [("max(servicedesk_sla_clocks_open)", "open")],
        width=8,
    )
    board.counts(
        "SLA breaches by kind and priority",
        "Targets breached in each interval.",
        "servicedesk_sla_breaches_total",
        ["kind", "priority"],
        width=8,
    )
    board.counts(
        "SLA clocks stopped: met vs breached",
        "Clocks stopped in each interval, by whether they met their target.",
        "servicedesk_sla_clocks_stopped_total",
        ["kind", "outcome"],
        width=8,
    )
    met = happened("servicedesk_sla_clocks_stopped_total", 'outcome="met"')
    breached = happened("servicedesk_sla_breaches_total")
    board.stat(
        "SLA met ratio",
        "Of the targets decided in the range shown, the share met: clocks stopped in time, "
        "against those stopped in time plus every breach (a breach counts when it happens, "
        "whether or not its clock has stopped since).",
        f"{met} / ({met} + {breached})",
        unit="percentunit",
        width=6,
        height=8,
    )
    board.counts(
        "SLA clocks started by kind and priority",
        "Clocks started in each interval.",
        "servicedesk_sla_clocks_started_total",
        ["kind", "priority"],
        width=9,
    )
    board.graph(
        "Breach firing delay p95",
        "How late the sla-timer fired a breach after its deadline.",
        [(quantile(0.95, "servicedesk_sla_timer_fire_delay_seconds", "$__rate_interval"), "p95")],
        unit="s",
        width=9,
    )
    board.row("Billing and notifications")
    board.stat(
        "Statements issued",
        "Monthly statements issued in the range shown.",
        happened("servicedesk_statements_issued_total"),
        width=5,
    )
    board.stat(
        "Agreements registered",
        "Agreements registered (or their terms changed) in the range shown.",
        happened("servicedesk_agreements_registered_total"),
        width=5,
    )
    board.stat(
        "Notifications sent",
        "Mails delivered in the range shown.",
        happened("servicedesk_notifications_sent_total"),
        width=5,
    )
    board.stat(
        "Notifications failed",
        "Notifications that could not be delivered in the range shown (GET /notifications "
        "lists them; each can be resent).",
        happened("servicedesk_notifications_failed_total"),
        width=5,
    )
    board.stat(
        "Agent time logged",
        "Agent time registered on tickets in the range shown.",
        happened("servicedesk_time_logged_seconds_total"),
        unit="s",
    )
    board.counts(
        "Statements issued by billing model",
        "Statements issued in each interval.",
        "servicedesk_statements_issued_total",
        ["billing_model"],
        width=8,
    )
    board.graph(
        "Notifications sent and failed by kind",
        "Mails delivered and given up on in each interval.",
        [
            (per_interval("servicedesk_notifications_sent_total", by=["kind"]), "sent {{kind}}"),
            (
                per_interval("servicedesk_notifications_failed_total", by=["kind"]),
                "failed {{kind}}",
            ),
        ],
        width=16,
        bars=True,
    )
    board.graph(
        "Open backlog by status",
        "Tickets in each status that is not closed (from the gateway's view).",
        [('sum by (status) (servicedesk_tickets{status!="closed"})', "{{status}}")],
    )
    board.graph(
        "Time to first response p50 / p95 by priority",
        "From the request reaching us to the first agent reply (wall-clock time).",
        [
            (
                quantile(
                    0.5, "servicedesk_first_response_seconds", "$__rate_interval", ["priority"]
                ),
                "p50 {{priority}}",
            ),
            (
                quantile(
                    0.95, "servicedesk_first_response_seconds", "$__rate_interval", ["priority"]
                ),
                "p95 {{priority}}",
            ),
        ],
        unit="s",
    )
    return board


def pipeline() -> Board:
    board = Board(
        "servicedesk-pipeline",
        "Servicedesk event pipeline",
        "Per service: consumption rate, processing latency, consumer and relay lag, dead "
        "letters, duplicates, readiness.",
    )
    board.service_variable()
    only = 'service=~"$service"'
    board.row("Health")
    board.stat(
        "Service ready",
        "1 when the service is connected to its broker and event store.",
        f"max by (service) (servicedesk_service_ready{{{only}}})",
        legend="{{service}}",
        width=12,
        mappings={"0": ("down", "red"), "1": ("ready", "green")},
    )
    board.stat(
        "Scrape targets up",
        "Whether Prometheus reaches each service's /metrics.",
        f'up{{job=~"{SERVICE_JOBS}"}}',
        legend="{{job}}",
        width=12,
        mappings={"0": ("down", "red"), "1": ("up", "green")},
    )
    board.row("Consumers")
    board.graph(
        "Messages consumed per service",
        "Kafka messages applied by each service's tracked consumer, per second.",
        [
            (
                f"sum by (service) (rate(servicedesk_messages_consumed_total{{{only}}}"
                "[$__rate_interval]))",
                "{{service}}",
            )
        ],
        unit="mps",
    )
    board.graph(
        "Processing latency per service (p50 / p95)",
        "Time to apply one batch of messages and record the produced events.",
        [
            (
                quantile(
                    0.95,
                    "servicedesk_message_processing_seconds",
                    "$__rate_interval",
                    ["service"],
                    only,
                ),
                "p95 {{service}}",
            ),
            (
                quantile(
                    0.5,
                    "servicedesk_message_processing_seconds",
                    "$__rate_interval",
                    ["service"],
                    only,
                ),
                "p50 {{service}}",
            ),
        ],
        unit="s",
    )
    board.graph(
        "Consumer lag",
        "Messages on the broker not yet applied, per service and topic.",
        [
            (
                f"sum by (service, topic) (servicedesk_consumer_lag_messages{{{only}}})",
                "{{service}} {{topic}}",
            )
        ],
    )
    board.counts(
        "Duplicates skipped",
        "Redelivered messages whose event_id had been applied already, in each interval.",
        "servicedesk_duplicate_messages_total",
        ["service", "topic"],
        where=only,
    )
    board.row("Outbox relays")
    board.graph(
        "Events published",
        "Stored events the outbox relays published to Kafka, per second.",
        [
            (
                f"sum by (service, topic) (rate(servicedesk_events_published_total{{{only}}}"
                "[$__rate_interval]))",
                "{{service}} {{topic}}",
            )
        ],
        unit="eps",
    )
    board.graph(
        "Relay lag",
        "Stored events not yet published by each service's relay.",
        [(f"max by (service) (servicedesk_relay_lag_events{{{only}}})", "{{service}}")],
    )
    board.row("Dead letters")
    board.stat(
        "Dead-lettered messages",
        "Messages sent to the dead-letter topic in the range shown.",
        happened("servicedesk_messages_dead_lettered_total", only),
        width=6,
        height=8,
    )
    board.counts(
        "Dead-lettered by service, topic and reason",
        "Messages sent to the dead-letter topic in each interval.",
        "servicedesk_messages_dead_lettered_total",
        ["service", "topic", "reason"],
        width=18,
        where=only,
    )
    board.row("Gateway HTTP")
    board.graph(
        "Gateway requests by status",
        "Requests per second, by status code.",
        [
            (
                "sum by (status) (rate(servicedesk_http_requests_total[$__rate_interval]))",
                "{{status}}",
            )
        ],
        unit="reqps",
    )
    board.graph(
        "Gateway latency p95 by route",
        "95th percentile latency of each route.",
        [
            (
                quantile(0.95, "servicedesk_http_request_seconds", "$__rate_interval", ["route"]),
                "{{route}}",
            )
        ],
        unit="s",
    )
    return board


def sla_risk() -> Board:
    board = Board(
        "servicedesk-sla-risk",
        "Servicedesk SLA risk",
        "For the service desk lead: open tickets close to or past their targets, per "
        "agreement and priority, and the deadlines coming next (from the gateway's view, "
        "refreshed every 15 s).",
    )
    group = "agreement, customer, priority"

    def now(gauge: str) -> str:  # one value per group, however many gateways export it
        return f"max by ({group}) ({gauge})"

    board.row("Now")
    board.stat(
        "Tickets at risk",
        "Open tickets with a running SLA clock past its first warning.",
        f"sum({now('servicedesk_tickets_at_risk')}) or vector(0)",
        width=6,
    )
    board.stat(
        "Open tickets breached",
        "Open tickets with a target already breached.",
        f"sum({now('servicedesk_tickets_breached_open')}) or vector(0)",
        width=6,
    )
    board.stat(
        "Open tickets",
        "Tickets not closed, every agreement.",
        f"sum({now('servicedesk_open_tickets')}) or vector(0)",
        width=6,
    )
    board.stat(
        "Next deadline in",
        "Time left until the earliest deadline of a running clock.",
        f"min({now('servicedesk_next_deadline_timestamp_seconds')}) - time()",
        unit="s",
        width=6,
    )
    board.table(
        "By agreement and priority",
        "Open tickets per agreement and priority; time left to the group's next deadline.",
        [
            (now("servicedesk_open_tickets"), "Open"),
            (now("servicedesk_tickets_at_risk"), "At risk"),
            (now("servicedesk_tickets_breached_open"), "Breached"),
            (f"{now('servicedesk_next_deadline_timestamp_seconds')} - time()", "Next deadline in"),
        ],
    )
    board.row("Over time")
    board.graph(
        "Tickets at risk by customer",
        "Open tickets past their first warning, per customer.",
        [(f"sum by (customer) ({now('servicedesk_tickets_at_risk')})", "{{customer}}")],
    )
    board.graph(
        "Open breached tickets by customer",
        "Open tickets with a breached target, per customer.",
        [(f"sum by (customer) ({now('servicedesk_tickets_breached_open')})", "{{customer}}")],
    )
    return board


BOARDS = (overview, pipeline, sla_risk)


def dashboard_files() -> dict[str, str]:
    """File name -> JSON, for every dashboard."""
    files: dict[str, str] = {}
    for make in BOARDS:
        board = make()
        built = board.builder.build()
        files[f"{built.uid}.json"] = board.json()
    return files


def main(target: Path = DASHBOARD_DIR) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name, text in dashboard_files().items():
        (target / name).write_text(text)
    sys.stdout.write(f"wrote {len(BOARDS)} dashboards to {target}\n")


if __name__ == "__main__":
    main()
