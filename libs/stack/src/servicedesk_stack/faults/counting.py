"""Counting what happened, from the stores, the topics and the mailbox, as findings: each
invariant named, held or not, and why not."""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from email.message import Message as Mail

import httpx

from servicedesk_contracts import topics
from servicedesk_contracts.messages import ticket_id_for_request
from servicedesk_stack.faults.clients import read_topic
from servicedesk_stack.faults.harness import Harness
from servicedesk_stack.faults.inputs import SHORT_AGREEMENT
from servicedesk_stack.gateway_client import all_tickets

AGENT = {"Authorization": "Bearer agent-token"}


@dataclass
class StormReport:
    published: int = 0
    short: set[uuid.UUID] = field(default_factory=set)
    """Request ids on the short agreement."""
    requests: list[uuid.UUID] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)
    connections_terminated: int = 0
    in_flight_at_broker_restart: set[uuid.UUID] = field(default_factory=set)
    restarts: dict[str, int] = field(default_factory=dict)
    publish_seconds: float = 0.0
    drain_seconds: float = 0.0


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str


@dataclass
class Tally:
    """Counts of one run, from stores, topics and mailbox."""

    rows: dict[str, float] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    lost_in_broker: int = 0

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.findings.append(Finding(name, ok, detail))

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]


def count_storm(suite: Harness, report: StormReport) -> Tally:
    tally = Tally()
    requests = [*suite.probes, *report.requests]
    short = report.short | {r for r, a in suite.probes.items() if a == SHORT_AGREEMENT}
    tickets = {ticket_id_for_request(r): r for r in requests}
    opened = suite.store_rows("intake", "Ticket.Opened")
    missing = {r for t, r in tickets.items() if t not in opened}
    lost = missing & report.in_flight_at_broker_restart
    tally.lost_in_broker = len(lost)
    tally.rows["published"] = len(requests)
    tally.rows["in flight at broker restart"] = len(report.in_flight_at_broker_restart)
    tally.rows["lost in the broker"] = len(lost)
    tally.check(
        "nothing lost but the broker's in-flight",
        missing == lost,
        f"{len(missing - lost)} published tickets never opened that were not in flight "
        f"at the broker restart: {sorted(map(str, missing - lost))[:5]}",
    )
    alive = {t for t in tickets if t in opened}
    alive_short = {ticket_id_for_request(r) for r in short} & alive
    _tally_stores(suite, tally, alive, alive_short)
    _tally_topics(suite, tally, alive, alive_short)
    _tally_mail(suite, tally, alive, alive_short)
    return tally


def _once_each(
    tally: Tally, name: str, counts: Counter[uuid.UUID], expected: set[uuid.UUID]
) -> None:
    """`counts` (per aggregate or subject) has exactly `expected`, each once."""
    tally.rows[name] = sum(counts.values())
    twice = {k: n for k, n in counts.items() if n > 1}
    absent = expected - set(counts)
    extra = set(counts) - expected
    tally.check(
        f"{name}: each once",
        not twice and not absent and not extra,
        f"{len(absent)} missing, {len(twice)} more than once, {len(extra)} unexpected "
        f"(e.g. {sorted(map(str, absent | set(twice) | extra))[:3]})",
    )


def _tally_stores(
    suite: Harness, tally: Tally, alive: set[uuid.UUID], short: set[uuid.UUID]
) -> None:
    opened = suite.store_rows("intake", "Ticket.Opened")
    _once_each(tally, "store intake: tickets opened", opened, set(opened))
    triaged = suite.store_rows("triage", "Triage.Decided")
    _once_each(
        tally,
        "store triage: tickets triaged",
        triaged,
        {uuid.uuid5(t, "triage") for t in alive},
    )
    started = suite.store_rows("sla-timer", "SlaClock.Started")
    response = {uuid.uuid5(t, "sla-clock:response") for t in alive}
    resolution = {uuid.uuid5(t, "sla-clock:resolution") for t in short}
    tally.rows["store sla-timer: clocks started"] = sum(started.values())
    tally.check(
        "store sla-timer: each response clock started once",
        all(started.get(c) == 1 for c in response) and all(n == 1 for n in started.values()),
        f"{sum(1 for c in response if c not in started)} response clocks never started, "
        f"{sum(1 for n in started.values() if n > 1)} started more than once",
    )
    breached = suite.store_rows("sla-timer", "SlaClock.Breached")
    short_clocks = {
        uuid.uuid5(t, f"sla-clock:{k}") for t in short for k in ("response", "resolution")
    }
    _once_each(tally, "store sla-timer: breaches", breached, short_clocks)
    warned = suite.store_rows("sla-timer", "SlaClock.Warned")
    tally.rows["store sla-timer: warnings"] = sum(warned.values())
    tally.check(
        "store sla-timer: no warning twice (two thresholds a clock)",
        all(n <= 2 for n in warned.values()),  # the default thresholds: 75 % and 90 %
        f"{sum(1 for n in warned.values() if n > 2)} clocks warned more than twice",
    )
    del resolution


def _tally_topics(
    suite: Harness, tally: Tally, alive: set[uuid.UUID], short: set[uuid.UUID]
) -> None:
    def per_subject(topic: str, event_type: str) -> Counter[uuid.UUID]:
        ids: dict[uuid.UUID, set[str]] = defaultdict(set)
        records = [r for r in read_topic(suite.bootstrap, topic) if r.event_type() == event_type]
        for r in records:
            document = r.json()
            ids[uuid.UUID(document["subject_id"])].add(document["event_id"])
        tally.rows[f"topic {event_type}: records read"] = len(records)
        return Counter({s: len(e) for s, e in ids.items()})

    def per_clock(event_type: str) -> Counter[uuid.UUID]:
        ids: dict[uuid.UUID, set[str]] = defaultdict(set)
        records = [r for r in sla if r.event_type() == event_type]
        for r in records:
            document = r.json()
            ids[uuid.UUID(document["data"]["clock_id"])].add(document["event_id"])
        tally.rows[f"topic {event_type}: records read"] = len(records)
        return Counter({s: len(e) for s, e in ids.items()})

    sla = read_topic(suite.bootstrap, topics.SLA)
    started = per_clock("SlaClockStarted")
    tally.check(
        "topic SlaClockStarted: one event id a clock, every response clock",
        all(n == 1 for n in started.values())
        and {uuid.uuid5(t, "sla-clock:response") for t in alive} <= set(started),
        f"{sum(1 for n in started.values() if n > 1)} clocks with two start events",
    )
    breached = per_clock("SlaBreached")
    _once_each(
        tally,
        "topic SlaBreached: distinct event ids",
        breached,
        {uuid.uuid5(t, f"sla-clock:{k}") for t in short for k in ("response", "resolution")},
    )
    opened = per_subject(topics.TICKETS, "TicketOpened")
    _once_each(tally, "topic TicketOpened: distinct event ids", opened, alive)
    triaged = per_subject(topics.TRIAGE, "TicketTriaged")
    _once_each(tally, "topic TicketTriaged: distinct event ids", triaged, alive)
    dead = read_topic(suite.bootstrap, topics.DEAD_LETTER)
    reasons = Counter(
        f"{r.headers.get('source_service', b'?').decode()}/"
        f"{r.headers.get('error_reason', b'?').decode()}"
        for r in dead
    )
    tally.rows["topic dead letters"] = len(dead)
    tally.check("no dead letters from valid traffic", not dead, f"{dict(reasons)}")


def _tally_mail(suite: Harness, tally: Tally, alive: set[uuid.UUID], short: set[uuid.UUID]) -> None:
    references = _references(suite)
    confirmations = _mails_by_reference(suite, "ticket_confirmation")
    expected = {references[t] for t in alive if t in references}
    _mail_once(tally, "mail confirmations", confirmations, expected)
    breaches = _mails_by_reference(suite, "sla_breach", per_kind=True)
    expected_breaches = {
        f"{references[t]} {k}" for t in short if t in references for k in ("response", "resolution")
    }
    _mail_once(tally, "mail breach alerts", breaches, expected_breaches)
    tally.rows["mail warnings"] = sum(
        len(v) for v in _mails_by_reference(suite, "sla_warning", per_kind=True).values()
    )
    tally.rows["mails in total"] = len(suite.mail.messages)


def _references(suite: Harness) -> dict[uuid.UUID, str]:
    return {
        uuid.UUID(r.json()["subject_id"]): r.json()["data"]["reference"]
        for r in read_topic(suite.bootstrap, topics.TICKETS)
        if r.event_type() == "TicketOpened"
    }


def _mails_by_reference(suite: Harness, kind: str, per_kind: bool = False) -> dict[str, list[Mail]]:
    """The notifier's mails of one kind (its X-Servicedesk-Kind header: the subject is in
    the customer's language) by the ticket reference in their subject."""
    found: dict[str, list[Mail]] = defaultdict(list)
    for mail in suite.mail.messages:
        subject = str(mail["Subject"])
        if mail["X-Servicedesk-Kind"] != kind or not subject.startswith("[SD-"):
            continue
        reference = subject[1 : subject.index("]")]
        key = reference
        if per_kind:
            key = f"{reference} {subject.split(' SLA ', 1)[1].split(' ', 1)[0]}"
        found[key].append(mail)
    return found


def _mail_once(tally: Tally, name: str, mails: dict[str, list[Mail]], expected: set[str]) -> None:
    """Each expected mail at least once; a resend with the same Message-ID is explained
    (at-least-once delivery across a crash), one with a new Message-ID is not."""
    absent = expected - set(mails)
    resent_same = sum(len(v) - len({str(m["Message-ID"]) for m in v}) for v in mails.values())
    resent_new = sum(len({str(m["Message-ID"]) for m in v}) - 1 for v in mails.values())
    tally.rows[name] = sum(len(v) for v in mails.values())
    tally.rows[f"{name}: resent, same Message-ID"] = resent_same
    tally.rows[f"{name}: resent, new Message-ID"] = resent_new
    tally.check(
        f"{name}: none missing", not absent, f"{len(absent)} never mailed: {sorted(absent)[:3]}"
    )
    tally.check(
        f"{name}: no unexplained duplicates",
        resent_new == 0,
        f"{resent_new} sent again with a new Message-ID",
    )


def after_drain_health(suite: Harness, tally: Tally, phase: str = "") -> None:
    unhealthy = suite.unhealthy()
    tally.check(f"every service healthy after drain{phase}", not unhealthy, f"{unhealthy}")
    lags = suite.lags()
    tally.check(f"no consumer or relay lag after drain{phase}", not lags, f"{lags}")
    opened = suite.opened_tickets()
    missing: set[uuid.UUID] = set()

    def view_complete() -> bool:
        missing.clear()
        missing.update(opened - _gateway_tickets(suite))
        return not missing

    # The view is eventually consistent: give its follower a moment beyond the drain.
    with contextlib.suppress(TimeoutError):
        suite.wait(view_complete, 30, "the gateway's view")
    tally.rows[f"gateway view{phase}: opened tickets missing"] = len(missing)
    tally.check(
        f"gateway view{phase}: every opened ticket shown",
        not missing,
        f"{len(missing)} of {len(opened)} missing, e.g. {sorted(map(str, missing))[:3]}",
    )


def _gateway_tickets(suite: Harness) -> set[uuid.UUID]:
    port = suite.stack.config.gateway_port
    try:
        shown = all_tickets(f"http://127.0.0.1:{port}", AGENT)
    except httpx.HTTPError:
        return set()
    return {uuid.UUID(v["ticket_id"]) for v in shown}
