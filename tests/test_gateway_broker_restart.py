"""The gateway across a restart of the embedded broker (memory only: the restart loses
every message): commands it answered 202 are still processed, and its view is rebuilt from
the new broker without restarting the gateway."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from tests.conftest import StackFactory
from tests.desk import agreement_in_view, phone_call
from tests.kafka_tools import publish_raw
from tests.real_parts import require_embedded
from tests.test_fault_tolerance import Z_PREMIUM, submit_ticket

from servicedesk_contracts import topics
from servicedesk_runtime.tansu import EmbeddedBroker
from servicedesk_stack.gateway_client import all_tickets
from servicedesk_stack.stack import Stack
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
AGENT = {"Authorization": "Bearer agent-token"}
WITHOUT_INTAKE = ("triage", "sla-timer", "billing", "notifier", "gateway")


def restart_exited(stack: Stack) -> None:
    """What a supervisor does: the services stop when their broker is replaced."""
    for service, process in list(stack.processes.items()):
        if process.poll() is not None:
            stack.processes.pop(service)
            stack.start_service(service)


def ticket_ready(stack: Stack, gateway: str, ticket_id: str) -> dict[str, Any] | None:
    restart_exited(stack)
    response = httpx.get(f"{gateway}/tickets/{ticket_id}", headers=AGENT)
    view: dict[str, Any] = response.json()
    return view if response.status_code == 200 and view["priority"] and view["sla"] else None


def test_an_accepted_command_survives_a_broker_restart_and_the_view_is_rebuilt(
    make_stack: StackFactory, broker: EmbeddedBroker
) -> None:
    require_embedded(broker)
    stack = make_stack()
    stack.start(WITHOUT_INTAKE)  # nothing consumes the gateway's commands yet
    stack.wait_ready(WITHOUT_INTAKE)
    gateway = f"http://127.0.0.1:{stack.config.gateway_port}"
    gateway_pid = stack.processes["gateway"].pid
    agreement_in_view(broker.bootstrap, gateway, Z_PREMIUM)
    accepted = httpx.post(f"{gateway}/tickets", json=phone_call(), headers=AGENT)
    assert accepted.status_code == 202
    first = accepted.json()["id"]

    broker.stop()  # the command was published, and nobody consumed it
    with EmbeddedBroker(port=broker.port) as new_broker:  # same address, new cluster id
        try:
            stack.start_service("intake")
            publish_raw(new_broker.bootstrap, topics.INBOUND, [submit_ticket(Z_PREMIUM, 2)])
            view = wait_for(lambda: ticket_ready(stack, gateway, first), 120, "the accepted ticket")
            assert view["reference"] in ("SD-000001", "SD-000002")
            wait_for(
                lambda: len(all_tickets(gateway, AGENT)) == 2,
                60,
                "both tickets in the rebuilt view",
            )
            # Ready once it has seen that its view holds everything the new broker had when
            # it followed it (it looks every 0.2 s): the tickets may show a moment before.
            wait_for(
                lambda: httpx.get(f"{gateway}/health").status_code == 200,
                30,
                "the gateway ready on the new broker",
            )
            assert stack.processes["gateway"].pid == gateway_pid  # rebuilt, not restarted
            views = all_tickets(gateway, AGENT)
            assert len({v["ticket_id"] for v in views}) == 2
            assert uuid.UUID(first) in {uuid.UUID(v["ticket_id"]) for v in views}
            # The stack gave the gateway a store of its own, beside the services'.
            assert list((stack.config.data_dir / "data").glob("*gateway.db"))
        finally:
            stack.stop()
