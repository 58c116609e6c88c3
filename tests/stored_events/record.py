"""Records the events each service stores today, as golden files for
`tests/test_stored_events.py`: later code must still load every one of them.

Runs the whole stack on SQLite (embedded broker, a mail sink), plays a day at the desk
through the gateway (agreements of every billing model, tickets from Kafka and HTTP,
replies, assignments, pauses, priority changes, timers, time sheets (one refused),
warnings, breaches, a reopen,
top-ups, a cancellation, a statement), then writes every stored event of every service to
`tests/data/stored_events/<service>.json`.

Run it again only to ADD a golden set (e.g. `--suffix 2027-03` after new event types);
never to overwrite the old ones, which are the point.

    .venv/bin/python tests/stored_events/record.py
"""

from __future__ import annotations

import argparse
import base64
import json
import smtplib
import sqlite3
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from servicedesk_runtime.tansu import EmbeddedBroker, free_port
from servicedesk_stack.demo import provider_r_medium, provider_v_danish, provider_z_premium
from servicedesk_stack.mail_sink import MailSink
from servicedesk_stack.stack import SERVICES, Stack, StackConfig

GOLDEN = Path(__file__).parents[1] / "data" / "stored_events"
ADMIN = {"Authorization": "Bearer admin-token"}
AGENT = {"Authorization": "Bearer agent-token"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suffix", default=datetime.now(UTC).strftime("%Y-%m"))
    parser.add_argument(
        "--services", nargs="*", default=list(SERVICES), help="whose stores to write (all)"
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        EmbeddedBroker() as broker,
        MailSink(free_port()) as sink,
    ):
        config = StackConfig(
            bootstrap=broker.bootstrap,
            data_dir=Path(folder),
            smtp_port=sink.port,
            gateway_port=free_port(),
            mail_port=free_port(),
        )
        stack = Stack(config)
        try:
            stack.start()
            stack.wait_ready()
            gateway = httpx.Client(base_url=f"http://127.0.0.1:{config.gateway_port}")
            play_a_day(gateway)
            assert config.mail_port is not None
            play_the_mail(gateway, config.mail_port)
            time.sleep(5)  # a script, not a test: let the last events settle
        finally:
            stack.stop()
        for service in args.services:
            write_golden(
                service, Path(config.database_for(service).removeprefix("sqlite:///")), args.suffix
            )


def play_a_day(gateway: httpx.Client) -> None:
    def post(path: str, body: dict[str, Any], headers: dict[str, str] = AGENT) -> Any:
        response = gateway.post(path, json=body, headers=headers, timeout=10)
        response.raise_for_status()
        return response.json()

    fast = provider_z_premium("Fast GmbH")
    fast["calendar"] = {"timezone": "Europe/Berlin", "always_open": True}
    fast["targets"] = {
        p: {"response_minutes": 0.05, "resolution_minutes": 0.2} for p in ("P1", "P2", "P3", "P4")
    }
    z_id = post("/agreements", fast, ADMIN)["id"]
    r_id = post("/agreements", provider_r_medium(), ADMIN)["id"]
    v_terms = provider_v_danish()
    v_terms["matrix"] = "Z-P1P4"
    v_terms["targets"] = {p: {"response_minutes": 480} for p in ("P1", "P2", "P3", "P4")}
    v_id = post("/agreements", v_terms, ADMIN)["id"]
    bundle = provider_r_medium("Bundle BV")
    bundle["billing"] = {"model": "prepaid_bundle", "hourly_rate_cents": 9000}
    bundle_id = post("/agreements", bundle, ADMIN)["id"]
    time.sleep(3)
    post(f"/agreements/{bundle_id}/top-ups", {"minutes": 600, "note": "10 hours"}, ADMIN)

    tickets = []
    for agreement, impact in (
        (z_id, "high"),
        (r_id, "whole organisation"),
        (v_id, "low"),
        (bundle_id, "one user"),
    ):
        tickets.append(
            post(
                "/tickets",
                {
                    "agreement_id": agreement,
                    "reporter_email": "anna@acme.example",
                    "reporter_name": "Anna",
                    "organisation": "Acme",
                    "channel": "phone",
                    "subject": f"Scanners offline ({impact})",
                    "body": "All scanners in hall 2",
                    "category": "incident",
                    "impact": impact,
                    "urgency": "high" if agreement in (z_id, v_id) else "medium",
                    "custom_fields": [
                        {"name": "software version", "type": "version", "value": "4.2"}
                    ],
                },
            )["id"]
        )
    time.sleep(20)  # the fast agreement's clocks warn and breach
    fast_ticket, r_ticket, v_ticket, bundle_ticket = tickets
    post(f"/tickets/{r_ticket}/priority", {"priority": "A", "reason": "whole warehouse stands"})
    post(f"/tickets/{r_ticket}/status", {"status": "awaiting_reply", "reason": "asked for logs"})
    time.sleep(2)
    post(f"/tickets/{r_ticket}/status", {"status": "in_progress"})
    for ticket in tickets:
        post(f"/tickets/{ticket}/replies", {"body": "We are on it"})
    post(f"/tickets/{r_ticket}/assignment", {"assignee": "agent", "group": "first-line"})
    post(
        f"/tickets/{r_ticket}/assignment",
        {"assignee": "mette", "group": "second-line", "reason": "knows the scanners"},
    )
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=3)).replace(hour=10, minute=0)
    month = last_month.strftime("%Y-%m")
    for ticket in (r_ticket, v_ticket, bundle_ticket):
        post(
            f"/tickets/{ticket}/time-entries",
            {"started_at": last_month.isoformat(), "duration_minutes": 10},
        )
    # The same agent's time again, overlapping: accepted at the door, refused by intake.
    post(
        f"/tickets/{r_ticket}/time-entries",
        {"started_at": (last_month + timedelta(minutes=5)).isoformat(), "duration_minutes": 10},
    )
    post(f"/tickets/{fast_ticket}/timer", {})
    time.sleep(1)
    post(f"/tickets/{fast_ticket}/timer/stop", {})
    post(f"/tickets/{fast_ticket}/status", {"status": "closed", "reason": "fixed"})
    time.sleep(2)
    post(f"/tickets/{fast_ticket}/status", {"status": "open", "reason": "came back"})
    time.sleep(5)
    for agreement in (r_id, v_id, bundle_id):
        post(f"/agreements/{agreement}/statements", {"month": month}, ADMIN)
    post(
        f"/agreements/{v_id}/cancellation",
        {"effective_on": datetime.now(UTC).date().isoformat()},
        ADMIN,
    )
    assert uuid.UUID(fast_ticket)


def play_the_mail(gateway: httpx.Client, mail_port: int) -> None:
    """Mail in and out (since 2026-11c): a mailed request and its reply, an out-of-office
    set aside, an unmatched sender filed by an agent, a note, a split, a link, contacts."""

    def post(path: str, body: dict[str, Any]) -> Any:
        response = gateway.post(path, json=body, headers=AGENT, timeout=10)
        response.raise_for_status()
        return response.json()

    def mail(sender: str, subject: str, message_id: str, **headers: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = (
            sender,
            "servicedesk@example.com",
            subject,
        )
        message["Message-ID"] = message_id
        for name, value in headers.items():
            message[name.replace("_", "-")] = value
        message.set_content(f"{subject}.\n\nOn Mon, Jan 5, 2026 someone wrote:\n> old text")
        message.add_attachment(
            b"log line\n" * 50, maintype="text", subtype="plain", filename="log.txt"
        )
        with smtplib.SMTP("127.0.0.1", mail_port, timeout=10) as client:
            client.send_message(message)

    mail("Piet <piet@acme-logistics.nl>", "Scanner werkt niet", "<g1@acme-logistics.nl>")
    time.sleep(3)
    tickets = gateway.get("/tickets", params={"channel": "email"}, headers=AGENT).json()
    reference = tickets["tickets"][0]["reference"]
    mail("Piet <piet@acme-logistics.nl>", f"Re: [{reference}] Scanner", "<g2@acme-logistics.nl>")
    mail(
        "Piet <piet@acme-logistics.nl>",
        f"Afwezig: [{reference}]",
        "<g3@x>",
        Auto_Submitted="auto-replied",
    )
    mail("Eve <eve@unknown.example>", "Hello", "<g4@unknown.example>")
    post(
        f"/tickets/{reference}/replies", {"body": "Welke scanner?", "next_status": "awaiting_reply"}
    )
    post(f"/tickets/{reference}/notes", {"body": "Hal 2, waarschijnlijk firmware"})
    part = post(f"/tickets/{reference}/split", {"subject": "Printer", "body": "Ook de printer"})
    time.sleep(3)
    post(f"/tickets/{reference}/links", {"kind": "relates_to", "other": part["id"]})
    aside = gateway.get("/mail/set-aside", params={"reason": "unmatched"}, headers=AGENT).json()
    agreement = tickets["tickets"][0]["agreement_id"]
    post(f"/mail/{aside['mail'][0]['mail_id']}/file", {"agreement_id": agreement})


def write_golden(service: str, database: Path, suffix: str) -> None:
    with sqlite3.connect(database) as lite:
        tables = [
            name
            for (name,) in lite.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if name.endswith("_events")
            # an event store's table, not a projection's (the gateway's view_events)
            and "originator_id" in {c[1] for c in lite.execute(f"PRAGMA table_info({name})")}
        ]
        rows = []
        for table in tables:
            for originator_id, version, topic, state in lite.execute(
                f"SELECT originator_id, originator_version, topic, state FROM {table} "
                "ORDER BY rowid"
            ):
                rows.append(
                    {
                        "originator_id": str(uuid.UUID(str(originator_id))),
                        "originator_version": version,
                        "topic": topic,
                        "state": base64.b64encode(state).decode(),
                    }
                )
    GOLDEN.mkdir(parents=True, exist_ok=True)
    target = GOLDEN / f"{service}.{suffix}.json"
    target.write_text(json.dumps(rows, indent=1) + "\n")
    topics = sorted({row["topic"] for row in rows})
    print(f"{service}: {len(rows)} events of {len(topics)} kinds -> {target}")


if __name__ == "__main__":
    main()
