"""The dispatcher: sends each delivery's mail AFTER its request was committed.

The consumer's handlers only record `Delivery.Requested`, committed together with the Kafka
position it came from. A handler error, a failed commit or a retried batch therefore sends
nothing. This loop follows the store's notification log (requests only) from a position
kept in the notifier's own database, sends each requested mail, and records `Dispatched` or
`Failed` on the delivery; the outbox relay publishes those as NotificationSent /
NotificationFailed.

Delivery is at-least-once, and a repeat is recognisable: when the notifier stops (a crash,
kill -9, a lost database) after the mail server accepted a mail but before `Dispatched` was
recorded, the next round sends that mail once more, with the same Message-ID
(`<delivery id.reference@our domain>`). To count such resends, a delivery is marked as started in
`notifier_dispatch_started` before its mail goes out and unmarked once its outcome is
recorded; finding the mark on a delivery still open means it may have been sent before
(`servicedesk_notifications_resent_total`).

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
from collections.abc import Callable
from dataclasses import dataclass

from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from servicedesk_notifier.domain import Delivery
from servicedesk_notifier.smtp import SmtpMailer, Unsendable, build_mail, is_transient
from servicedesk_runtime.database import Database
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import (
    NOTIFICATION_SEND_RETRIES,
    NOTIFICATIONS_FAILED,
    NOTIFICATIONS_RESENT,
    NOTIFICATIONS_SENT,
)
from servicedesk_runtime.relay import LogPositions
from servicedesk_runtime.retry import Backoff, Stopped, retry
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


class DispatchLog:
    """The dispatcher's own rows in the notifier's database: how far it followed the
    store's notification log, and which deliveries it started and has not recorded yet."""

    NAME = "deliveries"

    def __init__(self, database: Database) -> None:
        self._db = database
        self._positions = LogPositions(database, "notifier_dispatch_position")
        self._started = database.table("notifier_dispatch_started")
        with database.transaction() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self._started} (delivery_id TEXT PRIMARY KEY)"
            )

    def position(self) -> int:
        return self._positions.get(self.NAME)

    def advance(self, position: int) -> None:
        self._positions.set(self.NAME, position)

    def start(self, delivery_id: uuid.UUID) -> bool:
        """Marks a delivery as started; True when it was started before and never
        recorded, so its mail may have gone out already."""
        with self._db.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {self._started} (delivery_id) VALUES (?) "
                "ON CONFLICT (delivery_id) DO NOTHING",
                (str(delivery_id),),
            )
            return cursor.rowcount == 0

    def finish(self, delivery_id: uuid.UUID) -> None:
        with self._db.transaction() as cursor:
            cursor.execute(
                f"DELETE FROM {self._started} WHERE delivery_id = ?", (str(delivery_id),)
            )


class _Stopping(Exception):
    """The service is shutting down while a send waits to be retried."""


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
        poll_interval: float = 0.05,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.log = log
        self.mailer = mailer
        self.policy = policy or RetryPolicy()
        self.batch_max = batch_max
        self.poll_interval = poll_interval
        self.on_recorded = on_recorded

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatches until `stop`; a failed round (a lost database) is tried again with
        capped backoff, never ends the loop."""
        with contextlib.suppress(_Stopping, Stopped):
            while not stop.is_set():
                dispatched = await retry(
                    lambda: self.dispatch_pending(stop),
                    retry_on=_worth_another_round,
                    stop=stop,
                    what="mail dispatch round",
                    backoff=Backoff(first=0.2, longest=5.0),
                )
                if dispatched < self.batch_max:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.poll_interval)

    async def dispatch_pending(self, stop: asyncio.Event) -> int:
        """Dispatches the next requests of the notification log; returns how many."""
        position = await asyncio.to_thread(self.log.position)
        requests = await asyncio.to_thread(
            self.store.process_recorder.select_notifications,
            position + 1,
            self.batch_max,
            topics=_TO_SEND,
        )
        for request in requests:
            if stop.is_set():
                raise _Stopping
            await self.dispatch(uuid.UUID(str(request.originator_id)), stop)
            await asyncio.to_thread(self.log.advance, request.id)
        return len(requests)

    async def dispatch(self, delivery_id: uuid.UUID, stop: asyncio.Event) -> None:
        """Sends one delivery's mail unless its outcome is recorded, then records it."""
        delivery: Delivery = await asyncio.to_thread(self.store.repository.get, delivery_id)
        if delivery.done:
            return
        if await asyncio.to_thread(self.log.start, delivery_id):
            NOTIFICATIONS_RESENT.labels(delivery.kind).inc()
            log.warning(
                "notification_resent", kind=delivery.kind, message_id=self._message_id(delivery)
            )
        try:
            outcome = await self._send(delivery, stop)
        except _Stopping:
            # The last attempt failed, nothing went out: not a resend at the next start.
            await asyncio.to_thread(self.log.finish, delivery_id)
            raise
        message_id = self._message_id(delivery)
        if outcome.error is None:
            delivery.record_sent(outcome.attempts, message_id)
        else:
            delivery.record_failed(outcome.error, outcome.attempts, message_id)
        await asyncio.to_thread(self._record, delivery)
        await asyncio.to_thread(self.log.finish, delivery_id)
        self.on_recorded()

    async def _send(self, delivery: Delivery, stop: asyncio.Event) -> _Outcome:
        try:
            mail = build_mail(delivery.notification, self.mailer.sender, self._message_id(delivery))
        except Unsendable as unsendable:
            return _Outcome(0, str(unsendable))
        attempts = 0

        async def send_once() -> None:
            nonlocal attempts
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
        except Exception as failure:  # refused, or still away after the last attempt
            return _Outcome(attempts, _describe(failure))
        return _Outcome(attempts, None)

    def _message_id(self, delivery: Delivery) -> str:
        return delivery.message_id(self.mailer.domain)

    def _record(self, delivery: Delivery) -> None:
        kind, outcome = delivery.kind, delivery.outcome
        try:
            self.store.save(delivery)
        except IntegrityError:
            log.warning("notification_recorded_elsewhere", kind=kind)  # another dispatcher
            return
        if outcome == "sent":
            NOTIFICATIONS_SENT.labels(kind).inc()
        else:
            NOTIFICATIONS_FAILED.labels(kind).inc()
            log.warning("notification_failed", kind=kind, message_id=self._message_id(delivery))


def _worth_another_round(error: BaseException) -> bool:
    """A failed round is tried again, unless the service stops or the task is cancelled
    (tenacity would otherwise retry any BaseException, CancelledError included)."""
    return isinstance(error, Exception) and not isinstance(error, _Stopping)


def _describe(failure: BaseException) -> str:
    return f"{type(failure).__name__}: {failure}"
