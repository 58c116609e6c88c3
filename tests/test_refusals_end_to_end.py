"""Bad commands and requests from other systems on the real broker: each is dead-lettered
with a reason naming what is wrong, and nothing accepted is lost. A ticket for an agreement
that is not registered waits visibly and is triaged when the agreement arrives."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tests.conftest import StackFactory, metric_value
from tests.kafka_tools import Record, events_of, publish_raw, read_topic

from servicedesk_contracts import topics
from servicedesk_stack.demo import provider_r_medium
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SERVICES = ("intake", "triage", "billing")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def command(event_type: str, subject_id: uuid.UUID, data: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "occurred_at": datetime.now(UTC).isoformat(),
            "producer": "crm",
            "subject_id": str(subject_id),
            "data": data,
        }
    ).encode()


def request(agreement_id: uuid.UUID, **envelope: Any) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    return {
        "event_id": request_id,
        "event_type": "SubmitTicket",
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "monitoring",
        "subject_id": request_id,
        "data": {
            "agreement_id": str(agreement_id),
            "reporter_email": "noc@acme.example",
            "reporter_name": "NOC",
            "organisation": "Acme",
            "channel": "api",
            "subject": "Disk full",
            "body": "on db-2",
            "category": "incident",
            "impact": "multiple users",
            "urgency": "high",
        },
        **envelope,
    }


def dead_letters(bootstrap: str, count: int) -> list[Record]:
    found: list[Record] = wait_for(
        lambda: len(r := read_topic(bootstrap, topics.DEAD_LETTER)) >= count and r,
        60,
        f"{count} dead letters",
    )
    return found


def test_bad_commands_are_dead_lettered_naming_the_field_and_a_ticket_waits_for_its_agreement(
    make_stack: StackFactory,
) -> None:
    stack = make_stack()
    stack.start(SERVICES)
    stack.wait_ready(SERVICES)
    bootstrap = stack.config.bootstrap
    agreement = uuid.uuid4()
    bad_country = provider_r_medium()
    bad_country["calendar"]["holidays_country"] = "XX"
    selection = {"customer": "C", "plan": "R Medium", "billing": {"hourly_rate_cents": 1}}
    key = str(agreement).encode()
    publish_raw(
        bootstrap,
        topics.BILLING_COMMANDS,
        [
            (key, command("RegisterAgreement", agreement, bad_country)),
            (key, command("RegisterPlanAgreement", agreement, selection | {"timezone": "Mars/X"})),
            (key, command("RegisterPlanAgreement", agreement, selection | {"targets": P1_ON_R})),
        ],
    )
    # A ticket for the agreement before it exists, and two requests without an identity.
    waiting = request(agreement)
    no_id = request(agreement)
    del no_id["event_id"]
    epoch = request(agreement, occurred_at=1780578000)
    publish_raw(
        bootstrap, topics.INBOUND, [(None, json.dumps(r).encode()) for r in (waiting, no_id, epoch)]
    )
    triage_port = stack.config.port_of("triage")
    wait_for(lambda: parked(triage_port) == 1, 60, "the ticket to be parked")
    assert reasons(dead_letters(bootstrap, 5)) == {
        ("validation_failed", "data.calendar.holidays_country"),
        ("validation_failed", "data.timezone"),
        ("invalid_plan_selection", "targets"),
        ("validation_failed", "event_id"),
        ("validation_failed", "occurred_at"),
    }
    assert not events_of(bootstrap, topics.AGREEMENTS, "AgreementRegistered")

    # The agreement arrives: the parked ticket is triaged. A statement for this month waits.
    this_month = datetime.now(AMSTERDAM).strftime("%Y-%m")
    publish_raw(
        bootstrap,
        topics.BILLING_COMMANDS,
        [
            (key, command("RegisterPlanAgreement", agreement, selection)),
            (key, command("IssueStatement", agreement, {"month": this_month})),
        ],
    )
    (triaged,) = wait_for(
        lambda: events_of(bootstrap, topics.TRIAGE, "TicketTriaged"), 60, "the parked ticket"
    )
    assert triaged["data"]["priority"] == "A"
    wait_for(lambda: parked(triage_port) == 0, 30, "no ticket parked")
    assert (
        "month_not_ended",
        f"{this_month} has not ended in Europe/Amsterdam",
    ) in reasons(dead_letters(bootstrap, 6))


P1_ON_R = {"P1": {"response_minutes": 5}}


def parked(port: int) -> float:
    return metric_value(port, "servicedesk_tickets_parked")


def reasons(records: list[Record]) -> set[tuple[str, str]]:
    """(reason, what the detail names first) per dead letter."""
    return {
        (r.headers["error_reason"].decode(), r.headers["error_detail"].decode().split(":")[0])
        for r in records
    }
