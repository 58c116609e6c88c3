"""Every Prometheus metric of servicedesk, defined once.

Services import the metrics they update from here, so dashboards, alert rules and the test
that checks them have one catalogue to read. Names follow Prometheus conventions: the
`servicedesk_` prefix, base units, `_total` for counters. Labels come from small closed sets
(topic, channel, category, priority, clock kind, outcome, reason) and never carry ticket or
agent ids; only the SLA risk board names agreements (and their customers).

A service exports only what it owns (`OWNED_BY`), each sample labelled with the service's
name (`service_registry`): the `service` label is added at exposition, not written at each
call site, so a domain counter and a pipeline counter are labelled alike. The metrics are
kept out of prometheus_client's default registry for that reason; `CATALOGUE` holds them
all (for tests and the rule checks).

A counter's series is born at its first increment, and `increase()` cannot see a birth: an
alert on it would miss the first breach. So every service creates its series at zero for
the label values it can know at start-up (`start_service_series`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import get_args

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    disable_created_metrics,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from servicedesk_contracts.messages import (
    MATRIX_PRIORITIES,
    BillingModel,
    Channel,
    ClockKind,
    NotificationData,
    SetAsideReason,
    TicketStatus,
)
from servicedesk_runtime.refusals import RUNTIME_REFUSALS

# `_created` timestamps come out as separate gauge series in the text format Prometheus
# scrapes: twice the series for nothing a dashboard or rule uses.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

# --- event pipeline (every service) -------------------------------------------------------
MESSAGES_CONSUMED = Counter(
    "servicedesk_messages_consumed_total",
    "Kafka messages applied by a service's tracked consumer.",
    ["topic"],
    registry=None,
)
DUPLICATES_SKIPPED = Counter(
    "servicedesk_duplicate_messages_total",
    "Messages whose event_id had been applied before and were skipped.",
    ["topic"],
    registry=None,
)
DEAD_LETTERED = Counter(
    "servicedesk_messages_dead_lettered_total",
    "Messages that could not be accepted and went to the dead-letter topic.",
    ["topic", "reason"],
    registry=None,
)
PROCESSING_SECONDS = Histogram(
    "servicedesk_message_processing_seconds",
    "Time to apply one batch of messages and record the produced events, per service.",
    buckets=LATENCY_BUCKETS,
    registry=None,
)
CONSUMER_LAG = Gauge(
    "servicedesk_consumer_lag_messages",
    "Messages on the broker not yet applied by the service, per topic.",
    ["topic"],
    registry=None,
)
EVENTS_PUBLISHED = Counter(
    "servicedesk_events_published_total",
    "Stored events the outbox relay published to the service's topic.",
    ["topic"],
    registry=None,
)
RELAY_LAG = Gauge(
    "servicedesk_relay_lag_events",
    "Stored events not yet published by the outbox relay.",
    registry=None,
)
STORE_RETRIES = Counter(
    "servicedesk_store_retries_total",
    "Times a service waited to retry because its event store was unreachable.",
    registry=None,
)
MESSAGES_SKIPPED = Counter(
    "servicedesk_messages_skipped_total",
    "Messages that could not be applied and could not be dead-lettered either: only logged.",
    ["topic"],
    registry=None,
)
RELAY_ERRORS = Counter(
    "servicedesk_relay_errors_total",
    "Rounds of the outbox relay that failed (store or broker away) and were retried.",
    registry=None,
)
SERVICE_UP = Gauge(
    "servicedesk_service_ready",
    "1 when the service is connected to its broker and event store.",
    registry=None,
)

# --- tickets -----------------------------------------------------------------------------
TICKETS_OPENED = Counter(
    "servicedesk_tickets_opened_total",
    "Tickets opened, by the channel they came in through.",
    ["channel"],
    registry=None,
)
MAILS_RECEIVED = Counter(
    "servicedesk_mails_received_total",
    "SMTP deliveries to the desk's listener, by outcome: stored, duplicate (a Message-ID "
    "seen before), deferred (451: could not be stored), refused_recipient (550).",
    ["outcome"],
    registry=None,
)
IMAP_POLLS = Counter(
    "servicedesk_imap_polls_total",
    "Rounds of the IMAP poller: ok, or failed (the server away, a login refused).",
    ["outcome"],
    registry=None,
)
MAIL_ADDRESSES_MOVED = Counter(
    "servicedesk_mail_addresses_moved_total",
    "Mail domains or contacts an agreement took over from another (the last registered wins;"
    " two agreements listing one domain is usually a mistake).",
    registry=None,
)
MAILS_DECIDED = Counter(
    "servicedesk_mails_decided_total",
    "Received mails decided by intake: new_ticket, reply, or the reason it was set aside.",
    ["outcome"],
    registry=None,
)
TICKET_REQUESTS_REJECTED = Counter(
    "servicedesk_ticket_requests_rejected_total",
    "Requests to intake that were refused, by reason.",
    ["reason"],
    registry=None,
)
TICKET_STATUS_CHANGES = Counter(
    "servicedesk_ticket_status_changes_total",
    "Ticket status changes, by the status entered.",
    ["status"],
    registry=None,
)

TICKETS_BY_STATUS = Gauge(
    "servicedesk_tickets",
    "Tickets in the gateway's view, by status (the open backlog is every status but closed).",
    ["status"],
    registry=None,
)

# The SLA risk board: per agreement (a small, slowly growing set; named by its customer too,
# for people) and priority. Refreshed from the gateway's view every few seconds.
RISK_LABELS = ["agreement", "customer", "priority"]
OPEN_TICKETS = Gauge(
    "servicedesk_open_tickets",
    "Tickets not closed, per agreement and priority.",
    RISK_LABELS,
    registry=None,
)
TICKETS_AT_RISK = Gauge(
    "servicedesk_tickets_at_risk",
    "Open tickets with a running SLA clock past its first warning, per agreement and priority.",
    RISK_LABELS,
    registry=None,
)
TICKETS_BREACHED_OPEN = Gauge(
    "servicedesk_tickets_breached_open",
    "Open tickets with a breached SLA target, per agreement and priority.",
    RISK_LABELS,
    registry=None,
)
NEXT_DEADLINE = Gauge(
    "servicedesk_next_deadline_timestamp_seconds",
    "The earliest deadline of a running SLA clock (Unix time), per agreement and priority.",
    RISK_LABELS,
    registry=None,
)
RISK_BOARD = (OPEN_TICKETS, TICKETS_AT_RISK, TICKETS_BREACHED_OPEN, NEXT_DEADLINE)

# --- triage ------------------------------------------------------------------------------
TICKETS_TRIAGED = Counter(
    "servicedesk_tickets_triaged_total",
    "Tickets triaged, by category and priority decided.",
    ["category", "priority"],
    registry=None,
)
TICKETS_PARKED = Gauge(
    "servicedesk_tickets_parked",
    "Tickets waiting because they name an agreement triage does not know (yet).",
    registry=None,
)
TRIAGE_LAG_SECONDS = Histogram(
    "servicedesk_triage_lag_seconds",
    "Time from a ticket being opened to its triage decision.",
    buckets=LATENCY_BUCKETS,
    registry=None,
)

# --- SLA ---------------------------------------------------------------------------------
SLA_CLOCKS_STARTED = Counter(
    "servicedesk_sla_clocks_started_total",
    "SLA clocks started, by clock kind and priority.",
    ["kind", "priority"],
    registry=None,
)
SLA_CLOCKS_STOPPED = Counter(
    "servicedesk_sla_clocks_stopped_total",
    "SLA clocks stopped, by clock kind and outcome (met or breached).",
    ["kind", "outcome"],
    registry=None,
)
SLA_BREACHES = Counter(
    "servicedesk_sla_breaches_total",
    "SLA targets breached, by clock kind and priority.",
    ["kind", "priority"],
    registry=None,
)
FIRST_RESPONSE_SECONDS = Histogram(
    "servicedesk_first_response_seconds",
    "Time from a request reaching us to the first agent reply, by priority.",
    ["priority"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 432000),
    registry=None,
)
SLA_WARNINGS = Counter(
    "servicedesk_sla_warnings_total",
    "Warnings that an SLA target is about to be breached, by clock kind and priority.",
    ["kind", "priority"],
    registry=None,
)
SLA_CLOCKS_OPEN = Gauge(
    "servicedesk_sla_clocks_open",
    "SLA clocks running and waiting in the due-time table.",
    registry=None,
)
SLA_TIMER_FIRE_DELAY_SECONDS = Histogram(
    "servicedesk_sla_timer_fire_delay_seconds",
    "How late a breach fired after its deadline.",
    buckets=LATENCY_BUCKETS,
    registry=None,
)

# --- billing -----------------------------------------------------------------------------
AGREEMENTS_REGISTERED = Counter(
    "servicedesk_agreements_registered_total",
    "Agreements registered, by billing model.",
    ["billing_model"],
    registry=None,
)
TIME_LOGGED_SECONDS = Counter(
    "servicedesk_time_logged_seconds_total",
    "Agent time registered on tickets.",
    ["billable"],
    registry=None,
)
STATEMENTS_ISSUED = Counter(
    "servicedesk_statements_issued_total",
    "Monthly statements issued, by billing model.",
    ["billing_model"],
    registry=None,
)

# --- notifications -----------------------------------------------------------------------
NOTIFICATIONS_SENT = Counter(
    "servicedesk_notifications_sent_total",
    "Notifications delivered, by kind (ticket_confirmation, sla_breach...).",
    ["kind"],
    registry=None,
)
NOTIFICATIONS_FAILED = Counter(
    "servicedesk_notifications_failed_total",
    "Notifications that could not be delivered, by kind.",
    ["kind"],
    registry=None,
)
NOTIFICATIONS_RESENT = Counter(
    "servicedesk_notifications_resent_total",
    "Mails sent again, with the same Message-ID, because the outcome of an earlier send was "
    "not recorded (the notifier stopped between sending and recording), by kind.",
    ["kind"],
    registry=None,
)
NOTIFICATION_SEND_RETRIES = Counter(
    "servicedesk_notification_send_retries_total",
    "Sends tried again after the mail server was away or busy (4xx), by kind.",
    ["kind"],
    registry=None,
)

# --- gateway -----------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "servicedesk_http_requests_total",
    "Gateway HTTP requests, by route template, method and status code.",
    ["route", "method", "status"],
    registry=None,
)
HTTP_REQUEST_SECONDS = Histogram(
    "servicedesk_http_request_seconds",
    "Gateway HTTP request latency, by route template.",
    ["route"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)

# --- who exports what ----------------------------------------------------------------------
PIPELINE: tuple[MetricWrapperBase, ...] = (
    MESSAGES_CONSUMED,
    DUPLICATES_SKIPPED,
    DEAD_LETTERED,
    PROCESSING_SECONDS,
    CONSUMER_LAG,
    EVENTS_PUBLISHED,
    RELAY_LAG,
    STORE_RETRIES,
    MESSAGES_SKIPPED,
    RELAY_ERRORS,
    SERVICE_UP,
)
OWNED_BY: dict[str, tuple[MetricWrapperBase, ...]] = {
    "intake": (
        TICKETS_OPENED,
        MAILS_RECEIVED,
        IMAP_POLLS,
        MAIL_ADDRESSES_MOVED,
        MAILS_DECIDED,
        TICKET_REQUESTS_REJECTED,
        TICKET_STATUS_CHANGES,
    ),
    "triage": (TICKETS_TRIAGED, TICKETS_PARKED, TRIAGE_LAG_SECONDS),
    "sla-timer": (
        SLA_CLOCKS_STARTED,
        SLA_CLOCKS_STOPPED,
        SLA_BREACHES,
        FIRST_RESPONSE_SECONDS,
        SLA_WARNINGS,
        SLA_CLOCKS_OPEN,
        SLA_TIMER_FIRE_DELAY_SECONDS,
    ),
    "billing": (AGREEMENTS_REGISTERED, TIME_LOGGED_SECONDS, STATEMENTS_ISSUED),
    "notifier": (
        NOTIFICATIONS_SENT,
        NOTIFICATIONS_FAILED,
        NOTIFICATIONS_RESENT,
        NOTIFICATION_SEND_RETRIES,
    ),
    "gateway": (TICKETS_BY_STATUS, HTTP_REQUESTS, HTTP_REQUEST_SECONDS, *RISK_BOARD),
}


class _Labelled(Collector):
    """A service's metrics, every sample labelled `service="<name>"`."""

    def __init__(self, service: str, metrics: Sequence[MetricWrapperBase]) -> None:
        self._service = service
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            for family in metric.collect():
                family.samples = [
                    sample._replace(labels={"service": self._service, **sample.labels})
                    for sample in family.samples
                ]
                yield family


def service_registry(service: str) -> CollectorRegistry:
    """What `/metrics` of `service` exports: its pipeline and its own domain metrics, and
    the process's (CPU, memory, garbage collection)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Labelled(service, PIPELINE + OWNED_BY.get(service, ())))
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


def _catalogue() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    for metric in PIPELINE + tuple(itertools.chain.from_iterable(OWNED_BY.values())):
        registry.register(metric)
    return registry


CATALOGUE = _catalogue()
"""Every metric once, unlabelled by service: what tests read and rules are checked against."""


def start_at_zero(metric: MetricWrapperBase, *values: Iterable[str]) -> None:
    """Creates the series for every combination of label values, at zero, so that the first
    increment is an increase Prometheus can see."""
    for combination in itertools.product(*values):
        metric.labels(*combination)


def _closed_label_sets() -> dict[MetricWrapperBase, tuple[Sequence[str], ...]]:
    """The label values a metric can take that are known before anything happens."""
    kinds = get_args(NotificationData.model_fields["kind"].annotation)
    models = get_args(BillingModel)
    priorities = sorted(set().union(*MATRIX_PRIORITIES.values()))
    clocks = (get_args(ClockKind), priorities)
    return {
        TICKETS_OPENED: (get_args(Channel),),
        MAILS_RECEIVED: (("stored", "duplicate", "deferred", "refused_recipient"),),
        IMAP_POLLS: (("ok", "failed"),),
        MAILS_DECIDED: (("new_ticket", "reply", "filed_by_agent", *get_args(SetAsideReason)),),
        TICKET_STATUS_CHANGES: (get_args(TicketStatus),),
        SLA_CLOCKS_STOPPED: (get_args(ClockKind), ("met", "breached")),
        SLA_CLOCKS_STARTED: clocks,
        SLA_BREACHES: clocks,
        SLA_WARNINGS: clocks,
        FIRST_RESPONSE_SECONDS: (priorities,),
        AGREEMENTS_REGISTERED: (models,),
        STATEMENTS_ISSUED: (models,),
        TIME_LOGGED_SECONDS: (("true", "false"),),
        NOTIFICATIONS_SENT: (kinds,),
        NOTIFICATIONS_FAILED: (kinds,),
        NOTIFICATIONS_RESENT: (kinds,),
        NOTIFICATION_SEND_RETRIES: (kinds,),
    }


def start_service_series(service: str, consumed_topics: Sequence[str]) -> None:
    """Creates at zero every series of `service` whose labels are known at start-up: per
    topic it consumes, and its domain metrics' closed label sets (priorities are the
    matrices'). Open sets (a domain refusal's reason, a ticket's category) are born at
    their first increment: alert rules and dashboards count a birth too (infra/)."""
    per_topic: tuple[MetricWrapperBase, ...] = (
        MESSAGES_CONSUMED,
        DUPLICATES_SKIPPED,
        MESSAGES_SKIPPED,
    )
    for counter in per_topic:
        start_at_zero(counter, consumed_topics)
    start_at_zero(DEAD_LETTERED, consumed_topics, RUNTIME_REFUSALS)
    closed = _closed_label_sets()
    for owned in OWNED_BY.get(service, ()):
        if owned in closed:
            start_at_zero(owned, *closed[owned])
