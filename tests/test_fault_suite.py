"""The fault suite, short version (issue 8): a few hundred tickets on PostgreSQL while
services are killed, the stores' connections terminated and the broker restarted, then
hostile input. Nothing is lost but what the embedded broker held in flight, nothing is
applied twice, nothing hostile gets in, nothing stalls. The long version with its numbers:
`bench/fault_suite.py`."""

from __future__ import annotations

from pathlib import Path

import pytest

from servicedesk_stack.faults import SuiteConfig, run

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_a_stream_under_kills_a_lost_database_and_a_new_broker_loses_and_repeats_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    config = SuiteConfig(
        database_url=postgres_url,
        data_dir=tmp_path,
        tickets=300,
        rate=20,
        kills=4,
        hostile=500,
        hostile_valid=50,
        big_bodies=2,
        drain_timeout=300,
    )
    results = run(config)
    print(results.summary())  # shown with -s, and on failure
    failed = "\n".join(f"{f.name}: {f.detail}" for f in results.tally.failures)
    assert not results.tally.failures, f"{failed}\nlogs: {tmp_path / 'logs'}"
    # What the broker lost is reported apart; it can only be what was in flight.
    assert results.tally.lost_in_broker <= len(results.storm.in_flight_at_broker_restart)
