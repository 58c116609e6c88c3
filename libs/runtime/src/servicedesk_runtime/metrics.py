"""Every Prometheus metric of servicedesk, defined once.

Services import the metrics they update from here, so dashboards, alert rules and the test
that checks them have one catalogue to read. Names follow Prometheus conventions: the
`servicedesk_` prefix, base units, `_total` for counters. Labels come from small closed sets
(service, topic, channel, category, priority, clock kind, outcome, reason) and never carry
ticket, customer or agent ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

# --- event pipeline (every service) -------------------------------------------------------
MESSAGES_CONSUMED = Counter(
    "servicedesk_messages_consumed_total",
    "Kafka messages applied by a service's tracked consumer.",
    ["service", "topic"],
)
DUPLICATES_SKIPPED = Counter(
    "servicedesk_duplicate_messages_total",
    "Messages whose event_id had been applied before and were skipped.",
    ["service", "topic"],
)
DEAD_LETTERED = Counter(
    "servicedesk_messages_dead_lettered_total",
    "Messages that could not be accepted and went to the dead-letter topic.",
    ["service", "topic", "reason"],
)
PROCESSING_SECONDS = Histogram(
    "servicedesk_message_processing_seconds",
    "Time to apply one batch of messages and record the produced events, per service.",
    ["service"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "servicedesk_consumer_lag_messages",
    "Messages on the broker not yet applied by the service, per topic.",
    ["service", "topic"],
)
EVENTS_PUBLISHED = Counter(
    "servicedesk_events_published_total",
    "Stored events the outbox relay published to the service's topic.",
    ["service", "topic"],
)
RELAY_LAG = Gauge(
    "servicedesk_relay_lag_events",
    "Stored events not yet published by the outbox relay.",
    ["service"],
)
STORE_RETRIES = Counter(
    "servicedesk_store_retries_total",
    "Times a service waited to retry because its event store was unreachable.",
    ["service"],
)
MESSAGES_SKIPPED = Counter(
    "servicedesk_messages_skipped_total",
    "Messages that could not be applied and could not be dead-lettered either: only logged.",
    ["service", "topic"],
)
RELAY_ERRORS = Counter(
    "servicedesk_relay_errors_total",
    "Rounds of the outbox relay that failed (store or broker away) and were retried.",
    ["service"],
)
SERVICE_UP = Gauge(
    "servicedesk_service_ready",
    "1 when the service is connected to its broker and event store.",
    ["service"],
)

# --- tickets -----------------------------------------------------------------------------
TICKETS_OPENED = Counter(
    "servicedesk_tickets_opened_total",
    "Tickets opened, by the channel they came in through.",
    ["channel"],
)
MAILS_RECEIVED = Counter(
    "servicedesk_mails_received_total",
    "SMTP deliveries to the desk's listener, by outcome: stored, duplicate (a Message-ID "
    "seen before), deferred (451: could not be stored), refused_recipient (550).",
    ["outcome"],
)
IMAP_POLLS = Counter(
    "servicedesk_imap_polls_total",
    "Rounds of the IMAP poller: ok, or failed (the server away, a login refused).",
    ["outcome"],
)
MAIL_ADDRESSES_MOVED = Counter(
    "servicedesk_mail_addresses_moved_total",
    "Mail domains or contacts an agreement took over from another (the last registered wins;"
    " two agreements listing one domain is usually a mistake).",
)
MAILS_DECIDED = Counter(
    "servicedesk_mails_decided_total",
    "Received mails decided by intake: new_ticket, reply, or the reason it was set aside.",
    ["outcome"],
)
TICKET_REQUESTS_REJECTED = Counter(
    "servicedesk_ticket_requests_rejected_total",
    "Requests to intake that were refused, by reason.",
    ["reason"],
)
TICKET_STATUS_CHANGES = Counter(
    "servicedesk_ticket_status_changes_total",
    "Ticket status changes, by the status entered.",
    ["status"],
)

TICKETS_BY_STATUS = Gauge(
    "servicedesk_tickets",
    "Tickets in the gateway's view, by status (the open backlog is every status but closed).",
    ["status"],
)

# --- triage ------------------------------------------------------------------------------
TICKETS_TRIAGED = Counter(
    "servicedesk_tickets_triaged_total",
    "Tickets triaged, by category and priority decided.",
    ["category", "priority"],
)
TICKETS_PARKED = Gauge(
    "servicedesk_tickets_parked",
    "Tickets waiting because they name an agreement triage does not know (yet).",
)
TRIAGE_LAG_SECONDS = Histogram(
    "servicedesk_triage_lag_seconds",
    "Time from a ticket being opened to its triage decision.",
    buckets=LATENCY_BUCKETS,
)

# --- SLA ---------------------------------------------------------------------------------
SLA_CLOCKS_STARTED = Counter(
    "servicedesk_sla_clocks_started_total",
    "SLA clocks started, by clock kind and priority.",
    ["kind", "priority"],
)
SLA_CLOCKS_STOPPED = Counter(
    "servicedesk_sla_clocks_stopped_total",
    "SLA clocks stopped, by clock kind and outcome (met or breached).",
    ["kind", "outcome"],
)
SLA_BREACHES = Counter(
    "servicedesk_sla_breaches_total",
    "SLA targets breached, by clock kind and priority.",
    ["kind", "priority"],
)
FIRST_RESPONSE_SECONDS = Histogram(
    "servicedesk_first_response_seconds",
    "Time from a request reaching us to the first agent reply, by priority.",
    ["priority"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 432000),
)
SLA_WARNINGS = Counter(
    "servicedesk_sla_warnings_total",
    "Warnings that an SLA target is about to be breached, by clock kind and priority.",
    ["kind", "priority"],
)
SLA_CLOCKS_OPEN = Gauge(
    "servicedesk_sla_clocks_open",
    "SLA clocks running and waiting in the due-time table.",
)
SLA_TIMER_FIRE_DELAY_SECONDS = Histogram(
    "servicedesk_sla_timer_fire_delay_seconds",
    "How late a breach fired after its deadline.",
    buckets=LATENCY_BUCKETS,
)

# --- billing -----------------------------------------------------------------------------
AGREEMENTS_REGISTERED = Counter(
    "servicedesk_agreements_registered_total",
    "Agreements registered, by billing model.",
    ["billing_model"],
)
TIME_LOGGED_SECONDS = Counter(
    "servicedesk_time_logged_seconds_total",
    "Agent time registered on tickets.",
    ["billable"],
)
STATEMENTS_ISSUED = Counter(
    "servicedesk_statements_issued_total",
    "Monthly statements issued, by billing model.",
    ["billing_model"],
)

# --- notifications -----------------------------------------------------------------------
NOTIFICATIONS_SENT = Counter(
    "servicedesk_notifications_sent_total",
    "Notifications delivered, by kind (ticket_confirmation, sla_breach...).",
    ["kind"],
)
NOTIFICATIONS_FAILED = Counter(
    "servicedesk_notifications_failed_total",
    "Notifications that could not be delivered, by kind.",
    ["kind"],
)
NOTIFICATIONS_RESENT = Counter(
    "servicedesk_notifications_resent_total",
    "Mails sent again, with the same Message-ID, because the outcome of an earlier send was "
    "not recorded (the notifier stopped between sending and recording), by kind.",
    ["kind"],
)
NOTIFICATION_SEND_RETRIES = Counter(
    "servicedesk_notification_send_retries_total",
    "Sends tried again after the mail server was away or busy (4xx), by kind.",
    ["kind"],
)

# --- gateway -----------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "servicedesk_http_requests_total",
    "Gateway HTTP requests, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "servicedesk_http_request_seconds",
    "Gateway HTTP request latency, by route template.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
