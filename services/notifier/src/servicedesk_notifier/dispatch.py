"""The dispatcher: sends each delivery's mail AFTER its request was committed.

The consumer's handlers only record `Delivery.Requested`, committed together with the Kafka
position it came from. A handler error, a failed commit or a retried batch therefore sends
nothing. This loop follows the store's notification log (requests only) from a position
kept in the notifier's own database, sends each requested mail, and records `Dispatched` or
`Failed` on the delivery; the outbox relay publishes those as NotificationSent /
NotificationFailed.

Mail goes out in groups of `record_every` (10) deliveries, in log order, over one kept SMTP
connection (smtp.py): the group is marked started in `notifier_dispatch_started` in one
transaction, its mails are sent one after another, and their outcomes are recorded in one
transaction and unmarked in one more. Per mail that was three transactions and a
connection; most of the notifier's CPU.

Delivery is at-least-once, and a repeat is recognisable: when the notifier stops (a crash,
kill -9, a lost database) after the mail server accepted mail but before `Dispatched` was
recorded, the next round sends that mail once more, with the same Message-ID
(`<delivery id.reference@our domain>`): at most the mails of one group, every other mail
having been recorded. Finding the mark on a delivery still open means it may have been
sent before (`servicedesk_notifications_resent_total`); after a kill -9 that counts the
whole interrupted group, sent or not. A mail that has to wait for a retry first has the
outcomes before it recorded, so no receipt waits for another mail's server.

A mail server that is away or busy (connection errors, 4xx) is retried with bounded,
jittered exponential backoff (tenacity); after the last attempt, or at once for a mail that
can never be sent (a refused header or recipient), the delivery is recorded as failed and
the loop goes on. The dispatcher runs beside the consumer, so it never holds up consumption.
One dispatcher per notifier database: replicas sharing one would each send every mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from eventsourcing.persistence import IntegrityError
from eventsourcing.persistence import Notification as LogEntry
from eventsourcing.utils import get_topic

from servicedesk_notifier.dispatch_log import DispatchLog
from servicedesk_notifier.domain import Delivery
from servicedesk_notifier.smtp import SmtpMailer, Unsendable, build_mail, is_transient
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import (
    NOTIFICATION_SEND_RETRIES,
    NOTIFICATIONS_FAILED,
    NOTIFICATIONS_RESENT,
    NOTIFICATIONS_SENT,
)
from servicedesk_runtime.retry import Backoff, Stopped, retry
from servicedesk_runtime.signals import first_of
from servicedesk_runtime.store import ServiceStore

log = get_logger(__name__)

_TO_SEND = [get_topic(Delivery.Requested), get_topic(Delivery.ResendRequested)]
"""The store's events that ask for a mail to go out: a new delivery, or a resend."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long a mail server may be away before a delivery is recorded as failed."""

    attempts: int | None = 8
    first_wait_seconds: float = 0.5
    max_wait_seconds: float = 30.0
    give_up_after_seconds: float | None = None
    recipient_attempts: int = 3
    """Tries while only this mail's recipient is refused for now (4xx: greylisting, a full
    mailbox): mail goes out one at a time, so one such mail must not hold up everyone's for
    the whole time bound. It is failed then, listed and resendable."""


class _Stopping(Exception):
    """The service is shutting down while a send waits to be retried."""


class _RecordingFailed(Exception):
    """Recording earlier outcomes failed (a lost database) while a mail waited for a
    retry: the round fails as with any lost database; it is not this mail's failure."""


@dataclass(frozen=True)
class _Outcome:
    attempts: int
    error: str | None  # None: the server accepted the mail


class Dispatcher:
    def __init__(
        self,
        *,
        store: ServiceStore,
        log: DispatchLog,
        mailer: SmtpMailer,
        policy: RetryPolicy | None = None,
        batch_max: int = 100,
        poll_interval: float = 1.0,
        on_recorded: Callable[[], None] = lambda: None,
        record_every: int = 10,
    ) -> None:
        self.store = store
        self.log = log
        self.mailer = mailer
        self.policy = policy or RetryPolicy()
        self.batch_max = batch_max
        self.poll_interval = poll_interval
        self.on_recorded = on_recorded
        self.record_every = record_every
        """Mails sent before their outcomes are recorded together. A kill -9 may send up
        to this many again (same Message-IDs); 1 records each mail before the next."""
        self._requested = asyncio.Event()

    def wake(self) -> None:
        """Deliveries were requested (a batch committed): dispatch them now, not at the
        next poll."""
        self._requested.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatches until `stop`; a failed round (a lost database) is tried again with
        capped backoff, never ends the loop."""
        try:
            with contextlib.suppress(_Stopping, Stopped):
                while not stop.is_set():
                    self._requested.clear()  # a request from here on wakes the next round
                    dispatched = await retry(
                        lambda: self.dispatch_pending(stop),
                        retry_on=_worth_another_round,
                        stop=stop,
                        what="mail dispatch round",
                        backoff=Backoff(first=0.2, longest=5.0),
                    )
                    if dispatched < self.batch_max:
                        await self._wait_for_more(stop)
        finally:
            await asyncio.to_thread(self.mailer.close)  # a polite QUIT, not a dropped socket

    async def _wait_for_more(self, stop: asyncio.Event) -> None:
        """Caught up: a connection left idle is closed before the server times it out."""
        if self.mailer.idle:
            await asyncio.to_thread(self.mailer.close)
        await first_of(self._requested, stop, timeout=self.poll_interval)

    async def dispatch_pending(self, stop: asyncio.Event) -> int:
        """Dispatches the next requests of the notification log; returns how many."""
        position = await asyncio.to_thread(self.log.position)
        requests = await asyncio.to_thread(
            self.store.process_recorder.select_notifications,
            position + 1,
            self.batch_max,
            topics=_TO_SEND,
        )
        if not requests:
            return 0
        deliveries = await asyncio.to_thread(self._open, requests)
        for start in range(0, len(deliveries), self.record_every):
            await self._dispatch_group(deliveries[start : start + self.record_every], stop)
        # A crash before this reads the requests again: recorded ones are skipped then.
        await asyncio.to_thread(self.log.advance, requests[-1].id)
        return len(requests)

    def _open(self, requests: Sequence[LogEntry]) -> list[Delivery]:
        """The deliveries the requests ask for, in log order and once each (a resend may
        follow its request in one batch), without those already recorded. Read as the
        consumer reads: their versions in one query, and the copies the consumer just
        committed taken from the store's cache (a read and a decoding per mail before)."""
        ids = list(dict.fromkeys(uuid.UUID(str(request.originator_id)) for request in requests))
        reading = self.store.unit_of_work()  # never committed: outcomes are saved apart
        reading.prefetch((), ids)
        loaded = [reading.get(delivery_id, Delivery) for delivery_id in ids]
        return [delivery for delivery in loaded if delivery is not None and not delivery.done]

    async def _dispatch_group(self, group: list[Delivery], stop: asyncio.Event) -> None:
        """Marks the group started in one transaction, sends its mails one after another
        over the kept connection, and records their outcomes together: one database round
        per group, not three per mail. Outcomes waiting to be recorded are recorded first
        when a mail has to wait for a retry, so no receipt waits on another mail's server."""
        if stop.is_set():
            raise _Stopping
        started_before = await asyncio.to_thread(self.log.start, [d.id for d in group])
        for delivery in group:
            if delivery.id in started_before:
                NOTIFICATIONS_RESENT.labels(delivery.kind).inc()
                log.warning(
                    "notification_resent",
                    kind=delivery.kind,
                    message_id=self._message_id(delivery),
                )
        pending: list[tuple[Delivery, _Outcome]] = []

        async def record_pending() -> None:
            recorded, pending[:] = pending[:], []
            await asyncio.to_thread(self._settle, recorded)
            for _ in recorded:
                self.on_recorded()

        try:
            for delivery in group:
                if stop.is_set():
                    raise _Stopping
                pending.append((delivery, await self._send(delivery, stop, record_pending)))
        except _Stopping:
            # What went out is recorded; nothing of the rest went out (the last attempt
            # failed, or none was made): unmarked, so not counted as resent at the next start.
            await record_pending()
            await asyncio.to_thread(self.log.finish, [d.id for d in group if not d.done])
            raise
        await record_pending()

    async def _send(
        self, delivery: Delivery, stop: asyncio.Event, before_retry: Callable[[], Awaitable[None]]
    ) -> _Outcome:
        try:
            mail = build_mail(delivery.notification, self.mailer.sender, self._message_id(delivery))
        except Unsendable as unsendable:
            return _Outcome(0, str(unsendable))
        attempts = 0

        async def send_once() -> None:
            nonlocal attempts
            if attempts:
                try:
                    await before_retry()
                except Exception as error:
                    raise _RecordingFailed from error
            attempts += 1
            await asyncio.to_thread(self.mailer.send, mail)

        def count_retry(error: BaseException) -> None:
            NOTIFICATION_SEND_RETRIES.labels(delivery.kind).inc()

        policy = self.policy
        refusals = 0

        def worth_another_try(error: BaseException) -> bool:
            """A server away or busy is waited for (every mail would wait for it); a
            recipient refused for now is tried a few times only."""
            nonlocal refusals
            if isinstance(error, smtplib.SMTPRecipientsRefused):
                refusals += 1
                if refusals >= policy.recipient_attempts:
                    return False
            return is_transient(error)

        try:
            await retry(
                send_once,
                retry_on=worth_another_try,
                stop=stop,
                what="smtp send",
                backoff=Backoff(
                    policy.first_wait_seconds,
                    policy.max_wait_seconds,
                    policy.attempts,
                    policy.give_up_after_seconds,
                ),
                on_retry=count_retry,
            )
        except Stopped as stopping:
            raise _Stopping from stopping
        except _RecordingFailed:
            raise  # the database's failure, not this mail's: the round is tried again
        except Exception as failure:  # refused, or still away after the last attempt
            return _Outcome(attempts, _describe(failure))
        return _Outcome(attempts, None)

    def _message_id(self, delivery: Delivery) -> str:
        return delivery.message_id(self.mailer.domain)

    def _settle(self, sent: list[tuple[Delivery, _Outcome]]) -> None:
        """Records outcomes, then unmarks their deliveries (a crash in between leaves
        marks on recorded deliveries only, which are never sent again)."""
        if sent:
            self._record(sent)
            self.log.finish([delivery.id for delivery, _ in sent])

    def _record(self, sent: list[tuple[Delivery, _Outcome]]) -> None:
        """One transaction for all; when another dispatcher recorded one of them, each
        is recorded on its own, on a fresh copy (a failed save took the events with it)."""
        for delivery, outcome in sent:
            self._apply(delivery, outcome)
        try:
            self.store.save(*(delivery for delivery, _ in sent))
        except IntegrityError:
            for delivery, outcome in sent:
                self._record_alone(delivery.id, outcome)
            return
        for delivery, _ in sent:
            self._count(delivery)

    def _record_alone(self, delivery_id: uuid.UUID, outcome: _Outcome) -> None:
        delivery: Delivery = self.store.repository.get(delivery_id)
        if not delivery.done:
            self._apply(delivery, outcome)
            with contextlib.suppress(IntegrityError):
                self.store.save(delivery)
                self._count(delivery)
                return
        log.warning("notification_recorded_elsewhere", kind=delivery.kind)  # another dispatcher

    def _apply(self, delivery: Delivery, outcome: _Outcome) -> None:
        message_id = self._message_id(delivery)
        if outcome.error is None:
            delivery.record_sent(outcome.attempts, message_id)
        else:
            delivery.record_failed(outcome.error, outcome.attempts, message_id)

    def _count(self, delivery: Delivery) -> None:
        if delivery.outcome == "sent":
            NOTIFICATIONS_SENT.labels(delivery.kind).inc()
        else:
            NOTIFICATIONS_FAILED.labels(delivery.kind).inc()
            log.warning(
                "notification_failed", kind=delivery.kind, message_id=self._message_id(delivery)
            )


def _worth_another_round(error: BaseException) -> bool:
    """A failed round is tried again, unless the service stops or the task is cancelled
    (tenacity would otherwise retry any BaseException, CancelledError included)."""
    return isinstance(error, Exception) and not isinstance(error, _Stopping)


def _describe(failure: BaseException) -> str:
    return f"{type(failure).__name__}: {failure}"
