"""One SMTP connection for many mails, on a real SMTP server (aiosmtpd) that counts its
connections: kept while mail flows, opened again at once when the server ended it (421 or
a silent close), closed when idle and on shutdown, and never at the cost of a mail sent
twice or lost."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from servicedesk_notifier.dispatch import Dispatcher
from servicedesk_notifier.dispatch_log import DispatchLog
from servicedesk_notifier.smtp import SmtpMailer
from servicedesk_runtime.database import Database
from servicedesk_runtime.store import ServiceStore
from servicedesk_runtime.tansu import free_port
from servicedesk_stack.waiting import eventually, wait_for

from .conftest import mail_id_of, outcomes
from .test_dispatch import QUICK, counted, request_confirmations, run_until

pytestmark = pytest.mark.integration


class CountingServer:
    """An SMTP server that keeps mail and counts connections opened and closed. With
    `end_after` it ends each connection after that many mails on it: with 421 when the
    next mail starts (`how="421"`), or by closing it silently right after accepting
    (`how="close"`, as an idle timeout does)."""

    def __init__(self, end_after: int = 0, how: str = "421") -> None:
        self.end_after, self.how = end_after, how
        self.opened = self.closed = 0
        self.message_ids: Counter[str] = Counter()
        self.refused: set[str] = set()
        self._lock = threading.Lock()
        self._controller = _Controller(self, hostname="127.0.0.1", port=free_port())

    @property
    def port(self) -> int:
        return self._controller.port

    def count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refused:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        mail = message_from_bytes(envelope.original_content or b"")
        with self._lock:
            self.message_ids[str(mail["Message-ID"])] += 1
        return "250 OK"

    def __enter__(self) -> CountingServer:
        self._controller.start()
        # The controller's own probe of its port is no connection of ours.
        wait_for(lambda: self.closed == 1, 10, "the controller's probe closed")
        self.opened = self.closed = 0
        return self

    def __exit__(self, *_: object) -> None:
        self._controller.stop()


class _Session(SMTP):
    def __init__(self, server: CountingServer) -> None:
        super().__init__(server)
        self.server, self.mails = server, 0

    def connection_made(self, transport: Any) -> None:
        self.server.count("opened")
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.server.count("closed")
        super().connection_lost(error)

    async def smtp_MAIL(self, arg: str) -> None:
        if self.server.how == "421" and self._ending():
            await self.push("421 4.7.0 Too many mails on one connection, closing")
            self.transport.close()  # type: ignore[union-attr]
            return
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str) -> None:
        await super().smtp_DATA(arg)
        self.mails += 1
        if self.server.how == "close" and self._ending():
            self.transport.close()  # type: ignore[union-attr]

    def _ending(self) -> bool:
        return bool(self.server.end_after) and self.mails >= self.server.end_after


class _Controller(Controller):
    def factory(self) -> SMTP:
        assert isinstance(self.handler, CountingServer)
        return _Session(self.handler)


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with CountingServer() as running:
        yield running


def dispatcher(
    store: ServiceStore, database: Database, port: int, idle_seconds: float = 60
) -> Dispatcher:
    mailer = SmtpMailer(
        "127.0.0.1", port, "servicedesk@example.com", timeout=5, idle_seconds=idle_seconds
    )
    return Dispatcher(store=store, log=DispatchLog(database), mailer=mailer, policy=QUICK)


async def test_many_mails_go_out_over_one_connection_which_is_closed_on_shutdown(
    store: ServiceStore, database: Database, server: CountingServer
) -> None:
    deliveries = request_confirmations(store, 7)
    await run_until(
        dispatcher(store, database, server.port),
        lambda: len(outcomes(store)) == 7,
        "seven outcomes recorded",
    )
    assert server.message_ids == {mail_id_of(store, d): 1 for d in deliveries}
    assert server.opened == 1
    await eventually(lambda: server.closed == 1, 10, "the connection closed on shutdown")


@pytest.mark.parametrize("how", ["421", "close"])
async def test_a_server_ending_the_connection_between_mails_gets_each_mail_once(
    store: ServiceStore, database: Database, how: str
) -> None:
    """Ended after every second mail: the mailer opens a new connection at once, so no
    mail waits for the retry's backoff, none is counted as retried, none goes twice."""
    deliveries = request_confirmations(store, 7)
    retries_before = counted("servicedesk_notification_send_retries_total")
    with CountingServer(end_after=2, how=how) as ending:
        await run_until(
            dispatcher(store, database, ending.port),
            lambda: len(outcomes(store)) == 7,
            "seven outcomes recorded",
        )
    assert outcomes(store) == {d: ["sent"] for d in deliveries}
    assert ending.message_ids == {mail_id_of(store, d): 1 for d in deliveries}
    assert ending.opened == 4  # 2 + 2 + 2 + 1 mails
    assert counted("servicedesk_notification_send_retries_total") == retries_before


async def test_an_idle_connection_is_closed_and_the_next_mail_opens_another(
    store: ServiceStore, database: Database, server: CountingServer
) -> None:
    first = request_confirmations(store, 2)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher(store, database, server.port, idle_seconds=0).run(stop))
    try:
        await eventually(lambda: server.closed == 1, 30, "the idle connection closed")
        assert server.opened == 1
        later = request_confirmations(store, 1)
        await eventually(lambda: server.closed == 2, 30, "the second one closed when idle")
    finally:
        stop.set()
        await task
    assert server.opened == 2
    assert server.message_ids == {mail_id_of(store, d): 1 for d in [*first, *later]}


async def test_a_refused_mail_does_not_stop_the_next_from_going_out(
    store: ServiceStore, database: Database, server: CountingServer
) -> None:
    """A 5xx leaves the session in a state the mailer does not guess at: it starts a new
    one for the next mail, which goes out."""
    deliveries = request_confirmations(store, 3)  # to user1, user2, user3 @nordlicht.de
    server.refused.add("user2@nordlicht.de")
    await run_until(
        dispatcher(store, database, server.port),
        lambda: len(outcomes(store)) == 3,
        "three outcomes recorded",
    )
    assert [outcomes(store)[d] for d in deliveries] == [["sent"], ["failed"], ["sent"]]
    assert set(server.message_ids) == {mail_id_of(store, deliveries[i]) for i in (0, 2)}
    assert server.opened == 2
