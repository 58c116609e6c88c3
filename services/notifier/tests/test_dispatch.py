"""The dispatcher on a real store (SQLite and PostgreSQL) and a real SMTP server: mail goes
out after the request was committed, once, and a crash between sending and recording sends
it once more with the same Message-ID."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from servicedesk_contracts import messages as m
from servicedesk_notifier.application import Notifier
from servicedesk_notifier.dispatch import Dispatcher, RetryPolicy
from servicedesk_notifier.dispatch_log import DispatchLog
from servicedesk_notifier.domain import Delivery
from servicedesk_notifier.smtp import SmtpMailer
from servicedesk_runtime.consumer import Rejected
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.metrics import CATALOGUE
from servicedesk_runtime.store import ServiceStore
from servicedesk_runtime.tansu import free_port
from servicedesk_stack.mail_sink import MailSink
from servicedesk_stack.waiting import eventually

from .conftest import mail_id_of, message_ids, outcomes, ticket_opened
from .test_read_ahead import SelectEvents

pytestmark = pytest.mark.integration

QUICK = RetryPolicy(attempts=200, first_wait_seconds=0.02, max_wait_seconds=0.2)


def request_confirmations(store: ServiceStore, count: int) -> list[uuid.UUID]:
    """Applies `count` TicketOpened the way the consumer does; returns the delivery ids."""
    handlers = Notifier("oncall@example.com").handlers()
    uow = store.unit_of_work()
    opened = [ticket_opened(n) for n in range(1, count + 1)]
    for message in opened:
        handlers["TicketOpened"](message, uow)
    uow.commit()
    return [Delivery.create_id(o.event_id, "ticket_confirmation") for o in opened]


def dispatcher(
    store: ServiceStore, database: Database, port: int, policy: RetryPolicy = QUICK
) -> Dispatcher:
    mailer = SmtpMailer("127.0.0.1", port, "servicedesk@example.com", timeout=5)
    return Dispatcher(store=store, log=DispatchLog(database), mailer=mailer, policy=policy)


def counted(name: str, kind: str = "ticket_confirmation") -> float:
    return CATALOGUE.get_sample_value(name, {"kind": kind}) or 0.0


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs, nothing catches it."""


class CrashingOnRecord(Dispatcher):
    """Dies right after the server accepted the `crash_on`th mail, before recording it."""

    def __init__(self, *args: object, crash_on: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.crash_on = crash_on
        self.recorded = 0

    def _record(self, sent: list[tuple[Delivery, Any]]) -> None:
        self.recorded += len(sent)
        if self.recorded >= self.crash_on:
            raise Crash
        super()._record(sent)


async def run_until(dispatching: Dispatcher, condition: object, what: str) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(dispatching.run(stop))
    try:
        await eventually(condition, 60, what)  # type: ignore[arg-type]
    finally:
        stop.set()
        await task


async def test_each_requested_mail_goes_out_once_after_commit_with_a_stable_message_id(
    store: ServiceStore, database: Database, sink: MailSink
) -> None:
    deliveries = request_confirmations(store, 5)
    uncommitted = store.unit_of_work()  # a batch that is thrown away sends nothing
    Notifier("oncall@example.com").handlers()["TicketOpened"](ticket_opened(99), uncommitted)
    sent_before = counted("servicedesk_notifications_sent_total")

    await run_until(
        dispatcher(store, database, sink.port),
        lambda: len(outcomes(store)) == 5,
        "five outcomes recorded",
    )
    assert outcomes(store) == {d: ["sent"] for d in deliveries}
    assert message_ids(sink) == {mail_id_of(store, d): 1 for d in deliveries}
    assert counted("servicedesk_notifications_sent_total") - sent_before == 5
    # Read the whole log again (as after a lost position): recorded, so nothing goes out.
    positions = DispatchLog(database)
    followed = positions.position()
    positions.advance(0)
    await run_until(
        dispatcher(store, database, sink.port),
        lambda: positions.position() == followed,
        "the log followed again",
    )
    assert len(sink.messages) == 5


async def test_mail_the_consumer_just_requested_is_sent_without_reading_each_delivery(
    store: ServiceStore, database: Database, sink: MailSink
) -> None:
    """The dispatcher reads the requested deliveries as the consumer does (versions in one
    query, the copies committed in this process from the cache), and a copy that another
    writer changed since is read again, not trusted."""
    deliveries = request_confirmations(store, 12)
    changed: Delivery = store.repository.get(deliveries[0])  # another writer records it sent
    changed.record_sent(1, "<elsewhere@example.com>")
    store.save(changed)
    reads = SelectEvents(store)
    await run_until(
        dispatcher(store, database, sink.port),
        lambda: len(outcomes(store)) == 12,
        "twelve outcomes recorded",
    )
    # Only the delivery changed behind the cache's back was read on its own; it was
    # recorded elsewhere, so it is not sent again.
    assert reads.count == 1
    assert len(sink.messages) == 11
    assert outcomes(store)[deliveries[0]] == ["sent"]


async def test_a_crash_between_sending_and_recording_resends_once_with_the_same_message_id(
    store: ServiceStore, database: Database, sink: MailSink, database_url: str
) -> None:
    deliveries = request_confirmations(store, 3)
    resent_before = counted("servicedesk_notifications_resent_total")
    crashing = CrashingOnRecord(
        store=store,
        log=DispatchLog(database),
        mailer=SmtpMailer("127.0.0.1", sink.port, "servicedesk@example.com"),
        policy=QUICK,
        crash_on=2,
        record_every=1,  # each mail recorded before the next goes out
    )
    with pytest.raises(Crash):
        await crashing.run(asyncio.Event())
    assert message_ids(sink) == {
        mail_id_of(store, deliveries[0]): 1,
        mail_id_of(store, deliveries[1]): 1,
    }

    # The next start (a fresh store object on the same database, as after a restart).
    restarted = ServiceStore(DatabaseUrl.parse(database_url, "notifier"), "notifier")
    try:
        await run_until(
            dispatcher(restarted, database, sink.port),
            lambda: len(outcomes(restarted)) == 3,
            "three outcomes recorded",
        )
    finally:
        restarted.close()
    # Drained: every delivery has its one outcome; only the interrupted one went twice,
    # both times with its own Message-ID.
    assert outcomes(store) == {d: ["sent"] for d in deliveries}
    assert message_ids(sink) == {
        mail_id_of(store, deliveries[0]): 1,
        mail_id_of(store, deliveries[1]): 2,
        mail_id_of(store, deliveries[2]): 1,
    }
    assert counted("servicedesk_notifications_resent_total") - resent_before == 1


async def test_mail_waits_for_a_server_that_is_down_and_each_arrives_once_when_it_is_up(
    store: ServiceStore, database: Database
) -> None:
    """Bounded by time, not by a count of attempts: a server away for many more attempts
    than the old bound of 8 (a minute at the production waits, here at 1:20 scale)."""
    deliveries = request_confirmations(store, 4)
    retries_before = counted("servicedesk_notification_send_retries_total")
    late_sink = MailSink(free_port())  # not listening yet
    policy = RetryPolicy(
        attempts=None, first_wait_seconds=0.01, max_wait_seconds=0.1, give_up_after_seconds=60
    )
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher(store, database, late_sink.port, policy).run(stop))
    try:
        await eventually(
            lambda: counted("servicedesk_notification_send_retries_total") - retries_before >= 20,
            30,
            "sends retried while the server is down",
        )
        assert outcomes(store) == {}
        late_sink.start()
        await eventually(lambda: len(outcomes(store)) == 4, 60, "four outcomes recorded")
    finally:
        stop.set()
        await task
        late_sink.stop()
    assert outcomes(store) == {d: ["sent"] for d in deliveries}
    assert message_ids(late_sink) == {mail_id_of(store, d): 1 for d in deliveries}


async def test_past_its_bounds_or_when_unsendable_a_mail_is_recorded_failed_and_the_rest_go(
    store: ServiceStore, database: Database, sink: MailSink
) -> None:
    failed_before = counted("servicedesk_notifications_failed_total")
    unsendable = Delivery(
        caused_by=uuid.uuid4(),
        kind="ticket_confirmation",
        recipient="user@nordlicht.de\n",  # would end the header block
        subject_line="[SD-000001] We received your request",
        body="",
    )
    store.save(unsendable)
    deliveries = request_confirmations(store, 2)
    await run_until(
        dispatcher(store, database, sink.port),
        lambda: len(outcomes(store)) == 3,
        "three outcomes recorded",
    )
    assert outcomes(store)[unsendable.id] == ["failed"]
    assert message_ids(sink) == {mail_id_of(store, d): 1 for d in deliveries}

    # A server that stays away: failed after the last of its attempts, never blocked.
    away = free_port()
    later = request_confirmations(store, 1)
    await run_until(
        dispatcher(store, database, away, RetryPolicy(attempts=2, first_wait_seconds=0.01)),
        lambda: later[0] in outcomes(store),
        "the outcome with the server away",
    )
    assert outcomes(store)[later[0]] == ["failed"]
    assert counted("servicedesk_notifications_failed_total") - failed_before == 2


async def test_a_failed_delivery_resent_on_request_goes_out_once_with_its_message_id(
    store: ServiceStore, database: Database, sink: MailSink
) -> None:
    [delivery] = request_confirmations(store, 1)
    away = free_port()
    await run_until(
        dispatcher(store, database, away, RetryPolicy(attempts=1, first_wait_seconds=0.01)),
        lambda: delivery in outcomes(store),
        "the delivery failed with the server away",
    )
    handlers = Notifier("oncall@example.com").handlers()
    resend = m.ResendNotification.create(
        producer="gateway", subject_id=delivery, data={"requested_by": "mette"}
    )
    uow = store.unit_of_work()
    handlers["ResendNotification"](resend, uow)
    uow.commit()
    DispatchLog(database).advance(0)  # the request and its resend in one round: one mail
    await run_until(
        dispatcher(store, database, sink.port),
        lambda: outcomes(store)[delivery] == ["failed", "sent"],
        "the resent delivery recorded as sent",
    )
    assert message_ids(sink) == {mail_id_of(store, delivery): 1}
    with pytest.raises(Rejected):  # it was sent: nothing to resend
        handlers["ResendNotification"](resend, store.unit_of_work())


class _Greylisting:
    """An SMTP server that defers one recipient (450, as greylisting does) and keeps the
    rest."""

    def __init__(self, deferred: str) -> None:
        self.deferred = deferred
        self.kept: list[str] = []

    async def handle_RCPT(
        self, server: object, session: object, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address == self.deferred:
            return "450 4.2.0 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.kept.extend(envelope.rcpt_tos)
        return "250 OK"


async def test_a_recipient_deferred_for_now_does_not_hold_up_everyone_elses_mail(
    store: ServiceStore, database: Database
) -> None:
    deliveries = request_confirmations(store, 3)  # to user1, user2, user3 @nordlicht.de
    server = _Greylisting("user1@nordlicht.de")
    controller = Controller(server, hostname="127.0.0.1", port=free_port())
    controller.start()
    # Bounded by an hour: without the per-recipient bound user1 would hold the queue for it.
    policy = RetryPolicy(
        attempts=None, first_wait_seconds=0.01, max_wait_seconds=0.05, give_up_after_seconds=3600
    )
    try:
        await run_until(
            dispatcher(store, database, controller.port, policy),
            lambda: len(outcomes(store)) == 3,
            "three outcomes recorded",
        )
    finally:
        controller.stop()
    assert outcomes(store) == {
        deliveries[0]: ["failed"],  # listed at GET /notifications, resendable
        deliveries[1]: ["sent"],
        deliveries[2]: ["sent"],
    }
    assert sorted(server.kept) == ["user2@nordlicht.de", "user3@nordlicht.de"]


async def test_a_crash_before_a_group_is_recorded_resends_that_group_with_its_message_ids(
    store: ServiceStore, database: Database, sink: MailSink, database_url: str
) -> None:
    """Mail goes out in groups recorded together: a kill -9 before the record sends the
    group's mails again (never with another Message-ID), and each counts as resent."""
    deliveries = request_confirmations(store, 3)
    resent_before = counted("servicedesk_notifications_resent_total")
    crashing = CrashingOnRecord(
        store=store,
        log=DispatchLog(database),
        mailer=SmtpMailer("127.0.0.1", sink.port, "servicedesk@example.com"),
        policy=QUICK,
        crash_on=1,
    )
    with pytest.raises(Crash):
        await crashing.run(asyncio.Event())
    assert message_ids(sink) == {mail_id_of(store, d): 1 for d in deliveries}

    restarted = ServiceStore(DatabaseUrl.parse(database_url, "notifier"), "notifier")
    try:
        await run_until(
            dispatcher(restarted, database, sink.port),
            lambda: len(outcomes(restarted)) == 3,
            "three outcomes recorded",
        )
    finally:
        restarted.close()
    assert outcomes(store) == {d: ["sent"] for d in deliveries}
    assert message_ids(sink) == {mail_id_of(store, d): 2 for d in deliveries}
    assert counted("servicedesk_notifications_resent_total") - resent_before == 3


class _Busy:
    """An SMTP server that answers 451 to the data of mail to one recipient until told
    to take it, and keeps the rest."""

    def __init__(self, busy_for: str) -> None:
        self.busy_for: str | None = busy_for
        self.kept: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        if self.busy_for in envelope.rcpt_tos:
            return "451 4.3.0 Busy, try again later"
        self.kept.extend(envelope.rcpt_tos)
        return "250 OK"


async def test_a_mail_waiting_for_a_retry_does_not_hold_up_the_receipts_before_it(
    store: ServiceStore, database: Database
) -> None:
    deliveries = request_confirmations(store, 3)  # one group: user1, user2, user3
    server = _Busy("user2@nordlicht.de")
    controller = Controller(server, hostname="127.0.0.1", port=free_port())
    controller.start()
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher(store, database, controller.port).run(stop))
    try:
        await eventually(
            lambda: outcomes(store) == {deliveries[0]: ["sent"]},
            30,
            "the first mail recorded while the second waits",
        )
        server.busy_for = None
        await eventually(lambda: len(outcomes(store)) == 3, 30, "three outcomes recorded")
    finally:
        stop.set()
        await task
        controller.stop()
    assert outcomes(store) == {d: ["sent"] for d in deliveries}
    assert server.kept == [f"user{n}@nordlicht.de" for n in (1, 2, 3)]
