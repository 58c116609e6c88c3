"""The fault suite's schedule (unit): what it kills, and in which order."""

from __future__ import annotations

import random

import pytest

from servicedesk_stack.faults.phases import fault_plan
from servicedesk_stack.stack import SERVICES


@pytest.mark.parametrize("seed", range(50))
def test_a_long_run_kills_every_service_and_restarts_the_broker_once(seed: int) -> None:
    plan = fault_plan(random.Random(seed), kills=12)
    killed = [f.removeprefix("kill:") for f in plan if f.startswith("kill:")]
    assert len(killed) == 12
    assert set(killed) == set(SERVICES)
    assert plan.count("broker") == plan.count("connections") == 1
    assert plan.index("connections") < plan.index("broker")


@pytest.mark.parametrize("seed", range(50))
def test_the_gateway_is_killed_first_long_before_the_broker_restart(seed: int) -> None:
    """A gateway started after the restart (or into it) rebuilds its view from scratch,
    which would hide whether a running one notices the new broker."""
    for kills in (3, 4, 12):
        plan = fault_plan(random.Random(seed), kills)
        gateway = [i for i, f in enumerate(plan) if f == "kill:gateway"]
        assert gateway == list(range(len(gateway)))
        assert not gateway or plan.index("broker") - gateway[-1] >= 2
        assert sum(f.startswith("kill:") for f in plan) == kills
