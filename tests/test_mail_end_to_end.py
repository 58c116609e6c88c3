"""A customer's whole mail conversation, on the real broker and PostgreSQL with every service
as its own process: mail in -> ticket -> confirmation out -> the customer answers it -> the
same ticket -> an agent replies (mailed, threaded) -> the agent closes -> the customer
answers the closed notice -> reopened. The response clock runs from when the mail reached
the listener and stops at the agent's reply; the gateway shows the whole conversation."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from typing import Any

import httpx
import pytest
from tests.conftest import StackFactory
from tests.desk import intake_knows_agreements, mail_agreement

from servicedesk_runtime.tansu import free_port
from servicedesk_stack.mail_sink import MailSink
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ADMIN = {"Authorization": "Bearer admin-token"}
AGENT = {"Authorization": "Bearer agent-token"}
DESK = "support@desk.example"


def send(port: int, subject: str, body: str, message_id: str, **headers: str) -> None:
    mail = EmailMessage()
    mail["From"] = "Jana Weber <jana@nordlicht.de>"
    mail["To"] = DESK
    mail["Subject"] = subject
    mail["Message-ID"] = message_id
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(mail)


def mail_to_jana(sink: MailSink, subject_part: str) -> Message:
    found = [
        mail
        for mail in sink.messages
        if mail["To"] == "jana@nordlicht.de" and subject_part in str(mail["Subject"])
    ]
    assert len(found) == 1, [str(m["Subject"]) for m in sink.messages]
    return found[0]


def test_a_mail_conversation_from_first_mail_to_reopening(
    make_stack: StackFactory, postgres_url: str, mail_sink: MailSink
) -> None:
    mail_port = free_port()
    stack = make_stack(postgres_url, mail_port=mail_port, mail_from=DESK)
    stack.start()
    stack.wait_ready()
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{stack.config.gateway_port}", timeout=10)
    registered = gateway.post("/agreements", json=mail_agreement(), headers=ADMIN)
    assert registered.status_code == 202, registered.text
    intake_port = stack.config.port_of("intake")
    intake_knows_agreements(intake_port)

    # 1. Jana mails the desk: a ticket, its clock from when the listener took the mail.
    before = datetime.now(UTC)
    send(mail_port, "Backups failing", "Every nightly job fails.", "<j1@mail.nordlicht.de>")
    after = datetime.now(UTC)

    def the_ticket() -> dict[str, Any] | None:
        tickets = gateway.get("/tickets", params={"channel": "email"}, headers=AGENT).json()
        return tickets["tickets"][0] if tickets["tickets"] else None

    wait_for(lambda: the_ticket() is not None, 60, "the mailed request's ticket")
    ticket = the_ticket()
    assert ticket is not None
    reference, ticket_id = ticket["reference"], ticket["ticket_id"]
    assert before <= datetime.fromisoformat(ticket["received_at"]) <= after
    assert (ticket["organisation"], ticket["subject"]) == ("Nordlicht GmbH", "Backups failing")
    wait_for(lambda: the_ticket()["sla"].get("response") is not None, 60, "the response clock")  # type: ignore[index]
    response = the_ticket()["sla"]["response"]  # type: ignore[index]
    assert (response["priority"], response["started_at"]) == ("P1", ticket["received_at"])

    # 2. The confirmation answers her mail, in its thread, with the reference.
    wait_for(lambda: len(mail_sink.messages) >= 1, 60, "the confirmation")
    confirmation = mail_to_jana(mail_sink, "We received your request")
    assert f"[{reference}]" in str(confirmation["Subject"])
    assert confirmation["In-Reply-To"] == "<j1@mail.nordlicht.de>"
    assert confirmation["Auto-Submitted"] == "auto-replied"
    assert f".{reference}@desk.example>" in str(confirmation["Message-ID"])

    def sent_message_ids() -> list[str]:
        sent = gateway.get("/notifications", params={"outcome": "sent"}, headers=AGENT)
        return [str(delivery["message_id"]) for delivery in sent.json()]

    # The receipt records the Message-ID the mail went out with.
    wait_for(sent_message_ids, 60, "the confirmation's receipt in the gateway")
    assert sent_message_ids() == [str(confirmation["Message-ID"])]

    # 3. She answers the confirmation: the same ticket.
    send(
        mail_port,
        f"Re: {confirmation['Subject']}",
        "It started after the NAS update.\n\n> Dear Jana Weber,\n> We received your request",
        "<j2@mail.nordlicht.de>",
        In_Reply_To=str(confirmation["Message-ID"]),
    )

    def conversation() -> list[dict[str, Any]]:
        answer = gateway.get(f"/tickets/{reference}/conversation", headers=AGENT)
        return list(answer.json()["messages"])

    wait_for(lambda: len(conversation()) == 2, 60, "her answer on the ticket")
    assert conversation()[1]["body"] == "It started after the NAS update."

    # 4. An agent replies and waits for her: mailed to her under her last mail.
    replied = gateway.post(
        f"/tickets/{reference}/replies",
        json={"body": "Which NAS firmware?", "next_status": "awaiting_reply"},
        headers=AGENT,
    )
    assert replied.status_code == 202, replied.text
    wait_for(lambda: len(mail_sink.messages) >= 2, 60, "the agent's reply by mail")
    reply = mail_to_jana(mail_sink, f"Re: [{reference}] Backups failing")
    assert reply["In-Reply-To"] == "<j2@mail.nordlicht.de>"
    assert reply["References"] == "<j1@mail.nordlicht.de> <j2@mail.nordlicht.de>"
    assert "Which NAS firmware?" in reply.get_payload()
    wait_for(
        lambda: the_ticket()["sla"]["response"]["state"] == "met",  # type: ignore[index]
        60,
        "the response clock stopped by the reply",
    )

    # 5. The agent closes it; she is told.
    closed = gateway.post(f"/tickets/{reference}/status", json={"status": "closed"}, headers=AGENT)
    assert closed.status_code == 202
    wait_for(lambda: len(mail_sink.messages) >= 3, 60, "the closed notice")
    notice = mail_to_jana(mail_sink, "has been resolved")

    # 6. She answers the closed notice with a subject that lost the reference: reopened
    # (found by our Message-ID in her In-Reply-To).
    send(
        mail_port,
        "Still broken",
        "No, it fails again tonight.",
        "<j3@mail.nordlicht.de>",
        In_Reply_To=str(notice["Message-ID"]),
    )
    wait_for(lambda: the_ticket()["status"] == "open", 60, "the ticket reopened")  # type: ignore[index]
    messages = conversation()
    assert [m["kind"] for m in messages] == [
        "request",
        "customer_reply",
        "agent_reply",
        "customer_reply",
    ]
    assert [m["channel"] for m in messages] == ["email", "email", None, "email"]
    assert messages[3]["body"] == "No, it fails again tonight."
    one_ticket = gateway.get("/tickets", params={"channel": "email"}, headers=AGENT).json()
    assert [t["ticket_id"] for t in one_ticket["tickets"]] == [ticket_id]
