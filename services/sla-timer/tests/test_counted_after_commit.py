"""Metrics count what was committed: a handler or a timer round whose unit of work is
thrown away (a failed commit, a retried batch) counts nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from servicedesk_contracts import messages as m
from servicedesk_runtime.clock import ManualClock
from servicedesk_runtime.database import DatabaseUrl
from servicedesk_runtime.metrics import CATALOGUE

from .test_due_timers import START, Replica, database_url, start_clocks

__all__ = ["database_url"]  # the fixture, shared with the due-timer tests


def breaches() -> float:
    labels = {"kind": "response", "priority": "P2"}
    return CATALOGUE.get_sample_value("servicedesk_sla_breaches_total", labels) or 0.0


def test_a_breach_is_counted_once_when_its_first_commit_failed(
    database_url: DatabaseUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(START)
    replica = Replica(database_url, clock)
    start_clocks(replica.store, 1, minutes=30)
    clock.set(START + timedelta(minutes=31))
    save = replica.store.save_with_tracking
    failures = [OperationalError("connection lost")]

    def save_failing_once(aggregates: Any, tracking: Any) -> None:
        if failures:
            raise failures.pop()
        save(aggregates, tracking)

    monkeypatch.setattr(replica.store, "save_with_tracking", save_failing_once)
    before = breaches()
    with pytest.raises(OperationalError):
        replica.timer.fire_due_timers()
    assert breaches() == before  # nothing committed, nothing counted
    assert replica.timer.fire_due_timers() == 1
    assert breaches() == before + 1
    replica.close()


def test_a_met_response_is_counted_only_when_its_batch_commits(
    database_url: DatabaseUrl,
) -> None:
    replica = Replica(database_url, ManualClock(START))
    (clock_id,) = start_clocks(replica.store, 1, minutes=30)
    ticket_id = replica.store.repository.get(clock_id).ticket_id
    replied = m.AgentReplied.create(
        producer="intake",
        subject_id=ticket_id,
        data={
            "reference": "SD-000000",
            "agent": "mette",
            "body": "on it",
            "replied_at": START + timedelta(minutes=5),
        },
    )

    def met() -> float:
        labels = {"kind": "response", "outcome": "met"}
        return CATALOGUE.get_sample_value("servicedesk_sla_clocks_stopped_total", labels) or 0.0

    before = met()
    replica.timer.handlers()["AgentReplied"](replied, replica.store.unit_of_work())  # dropped
    assert met() == before
    uow = replica.store.unit_of_work()
    replica.timer.handlers()["AgentReplied"](replied, uow)
    uow.commit()
    assert met() == before + 1
    replica.close()
