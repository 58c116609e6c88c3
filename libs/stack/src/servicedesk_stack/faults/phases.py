"""The two phases of the fault suite (a storm of tickets under faults; hostile input) and
the whole run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from servicedesk_contracts import topics
from servicedesk_contracts.messages import ticket_id_for_request
from servicedesk_stack.faults.clients import Publisher, Record, read_topic
from servicedesk_stack.faults.counting import StormReport, Tally, after_drain_health, count_storm
from servicedesk_stack.faults.harness import Harness, Say, SuiteConfig
from servicedesk_stack.faults.inputs import (
    HOURS_AGREEMENT,
    SHORT_AGREEMENT,
    Hostile,
    hostile_batch,
    submit_ticket,
)
from servicedesk_stack.stack import SERVICES


def storm_phase(suite: Harness) -> StormReport:
    """Publishes the tickets at a steady rate while killing services, terminating the
    stores' connections once and restarting the broker once."""
    config = suite.config
    report = StormReport()
    report.requests = [uuid.uuid4() for _ in range(config.tickets)]
    shorts = set(
        suite.random.sample(range(config.tickets), int(config.tickets * config.short_share))
    )
    report.short = {report.requests[i] for i in shorts}
    handed = [0]

    def messages() -> Iterator[tuple[bytes | None, bytes]]:
        for n, request in enumerate(report.requests):
            agreement = SHORT_AGREEMENT if request in report.short else HOURS_AGREEMENT
            yield (
                str(request).encode(),
                json.dumps(submit_ticket(request, agreement, n)).encode(),
            )

    def count_handed(i: int) -> None:
        handed[0] = i + 1

    failure: list[BaseException] = []

    def publish() -> None:
        try:
            report.published = asyncio.run(
                Publisher(suite.bootstrap).send_all(
                    topics.INBOUND, messages(), config.rate, count_handed
                )
            )
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=publish, name="publisher", daemon=True)
    started = time.monotonic()
    thread.start()
    plan = fault_plan(suite.random, config.kills)
    duration = config.tickets / config.rate
    every = duration / (len(plan) + 1)
    for step, fault in enumerate(plan, start=1):
        _until(suite, started + step * every)
        _inflict(suite, fault, report, handed)
    while thread.is_alive():
        suite.supervise()
        thread.join(0.5)
    if failure:
        raise failure[0]
    report.publish_seconds = time.monotonic() - started
    return report


def fault_plan(rnd: random.Random, kills: int) -> list[str]:
    """The faults in order: every service killed once (when there are kills enough), the
    rest at random; the connection kill at a third, the broker restart at two thirds."""
    victims = list(SERVICES)
    rnd.shuffle(victims)
    chosen = victims[:kills] + [rnd.choice(SERVICES) for _ in range(kills - len(SERVICES))]
    plan = [f"kill:{v}" for v in chosen]
    plan.insert(len(plan) // 3, "connections")
    plan.insert(2 * len(plan) // 3, "broker")
    # A gateway started after (or just before, into the broker's absence) the restart
    # builds its view afresh and would hide whether a running one notices the new
    # broker: it is killed first, long before the restart.
    gateway = [f for f in plan if f == "kill:gateway"]
    return gateway + [f for f in plan if f != "kill:gateway"]


def _until(suite: Harness, moment: float) -> None:
    """Supervises until `moment` (the fault schedule's next step)."""
    while time.monotonic() < moment:
        suite.supervise()
        time.sleep(min(0.2, max(moment - time.monotonic(), 0)))


def _inflict(suite: Harness, fault: str, report: StormReport, handed: list[int]) -> None:
    if fault.startswith("kill:"):
        service = fault.removeprefix("kill:")
        # One that is down (restarting after the broker changed) is killed once it is
        # back, so that every service is killed at least once in a long run.
        with contextlib.suppress(TimeoutError):
            suite.wait(lambda: suite.is_running(service), 30, f"{service} to run again")
        if suite.kill(service):
            report.kills.append(service)
            suite.say(f"  kill -9 {service}")
        else:
            suite.say(f"  {service} was down already; not killed")
    elif fault == "connections":
        report.connections_terminated = suite.terminate_connections()
        suite.say(f"  terminated {report.connections_terminated} PostgreSQL connections")
    elif fault == "broker":
        sent = set(report.requests[: handed[0]])
        suite.broker.kill()
        # What intake had stored at that instant; everything else already handed to
        # the broker was in flight and may go with it.
        opened = suite.opened_tickets()
        report.in_flight_at_broker_restart = {
            r for r in sent if ticket_id_for_request(r) not in opened
        }
        suite.restart_broker(killed=True)
        suite.say(
            f"  broker killed and restarted; {len(report.in_flight_at_broker_restart)} "
            "requests were in flight"
        )


def hostile_phase(suite: Harness, tally: Tally) -> None:
    """Publishes hostile messages mixed with valid ones on the inbound topic; every
    valid one must open a ticket, every hostile one be dead-lettered with a reason (or
    read past as a duplicate), and no service may stall."""
    config = suite.config
    batch = hostile_batch(config.hostile, config.hostile_valid, config.big_bodies, suite.random)
    publisher = Publisher(suite.bootstrap, max_request_size=4 * 1024 * 1024)
    started = time.monotonic()
    asyncio.run(publisher.send_all(topics.INBOUND, ((h.key, h.value) for h in batch)))
    valid = {h.request for h in batch if h.expect == "valid" and h.request is not None}
    hostile_keys = {h.key for h in batch if h.expect == "dead_letter"}

    def all_settled() -> bool:
        opened = suite.opened_tickets()
        return all(ticket_id_for_request(r) in opened for r in valid)

    drain = suite.drain(all_settled)
    tally.rows["hostile: drain seconds"] = round(drain, 1)
    tally.rows["hostile: seconds in all"] = round(time.monotonic() - started, 1)
    suite.opened_tickets_cache = suite.opened_tickets()
    everything = read_topic(suite.bootstrap, topics.DEAD_LETTER)
    lettered: dict[bytes | None, Record] = {r.key: r for r in everything if r.key in hostile_keys}
    accepted = {
        r.json()["data"]["subject"]
        for r in read_topic(suite.bootstrap, topics.TICKETS)
        if r.event_type() == "TicketOpened"
    }
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for h in batch:
        by_kind[h.kind][_outcome(suite, h, lettered, accepted)] += 1
    tally.rows.update(
        {f"hostile {kind}: {o}": n for kind, c in sorted(by_kind.items()) for o, n in c.items()}
    )
    outcomes: Counter[str] = sum(by_kind.values(), Counter())
    tally.rows.update({f"hostile, all kinds: {o}": n for o, n in sorted(outcomes.items())})
    valid_missing = sum(c["NOT OPENED"] for c in by_kind.values())
    tally.check("hostile: every valid one opened", not valid_missing, f"{valid_missing}")
    wrong = {
        f"{kind} {outcome}": n
        for kind, c in by_kind.items()
        for outcome, n in c.items()
        if outcome.isupper() and not (kind.startswith("line_break") and outcome == "OPENED")
    }
    tally.check(
        "hostile: every hostile one dead-lettered with a reason (a line break may be "
        "normalised instead)",
        not wrong and all(r.headers.get("error_reason") for r in lettered.values()),
        f"{wrong}",
    )
    others = Counter(
        f"{r.headers.get('source_service', b'?').decode()}/"
        f"{r.headers.get('error_reason', b'?').decode()}"
        for r in everything
        if r.key not in hostile_keys
    )
    tally.check("hostile: nothing else dead-lettered downstream", not others, f"{dict(others)}")
    _no_header_injected(suite, tally)
    after_drain_health(suite, tally, " (hostile)")


def _outcome(
    suite: Harness, h: Hostile, lettered: dict[bytes | None, Record], accepted: set[str]
) -> str:
    """What became of one message; upper case where it is not what should happen."""
    opened = suite.opened_tickets_cache
    if h.expect == "valid":
        return (
            "opened" if h.request and ticket_id_for_request(h.request) in opened else "NOT OPENED"
        )
    if h.expect == "duplicate":
        return "DEAD-LETTERED" if h.key in lettered else "read past as a duplicate"
    if h.key in lettered:
        return "dl:" + lettered[h.key].headers.get("error_reason", b"NO REASON").decode()
    if (h.request and ticket_id_for_request(h.request) in opened) or (
        h.subject and h.subject in accepted
    ):
        return "OPENED"
    return "NEITHER DEAD-LETTERED NOR OPENED"


def _no_header_injected(suite: Harness, tally: Tally) -> None:
    injected = [
        str(mail["Subject"])
        for mail in suite.mail.messages
        if mail["X-Injected"] is not None or mail["Bcc"] is not None
    ]
    tally.check("hostile: no header injected into a mail", not injected, f"{injected[:3]}")


@dataclass
class Results:
    storm: StormReport
    tally: Tally

    def summary(self) -> str:
        storm, tally = self.storm, self.tally
        lines = [f"{'count':<60} {'value':>10}", "-" * 71]
        lines += [f"{name:<60} {value:>10}" for name, value in tally.rows.items()]
        lines += ["", "invariants:"]
        lines += [
            f"  {'ok  ' if f.ok else 'FAIL'} {f.name}" + ("" if f.ok else f": {f.detail}")
            for f in tally.findings
        ]
        kills = Counter(storm.kills)
        lines += [
            "",
            f"kills: {dict(kills)}; restarts by the supervisor: {storm.restarts}",
            f"fault-suite: {storm.published} tickets in {storm.publish_seconds:.0f}s, "
            f"{len(storm.kills)} kills, {storm.connections_terminated} connections terminated, "
            f"1 broker restart; lost in the broker {tally.lost_in_broker} "
            f"(in flight {len(storm.in_flight_at_broker_restart)}); drain "
            f"{storm.drain_seconds:.1f}s; {len(tally.failures)} invariant(s) failed",
        ]
        return "\n".join(lines)


def run(config: SuiteConfig, say: Say = print, hostile: bool = True) -> Results:
    with Harness(config, say) as suite:
        say(f"stack up on {suite.bootstrap} (schemas {suite.prefix}*, seed {suite.seed})")
        suite.register_agreements()
        say(f"publishing {config.tickets} tickets at {config.rate}/s with faults")
        storm = storm_phase(suite)
        last_short = time.monotonic() + 60 * config.short_resolution_minutes
        say("draining")
        storm.drain_seconds = suite.drain(lambda: time.monotonic() > last_short)
        storm.restarts = dict(suite.supervisor.restarts)
        say(f"drained in {storm.drain_seconds:.1f}s; counting")
        tally = count_storm(suite, storm)
        after_drain_health(suite, tally)
        if hostile:
            say(f"hostile phase: {config.hostile} hostile + {config.hostile_valid} valid")
            hostile_phase(suite, tally)
        return Results(storm, tally)
