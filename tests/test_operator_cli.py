"""The operator's command line on a running desk: the dead-letter workbench (list, show, a
fixed message replayed once, and audited), status, and month-end statements."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from tests.conftest import StackFactory
from tests.desk import phone_call, running_desk
from tests.kafka_tools import publish_raw, read_topic
from tests.test_fault_tolerance import Z_PREMIUM
from typer.testing import CliRunner

from servicedesk_contracts import topics
from servicedesk_contracts.messages import ticket_id_for_request
from servicedesk_stack.__main__ import write_endpoints
from servicedesk_stack.operator.cli import app
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

AGENT = {"Authorization": "Bearer agent-token"}
runner = CliRunner()


def run(*args: str, ok: bool = True) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) == ok, (args, result.exit_code, result.output)
    return result.output


def request_without_subject() -> tuple[str, dict[str, Any]]:
    """A request another system sent without its subject: dead-lettered, fixable."""
    request_id = str(uuid.uuid4())
    data = {k: v for k, v in phone_call(channel="api").items() if k != "subject"}
    return request_id, {
        "event_id": request_id,
        "event_type": "SubmitTicket",
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "monitoring",
        "subject_id": request_id,
        "data": data,
    }


def test_a_dead_letter_is_found_fixed_and_replayed_once_with_an_audit_record(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack, gateway = running_desk(make_stack)
    bootstrap = stack.config.bootstrap

    request_id, broken = request_without_subject()
    publish_raw(
        bootstrap,
        topics.INBOUND,
        [(b"junk", b"{oops"), (request_id.encode(), json.dumps(broken).encode())],
    )

    def listed() -> list[dict[str, Any]]:
        output = run("dead-letters", "list", "--json", "--bootstrap", bootstrap)
        return [json.loads(line) for line in output.splitlines() if line.startswith("{")]

    rows = wait_for(lambda: len(listed()) == 2 and listed(), 60, "two dead letters")
    (junk,) = [row for row in rows if row["key"] == "junk"]
    (fixable,) = [row for row in rows if row["event_id"] == request_id]
    assert (junk["reason"], junk["event_id"]) == ("invalid_json", None)
    assert fixable["reason"] == "validation_failed"
    assert fixable["service"] == "intake"
    assert fixable["source"].startswith(topics.INBOUND)
    assert "subject" in fixable["detail"]

    shown = json.loads(run("dead-letters", "show", fixable["ref"], "--bootstrap", bootstrap))
    assert shown["headers"]["error_reason"] == "validation_failed"
    assert json.loads(shown["value"]) == broken

    # Somebody else's junk on the audit topic does not confuse the workbench.
    publish_raw(bootstrap, topics.DEAD_LETTER_REPLAYS, [(b"junk", b"not an audit record")])

    # As it was, it would only be refused again: not sent.
    refused = run(
        "dead-letters", "replay", fixable["ref"], "--by", "Mette", "--bootstrap", bootstrap,
        ok=False,
    )  # fmt: skip
    assert "would be refused again (validation_failed" in refused
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({**broken, "data": {**broken["data"], "subject": "Backups"}}))
    done = run(
        "dead-letters", "replay", fixable["ref"], "--by", "Mette", "--file", str(fixed),
        "--bootstrap", bootstrap,
    )  # fmt: skip
    assert "fixed" in done

    ticket_id = ticket_id_for_request(uuid.UUID(request_id))

    def opened() -> dict[str, Any] | None:
        answer = httpx.get(f"{gateway}/tickets/{ticket_id}", headers=AGENT, timeout=10)
        return answer.json() if answer.status_code == 200 else None

    ticket = wait_for(opened, 60, "the replayed request to open its ticket")
    assert ticket["subject"] == "Backups"

    again = run(
        "dead-letters", "replay", fixable["ref"], "--by", "Ole", "--file", str(fixed),
        "--bootstrap", bootstrap, ok=False,
    )  # fmt: skip
    assert "replayed already, by Mette" in again
    (audit,) = [
        r.json() for r in read_topic(bootstrap, topics.DEAD_LETTER_REPLAYS) if r.key != b"junk"
    ]
    assert audit["data"]["replayed_by"] == "Mette"
    assert audit["data"]["fixed"] is True
    assert audit["data"]["replayed_event_id"] == request_id
    replayed = {row["ref"]: row["replayed_by"] for row in listed()}
    assert replayed == {fixable["ref"]: "Mette", junk["ref"]: None}

    # Read and refused by intake (a date in the future): its event_id counts as decided, so
    # the same id again would be skipped in silence. Only a new event_id goes.
    future_id, future = request_without_subject()
    future["data"]["subject"] = "From the future"
    future["occurred_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    publish_raw(bootstrap, topics.INBOUND, [(future_id.encode(), json.dumps(future).encode())])
    (late,) = wait_for(
        lambda: [row for row in listed() if row["event_id"] == future_id], 60, "its dead letter"
    )
    assert late["reason"] == "future_timestamp"
    fixed.write_text(json.dumps({**future, "occurred_at": datetime.now(UTC).isoformat()}))
    same_id = run(
        "dead-letters", "replay", late["ref"], "--by", "Mette", "--file", str(fixed),
        "--bootstrap", bootstrap, ok=False,
    )  # fmt: skip
    assert "counts as decided" in same_id
    new_id = str(uuid.uuid4())
    renewed = {**future, "event_id": new_id, "subject_id": new_id}
    fixed.write_text(json.dumps({**renewed, "occurred_at": datetime.now(UTC).isoformat()}))
    run(
        "dead-letters", "replay", late["ref"], "--by", "Mette", "--file", str(fixed),
        "--bootstrap", bootstrap,
    )  # fmt: skip
    renewed_ticket = ticket_id_for_request(uuid.UUID(new_id))
    wait_for(
        lambda: httpx.get(f"{gateway}/tickets/{renewed_ticket}", headers=AGENT).status_code == 200,
        60,
        "the request under its new id to open its ticket",
    )

    away = run("dead-letters", "list", "--bootstrap", "127.0.0.1:1", ok=False)
    assert "cannot reach Kafka at 127.0.0.1:1" in away

    not_json = tmp_path / "still-broken.json"
    not_json.write_text("{still oops")
    refused = run(
        "dead-letters", "replay", junk["ref"], "--by", "Mette", "--file", str(not_json),
        "--bootstrap", bootstrap, ok=False,
    )  # fmt: skip
    assert "invalid_json" in refused

    # The status shows the desk as its dashboards would.
    write_endpoints(stack.config)
    figures = run("status", "--data-dir", str(stack.config.data_dir))
    intake_row = next(line for line in figures.splitlines() if "intake" in line)
    assert intake_row.split("│")[5].strip() == "3"  # junk, no subject, from the future
    wait_for(
        lambda: (
            "open tickets" in (out := run("status", "--data-dir", str(stack.config.data_dir)))
            and next(line for line in out.splitlines() if "open tickets" in line)
            .split("│")[2]
            .strip()
            == "2"  # the replayed request's and the renewed one's
        ),
        60,
        "status to show the two open tickets",
    )


def test_month_end_issues_and_exports_every_agreements_statement(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    _, gateway = running_desk(make_stack)
    last_month = datetime.now(ZoneInfo("Europe/Berlin")).replace(day=1) - timedelta(days=3)
    month = last_month.strftime("%Y-%m")
    common = ["--month", month, "--gateway", gateway, "--token", "admin-token"]

    issued = run("statements", "issue", *common)
    assert "issued" in issued
    assert "Nordlicht" in issued

    def in_view() -> bool:
        url = f"{gateway}/agreements/{Z_PREMIUM}/statements/{month}"
        return httpx.get(url, headers=AGENT, timeout=10).status_code == 200

    wait_for(in_view, 60, "the statement in the gateway's view")
    assert "issued before" in run("statements", "issue", *common)

    out = run("statements", "export", *common, "--to", str(tmp_path / "out"))
    (written,) = (tmp_path / "out").glob("*.csv")
    assert written.name.startswith(f"statement-{month}-nordlicht-gmbh-")
    assert "1 statement(s) written" in out
    assert f"total,{month},,total,,,0" in written.read_text()  # nothing logged: nothing owed


def test_the_demo_agreements_are_registered_on_a_running_desk_once(
    make_stack: StackFactory,
) -> None:
    """What Compose users run after `docker compose up` to follow the README."""
    _, gateway = running_desk(make_stack)
    common = ["--gateway", gateway, "--token", "admin-token"]
    said = run("demo-agreements", *common)
    assert "registered" in said

    def listed() -> list[str]:
        answer = httpx.get(f"{gateway}/agreements", headers=AGENT, timeout=10)
        return sorted(a["agreement_id"] for a in answer.json())

    from servicedesk_stack.demo import DEMO_AGREEMENTS

    demo = {str(agreement_id) for agreement_id in DEMO_AGREEMENTS}
    wait_for(lambda: demo <= set(listed()), 60, "the demo agreements in the view")
    before = listed()
    run("demo-agreements", *common)  # again: the same ids, nothing new
    assert listed() == before
    assert "did not take them" in run(
        "demo-agreements", "--gateway", gateway, "--token", "x", ok=False
    )
