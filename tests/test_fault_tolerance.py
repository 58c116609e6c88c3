"""Crashes, poison messages and a new broker: nothing lost, nothing applied twice."""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.conftest import StackFactory, metric_value
from tests.kafka_tools import events_of, publish_raw, read_topic
from tests.real_parts import require_embedded

from servicedesk_contracts import topics
from servicedesk_runtime.tansu import EmbeddedBroker
from servicedesk_stack.demo import DEMO_AGREEMENTS, provider_z_premium
from servicedesk_stack.gateway_client import all_tickets
from servicedesk_stack.mail_sink import MailSink
from servicedesk_stack.waiting import wait_for

pytestmark = pytest.mark.integration

Z_PREMIUM = uuid.UUID("00000000-0000-4000-8000-00000000000b")


def submit_ticket(agreement_id: uuid.UUID, n: int, impact: str = "high") -> tuple[bytes, bytes]:
    request_id = str(uuid.uuid4())
    message = {
        "event_id": request_id,
        "event_type": "SubmitTicket",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "load",
        "subject_id": request_id,
        "data": {
            "agreement_id": str(agreement_id),
            "reporter_email": f"user{n}@nordlicht.de",
            "reporter_name": f"User {n}",
            "organisation": "Nordlicht GmbH",
            "channel": "email",
            "subject": f"Request {n}",
            "body": "Something is wrong",
            "category": "incident",
            "impact": impact,
            "urgency": "medium",
        },
    }
    return request_id.encode(), json.dumps(message).encode()


def register(bootstrap: str, agreement_id: uuid.UUID, terms: dict[str, Any]) -> None:
    command = {
        "event_type": "RegisterAgreement",
        "producer": "crm",
        "subject_id": str(agreement_id),
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": terms,
    }
    publish_raw(
        bootstrap,
        topics.BILLING_COMMANDS,
        [(str(agreement_id).encode(), json.dumps(command).encode())],
    )


def per_subject(events: list[dict[str, Any]]) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = defaultdict(set)
    for event in events:
        ids[event["subject_id"]].add(event["event_id"])
    return ids


@pytest.mark.e2e
def test_a_killed_consumer_resumes_and_triages_every_ticket_exactly_once(
    make_stack: StackFactory, postgres_url: str
) -> None:
    stack = make_stack(postgres_url)
    stack.start(("intake", "triage", "sla-timer", "billing"))
    stack.wait_ready(("intake", "triage", "sla-timer", "billing"))
    bootstrap = stack.config.bootstrap
    register(bootstrap, Z_PREMIUM, provider_z_premium())
    total = 300
    tickets = [submit_ticket(Z_PREMIUM, n) for n in range(total)]

    def stream() -> None:
        for start in range(0, total, 10):
            publish_raw(bootstrap, topics.INBOUND, tickets[start : start + 10])

    streaming = threading.Thread(target=stream)
    streaming.start()
    wait_for(
        lambda: len(events_of(bootstrap, topics.TRIAGE, "TicketTriaged")) >= 40,
        60,
        "triage to be under way",
    )
    stack.kill("triage")  # SIGKILL in the middle of the stream
    streaming.join()
    stack.start_service("triage")
    stack.wait_ready(("triage",))  # a restart that exits says so, not a timeout

    def all_triaged() -> dict[str, set[str]] | None:
        triaged = per_subject(events_of(bootstrap, topics.TRIAGE, "TicketTriaged"))
        return triaged if len(triaged) == total else None

    triaged = wait_for(all_triaged, 120, f"all {total} tickets triaged")
    # One decision per ticket: a republished event keeps its event_id.
    assert all(len(event_ids) == 1 for event_ids in triaged.values())
    assert {
        e["data"]["priority"] for e in events_of(bootstrap, topics.TRIAGE, "TicketTriaged")
    } == {"P2"}
    # Downstream, each ticket got exactly one SLA clock.
    started = wait_for(
        lambda: (
            (s := per_subject(events_of(bootstrap, topics.SLA, "SlaClockStarted")))
            and len(s) == total
            and s
        ),
        60,
        "every clock started",
    )
    assert all(len(event_ids) == 1 for event_ids in started.values())
    opened = per_subject(events_of(bootstrap, topics.TICKETS, "TicketOpened"))
    assert set(opened) == set(triaged) == set(started)


def test_a_malformed_message_is_dead_lettered_and_the_next_one_still_applies(
    make_stack: StackFactory,
) -> None:
    stack = make_stack()  # SQLite: the embedded default
    stack.start(("intake",))
    stack.wait_ready(("intake",))
    bootstrap = stack.config.bootstrap
    bad_email = json.loads(submit_ticket(Z_PREMIUM, 1)[1])
    bad_email["data"]["reporter_email"] = "not an address"
    key = b"same-partition"
    publish_raw(
        bootstrap,
        topics.INBOUND,
        [
            (key, b"{this is not json"),
            (key, json.dumps(bad_email).encode()),
            (key, submit_ticket(Z_PREMIUM, 2)[1]),
        ],
    )
    opened = wait_for(lambda: events_of(bootstrap, topics.TICKETS, "TicketOpened"), 30, "ticket")
    assert [o["data"]["reporter_email"] for o in opened] == ["user2@nordlicht.de"]
    dead = wait_for(
        lambda: len(r := read_topic(bootstrap, topics.DEAD_LETTER)) == 2 and r, 30, "dead letters"
    )
    assert dead[0].value == b"{this is not json"
    assert dead[0].headers["error_reason"] == b"invalid_json"
    assert dead[1].headers["error_reason"] == b"validation_failed"
    assert b"data.reporter_email" in dead[1].headers["error_detail"]
    assert dead[1].headers["source_topic"] == topics.INBOUND.encode()


def test_a_new_embedded_broker_is_recovered_without_losing_or_repeating_anything(
    make_stack: StackFactory, broker: EmbeddedBroker, mail_sink: MailSink
) -> None:
    require_embedded(broker)
    services = ("intake", "triage", "sla-timer", "billing", "notifier", "gateway")
    first = make_stack()
    first.start(services)
    first.wait_ready(services)
    register(broker.bootstrap, Z_PREMIUM, DEMO_AGREEMENTS[Z_PREMIUM]())
    publish_raw(broker.bootstrap, topics.INBOUND, [submit_ticket(Z_PREMIUM, 1)])
    wait_for(lambda: len(mail_sink.messages) == 1, 60, "the first confirmation")
    wait_for(
        lambda: events_of(broker.bootstrap, topics.NOTIFICATIONS, "NotificationSent"),
        30,
        "the first confirmation recorded as sent",
    )
    first.stop()
    broker.stop()

    # The embedded run starts again: a new, empty broker (new cluster id), same stores.
    with EmbeddedBroker() as new_broker:
        config = first.config
        config.bootstrap = new_broker.bootstrap
        second = first  # same data directory, same stores
        second.start(services)
        second.wait_ready(services)
        publish_raw(new_broker.bootstrap, topics.INBOUND, [submit_ticket(Z_PREMIUM, 2)])
        gateway = f"http://127.0.0.1:{config.gateway_port}"

        def both_tickets() -> list[dict[str, Any]] | None:
            views = all_tickets(gateway, {"Authorization": "Bearer agent-token"})
            done = [v for v in views if v["priority"] and v["sla"]]
            return views if len(done) == 2 else None

        try:
            views = wait_for(both_tickets, 60, "both tickets in the rebuilt view")
        except BaseException:
            print(all_tickets(gateway, {"Authorization": "Bearer agent-token"}))
            raise
        assert sorted(v["reference"] for v in views) == ["SD-000001", "SD-000002"]
        # Drained before "not sent again" is asserted: the notifier has skipped the first
        # ticket's republished TicketOpened, and recorded both deliveries (its relay
        # republishes its receipts on the new broker), so no confirmation can still come.
        notifier_port = config.port_of("notifier")

        def republished_opening_skipped() -> bool:
            skipped = metric_value(
                notifier_port,
                "servicedesk_duplicate_messages_total",
                service="notifier",
                topic=topics.TICKETS,
            )
            return skipped >= 1

        def confirmations_recorded() -> int:
            sent = events_of(new_broker.bootstrap, topics.NOTIFICATIONS, "NotificationSent")
            return len({e["data"]["notification_id"] for e in sent})

        wait_for(republished_opening_skipped, 60, "the republished TicketOpened skipped")
        wait_for(lambda: confirmations_recorded() == 2, 60, "both confirmations recorded")
        # The first ticket's confirmation is not sent again after the republish.
        subjects = [str(m["Subject"]) for m in mail_sink.messages]
        assert len(subjects) == 2, subjects
        assert len({str(m["Message-ID"]) for m in mail_sink.messages}) == 2
        assert len(events_of(new_broker.bootstrap, topics.TRIAGE, "TicketTriaged")) == 2
        second.stop()
