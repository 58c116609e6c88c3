"""The IMAP poller against a real IMAP server (Debian's dovecot-imapd, started here with a
config of its own): mail appended to the mailbox becomes tickets once, also across a
poller restart and a crash between keeping a mail and recording how far it got; the
clock starts at the server's INTERNALDATE."""

from __future__ import annotations

import asyncio
import imaplib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from servicedesk_contracts import messages as m
from servicedesk_intake.imap_poller import ImapConfig, ImapPoller
from servicedesk_intake.keeper import MailKeeper
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.metrics import CATALOGUE
from servicedesk_runtime.relay import LogPositions
from servicedesk_runtime.tansu import free_port

from .conftest import Desk

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "desk", "secret"


@dataclass
class Imap:
    port: int

    def append(self, mail: EmailMessage, when: datetime | None = None) -> None:
        with imaplib.IMAP4("127.0.0.1", self.port, timeout=10) as client:
            client.login(USER, PASSWORD)
            stamp = imaplib.Time2Internaldate(when.timestamp()) if when else None
            status, _ = client.append("INBOX", None, stamp, mail.as_bytes())
            assert status == "OK"


@pytest.fixture
def dovecot() -> Iterator[Imap]:
    if not os.path.exists(DOVECOT):
        if os.environ.get("CI"):
            pytest.fail("dovecot is required in CI: apt-get install dovecot-imapd")
        pytest.skip("no dovecot here (Debian: apt-get install dovecot-imapd)")
    # Not pytest's tmp_path: the mail user must be able to walk to its folders.
    with tempfile.TemporaryDirectory(prefix="dovecot-") as folder:
        Path(folder).chmod(0o755)
        yield from _running_dovecot(Path(folder))


def _running_dovecot(tmp_path: Path) -> Iterator[Imap]:
    port = free_port()
    # Dovecot refuses to deliver as root: mail belongs to nobody when the tests run as root.
    uid, gid = (65534, 65534) if os.getuid() == 0 else (os.getuid(), os.getgid())
    for folder in ("mail", "home", "run", "state"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder).chmod(0o1777)
    config = tmp_path / "dovecot.conf"
    config.write_text(
        f"""protocols = imap
listen = 127.0.0.1
base_dir = {tmp_path}/run
state_dir = {tmp_path}/state
log_path = {tmp_path}/dovecot.log
ssl = no
disable_plaintext_auth = no
mail_location = maildir:{tmp_path}/mail/%u
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp_path}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    subprocess.run([DOVECOT, "-c", str(config)], check=True)
    try:
        _wait_for_login(port)
        yield Imap(port)
    finally:
        subprocess.run([DOVECOT, "-c", str(config), "stop"], check=False)


def _wait_for_login(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with imaplib.IMAP4("127.0.0.1", port, timeout=5) as client:
                client.login(USER, PASSWORD)
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def request(subject: str, message_id: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Jana Weber <jana@nordlicht.de>"
    mail["To"] = "support@desk.example"
    mail["Subject"] = subject
    mail["Message-ID"] = message_id
    mail.set_content(f"{subject}: details follow.")
    return mail


def poller(desk: Desk, database: Database, port: int) -> ImapPoller:
    config = ImapConfig("127.0.0.1", port, USER, PASSWORD, ssl=False, poll_seconds=0.1)
    positions = LogPositions(database, "intake_imap_position")
    return ImapPoller(MailKeeper(desk.store, desk.blobs), positions, desk.clock, config)


async def test_mail_in_the_mailbox_becomes_tickets_once_across_restarts_and_crashes(
    desk: Desk, dovecot: Imap, tmp_path: Path
) -> None:
    database = Database(DatabaseUrl.parse(f"sqlite:///{tmp_path}/positions.db", "intake"))
    arrived = datetime(2026, 11, 24, 7, 45, 12, tzinfo=UTC)
    dovecot.append(request("Backups failing", "<i1@mail.nordlicht.de>"), when=arrived)
    dovecot.append(request("VPN down", "<i2@mail.nordlicht.de>"))

    assert poller(desk, database, dovecot.port).poll_once() == 2
    opened = {t.data.subject: t for t in desk.events(m.TicketOpened)}
    assert set(opened) == {"Backups failing", "VPN down"}
    assert opened["Backups failing"].data.received_at == arrived  # the server's INTERNALDATE

    # A new poller (a restart) finds nothing new; one more mail, one more ticket.
    assert poller(desk, database, dovecot.port).poll_once() == 0
    dovecot.append(request("Printer", "<i3@mail.nordlicht.de>"))
    assert poller(desk, database, dovecot.port).poll_once() == 1
    assert [t.data.subject for t in desk.events(m.TicketOpened)] == ["Printer"]

    # Killed after keeping mail but before recording how far it got: everything is read
    # again, and nothing is kept twice.
    positions = LogPositions(database, "intake_imap_position")
    with database.transaction() as cursor:
        cursor.execute(f"DELETE FROM {database.table('intake_imap_position')}")
    assert positions.get(f"{USER}@127.0.0.1/INBOX/0") == 0
    assert poller(desk, database, dovecot.port).poll_once() == 0
    assert desk.events(m.TicketOpened) == []
    database.close()


async def test_the_poller_keeps_polling_while_the_server_is_away(
    desk: Desk, tmp_path: Path
) -> None:
    database = Database(DatabaseUrl.parse(f"sqlite:///{tmp_path}/positions.db", "intake"))
    away = poller(desk, database, free_port())  # nobody listens there
    with pytest.raises(ConnectionRefusedError):
        away.poll_once()
    failed_before = counted("servicedesk_imap_polls_total", outcome="failed")
    stop = asyncio.Event()
    running = asyncio.create_task(away.run(stop))
    deadline = time.monotonic() + 30
    while counted("servicedesk_imap_polls_total", outcome="failed") < failed_before + 3:
        assert not running.done(), "a failed round ended the poller"
        assert time.monotonic() < deadline, "the poller stopped trying"
        await asyncio.sleep(0.05)
    stop.set()
    await running
    database.close()


def counted(name: str, **labels: str) -> float:
    return CATALOGUE.get_sample_value(name, labels) or 0.0
