"""The stack under test: broker, mail sink, the six services on PostgreSQL and their
supervisor; the faults it can inflict; what it can read back (stores, health, lags)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from servicedesk_contracts import topics
from servicedesk_contracts.messages import ticket_id_for_request
from servicedesk_runtime.kafka import ensure_topics
from servicedesk_runtime.tansu import EmbeddedBroker, free_port
from servicedesk_stack.demo import provider_r_medium
from servicedesk_stack.faults.clients import Publisher, free_low_port
from servicedesk_stack.faults.inputs import HOURS_AGREEMENT, SHORT_AGREEMENT, command, submit_ticket
from servicedesk_stack.mail_sink import MailSink
from servicedesk_stack.stack import SERVICES, Stack, StackConfig, Supervisor

STORED = ("intake", "triage", "sla-timer", "billing", "notifier")
"""The services with an event store (the gateway keeps a view in memory)."""

Say = Callable[[str], None]


@dataclass
class SuiteConfig:
    database_url: str
    data_dir: Path
    tickets: int = 300
    rate: float = 20.0
    """Tickets published per second."""
    kills: int = 4
    short_share: float = 0.25
    """Share of the tickets on the 24x7 agreement with short targets."""
    short_response_minutes: float = 0.1
    short_resolution_minutes: float = 0.25
    hostile: int = 500
    hostile_valid: int = 50
    big_bodies: int = 3
    """Messages over 1 MB in the hostile phase (the broker holds them in memory)."""
    drain_timeout: float = 600
    quiet_seconds: float = 15
    """Counts unchanged this long (and every service healthy): drained."""
    seed: int | None = None


class Harness:
    """Owns a broker, a mail sink, the stack and its supervisor for one run."""

    def __init__(self, config: SuiteConfig, say: Say = print) -> None:
        self.config = config
        self.say = say
        self.seed = config.seed if config.seed is not None else random.randrange(1 << 30)
        self.random = random.Random(self.seed)  # --seed repeats a run's choices
        self.prefix = f"fs{uuid.uuid4().hex[:8]}_"
        self.appname = f"servicedesk-{self.prefix}stack"
        self.broker = EmbeddedBroker(
            port=free_low_port(), log_path=config.data_dir / "logs" / "tansu.log"
        )
        self.mail = MailSink(free_port())
        self.stack = Stack(
            StackConfig(
                bootstrap=self.broker.bootstrap,
                data_dir=config.data_dir,
                database_url=config.database_url,
                smtp_port=self.mail.port,
                gateway_port=free_port(),
                schema_prefix=self.prefix,
                # libpq names every connection of the services: the driver terminates
                # exactly those, never another test's.
                extra_env={"PGAPPNAME": self.appname},
            )
        )
        self.supervisor = Supervisor(self.stack, shortest=0.5, longest=8)
        self.probes: dict[uuid.UUID, uuid.UUID] = {}
        self.opened_tickets_cache: set[uuid.UUID] = set()

    def __enter__(self) -> Harness:
        (self.config.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.broker.start()
        self.mail.start()
        self.stack.start()
        self.stack.wait_ready(timeout=180)
        return self

    def __exit__(self, *_: object) -> None:
        self.stack.stop()
        self.broker.stop()
        self.mail.stop()
        with self._sql() as connection:
            for service in SERVICES:
                connection.execute(f'DROP SCHEMA IF EXISTS "{self.schema(service)}" CASCADE')

    @contextlib.contextmanager
    def _sql(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        with psycopg.connect(
            self.config.database_url, autocommit=True, application_name=f"{self.appname}-driver"
        ) as connection:
            yield connection

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def schema(self, service: str) -> str:
        return f"{self.prefix}{service.replace('-', '_')}"

    def supervise(self) -> None:
        for service in self.supervisor.check():
            self.say(f"  restarted {service}")

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Polls `predicate` (supervising meanwhile) until truthy; TimeoutError after."""
        deadline = time.monotonic() + timeout
        while True:
            self.supervise()
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.5)

    def is_running(self, service: str) -> bool:
        process = self.stack.processes.get(service)
        return process is not None and process.poll() is None

    def kill(self, service: str) -> bool:
        if not self.is_running(service):
            return False  # already down, the supervisor is on it
        process = self.stack.processes[service]
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True

    def terminate_connections(self) -> int:
        with self._sql() as connection:
            row = connection.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (self.appname,),
            ).fetchone()
        return int(row[0]) if row else 0

    def restart_broker(self, killed: bool = False) -> None:
        """kill -9 the broker and start a new one on the same port (new cluster id, empty
        topics), as the embedded run would after a crash. The topics are created at once,
        as a deployment's set-up step would: a topic that clients auto-create while a
        service creates it too can leave Tansu refusing produce requests with
        `AlreadyExists`, one offset per request, for minutes (seen in this suite)."""
        if not killed:
            self.broker.kill()
        self.broker = EmbeddedBroker(port=self.broker.port, log_path=self.broker.log_path)
        self.broker.start()
        asyncio.run(ensure_topics(self.bootstrap))

    def store_rows(self, service: str, event: str) -> Counter[uuid.UUID]:
        """Stored events per aggregate whose topic ends with `event` (`Ticket.Opened`)."""
        table = f'"{self.schema(service)}".{service.replace("-", "_")}_events'
        with self._sql() as connection:
            try:
                rows = connection.execute(
                    f"SELECT originator_id, count(*) FROM {table} "
                    "WHERE topic LIKE %s GROUP BY originator_id",
                    (f"%:{event}",),
                ).fetchall()
            except psycopg.errors.UndefinedTable:
                return Counter()
        return Counter({uuid.UUID(str(r[0])): int(r[1]) for r in rows})

    def opened_tickets(self) -> set[uuid.UUID]:
        return set(self.store_rows("intake", "Ticket.Opened"))

    def signature(self) -> tuple[int, ...]:
        """What changes while the system still works: row counts of every store, mails."""
        with self._sql() as connection:
            counts = []
            for service in STORED:
                table = f'"{self.schema(service)}".{service.replace("-", "_")}_events'
                try:
                    row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
                except psycopg.errors.UndefinedTable:
                    row = (0,)
                counts.append(int(row[0]) if row else 0)
        return (*counts, len(self.mail.messages))

    def unhealthy(self) -> list[str]:
        bad = []
        for service in SERVICES:
            try:
                status = httpx.get(self.stack.health_url(service), timeout=2).status_code
            except httpx.HTTPError as error:
                status = type(error).__name__  # type: ignore[assignment]
            if status != 200:
                bad.append(f"{service}:{status}")
        return bad

    def lags(self) -> dict[str, float]:
        """Non-zero consumer and relay lags, per service and topic."""
        found: dict[str, float] = {}
        for service in SERVICES:
            port = self.stack.config.port_of(service)
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if (
                        sample.name
                        in (
                            "servicedesk_consumer_lag_messages",
                            "servicedesk_relay_lag_events",
                        )
                        and sample.value
                    ):
                        where = sample.labels.get("topic", "relay")
                        found[f"{service}/{where}"] = sample.value
        return found

    def drain(self, ready: Callable[[], bool] = lambda: True) -> float:
        """Waits until every service is healthy, `ready()` holds and the stores and the
        mailbox stop changing for `quiet_seconds`; returns the seconds it took."""
        started = time.monotonic()
        deadline = started + self.config.drain_timeout
        last: tuple[int, ...] = ()
        since = time.monotonic()
        while True:
            self.supervise()
            now_signature = self.signature()
            if now_signature != last:
                last, since = now_signature, time.monotonic()
            quiet = time.monotonic() - since
            if quiet >= self.config.quiet_seconds and not self.unhealthy() and ready():
                return time.monotonic() - started - quiet
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"not drained after {self.config.drain_timeout:.0f}s: stores and mails "
                    f"{now_signature}, unhealthy {self.unhealthy()}"
                )
            time.sleep(1)

    def register_agreements(self) -> None:
        minutes = {
            "response_minutes": self.config.short_response_minutes,
            "resolution_minutes": self.config.short_resolution_minutes,
        }
        short = {
            "customer": "Fault Suite 24x7",
            "plan": "Z Premium",
            "targets": dict.fromkeys(("P1", "P2", "P3", "P4"), minutes),
            "billing": {"model": "monthly_invoice", "hourly_rate_cents": 12000},
        }
        Publisher(self.bootstrap).send(
            topics.BILLING_COMMANDS,
            [
                (
                    str(SHORT_AGREEMENT).encode(),
                    command("RegisterPlanAgreement", SHORT_AGREEMENT, short),
                ),
                (
                    str(HOURS_AGREEMENT).encode(),
                    command("RegisterAgreement", HOURS_AGREEMENT, provider_r_medium()),
                ),
            ],
        )
        # One ticket on each, through to its SLA clock: both agreements are known
        # everywhere before the stream starts (a ticket naming an unknown agreement is
        # another matter).
        probes = {uuid.uuid4(): a for a in (SHORT_AGREEMENT, HOURS_AGREEMENT)}
        Publisher(self.bootstrap).send(
            topics.INBOUND,
            [
                (str(r).encode(), json.dumps(submit_ticket(r, a, -1)).encode())
                for r, a in probes.items()
            ],
        )
        self.probes = probes
        self.wait(
            lambda: all(
                self.store_rows("sla-timer", "SlaClock.Started").get(
                    uuid.uuid5(ticket_id_for_request(r), "sla-clock:response")
                )
                for r in probes
            ),
            120,
            "the probe tickets' SLA clocks",
        )
