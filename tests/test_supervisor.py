"""The embedded runner restarts a service that dies instead of stopping everything."""

from __future__ import annotations

import signal
import uuid

import pytest
from tests.conftest import StackFactory
from tests.kafka_tools import events_of, publish_raw
from tests.test_fault_tolerance import submit_ticket

from servicedesk_contracts import topics
from servicedesk_stack.stack import Supervisor
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ANY_AGREEMENT = uuid.UUID("00000000-0000-4000-8000-00000000000b")  # intake does not check


def test_a_killed_service_is_restarted_and_carries_on(make_stack: StackFactory) -> None:
    stack = make_stack()
    stack.start(("intake",))
    stack.wait_ready(("intake",))
    supervisor = Supervisor(stack, shortest=0.1)
    first = stack.processes["intake"]

    first.send_signal(signal.SIGKILL)  # a crash: no clean-up
    first.wait()
    wait_for(lambda: supervisor.check() == ["intake"], timeout=10, what="a restart")
    assert stack.processes["intake"].pid != first.pid
    stack.wait_ready(("intake",))

    key, value = submit_ticket(ANY_AGREEMENT, 1)
    publish_raw(stack.config.bootstrap, topics.INBOUND, [(key, value)])
    opened = wait_for(
        lambda: events_of(stack.config.bootstrap, topics.TICKETS, "TicketOpened"),
        timeout=60,
        what="the ticket opened by the restarted intake",
    )
    assert [e["data"]["subject"] for e in opened] == ["Request 1"]
    assert supervisor.restarts == {"intake": 1}


def test_a_service_that_keeps_dying_waits_longer_each_time(make_stack: StackFactory) -> None:
    stack = make_stack(extra_env={"KAFKA_BOOTSTRAP_SERVERS": "not-a-host:1"})
    supervisor = Supervisor(stack, shortest=0.1, longest=0.4)
    stack.start(("intake",))
    stack.processes["intake"].kill()
    stack.processes["intake"].wait()
    pauses = []
    for _ in range(4):
        wait_for(supervisor.check, timeout=10, what="a restart")
        pauses.append(supervisor.pauses["intake"])
        stack.processes["intake"].kill()
        stack.processes["intake"].wait()
    assert pauses == [0.2, 0.4, 0.4, 0.4]  # doubled, then capped


def test_a_service_that_exits_at_start_says_what_it_died_of(make_stack: StackFactory) -> None:
    # On CI only the failed test's one-line summary is sure to be read: it names the cause.
    stack = make_stack(extra_env={"KAFKA_FETCH_WAIT_MS": "0"})
    stack.start(("triage",))
    said = r"triage exited with 2 \(triage: KAFKA_FETCH_WAIT_MS='0': .* greater than or equal to 1"
    with pytest.raises(RuntimeError, match=said):
        stack.wait_ready(("triage",))
