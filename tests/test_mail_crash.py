"""Intake killed (SIGKILL) while mail streams in: every mail the listener answered 250 for
becomes exactly one ticket. A sender that got no answer, or 451, tries again, as mail
servers do; one that got 250 never does. A sender also delivers some mail twice (its
server lost our 250): the same Message-ID opens no second ticket."""

from __future__ import annotations

import smtplib
import threading
import time
from email.message import EmailMessage

import httpx
import pytest
from tests.conftest import StackFactory, metric_value
from tests.desk import intake_knows_agreements, mail_agreement

from servicedesk_runtime.tansu import free_port
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

AGENT = {"Authorization": "Bearer agent-token"}
ADMIN = {"Authorization": "Bearer admin-token"}
TOTAL = 60


def deliver(port: int, n: int) -> None:
    """Delivers mail number n like a sending mail server: until it hears 250."""
    mail = EmailMessage()
    mail["From"] = f"user{n}@nordlicht.de"
    mail["To"] = "servicedesk@example.com"
    mail["Subject"] = f"Request {n}"
    mail["Message-ID"] = f"<crash-{n}@mail.nordlicht.de>"
    mail.set_content(f"Request number {n}.")
    deadline = time.monotonic() + 120
    while True:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.send_message(mail)
            return
        except (OSError, smtplib.SMTPException):
            assert time.monotonic() < deadline, f"mail {n} was never accepted"
            time.sleep(0.2)  # the listener is down, or answered 451: try again


def test_mail_accepted_before_a_kill_becomes_one_ticket_each(
    make_stack: StackFactory, postgres_url: str
) -> None:
    mail_port = free_port()
    stack = make_stack(postgres_url, mail_port=mail_port)
    stack.start()
    stack.wait_ready()
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{stack.config.gateway_port}", timeout=10)
    assert (
        gateway.post("/agreements", json=mail_agreement("low", "low"), headers=ADMIN).status_code
        == 202
    )
    intake_port = stack.config.port_of("intake")
    intake_knows_agreements(intake_port)

    def stream() -> None:
        for n in range(TOTAL):
            deliver(mail_port, n)
            if n % 10 == 0:
                deliver(mail_port, n)  # the same mail again (a lost 250)

    streaming = threading.Thread(target=stream)
    streaming.start()

    def listener_stored() -> float:
        try:
            return metric_value(intake_port, "servicedesk_mails_received_total", outcome="stored")
        except httpx.HTTPError:
            return 0.0

    wait_for(lambda: listener_stored() >= 15, 60, "mail streaming in")
    stack.kill("intake")  # SIGKILL: whatever it had not published yet is only in its store
    stack.start_service("intake")
    streaming.join()

    def email_tickets() -> list[dict[str, object]]:
        page = gateway.get("/tickets", params={"channel": "email", "limit": 500}, headers=AGENT)
        return list(page.json()["tickets"])

    wait_for(lambda: len(email_tickets()) >= TOTAL, 120, f"{TOTAL} tickets")
    subjects = sorted(str(t["subject"]) for t in email_tickets())
    assert subjects == sorted(f"Request {n}" for n in range(TOTAL))  # each once
