"""Billing counts agreements and logged time when they are committed, not when a handler
that may run again (a retried batch) records them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from servicedesk_billing.application import Billing
from servicedesk_runtime.clock import ManualClock
from servicedesk_runtime.metrics import CATALOGUE

from .test_billing_history import history, store_at, time_logged


def sample(name: str, **labels: str) -> float:
    return CATALOGUE.get_sample_value(name, labels) or 0.0


def test_what_billing_counts_is_counted_once_however_often_its_batch_was_applied(
    tmp_path: Path,
) -> None:
    store = store_at(tmp_path / "billing.db")
    handlers = Billing(ManualClock(datetime(2026, 12, 1, tzinfo=UTC))).handlers()
    registered = history()[0]
    logged = time_logged(45, datetime(2026, 11, 3, 9, 0, tzinfo=UTC))
    agreements = sample("servicedesk_agreements_registered_total", billing_model="prepaid_bundle")
    seconds = sample("servicedesk_time_logged_seconds_total", billable="true")

    for message in (registered, logged):
        handlers[message.event_type](message, store.unit_of_work())  # a batch thrown away
        uow = store.unit_of_work()
        handlers[message.event_type](message, uow)
        uow.commit()

    assert (
        sample("servicedesk_agreements_registered_total", billing_model="prepaid_bundle")
        == agreements + 1
    )
    assert sample("servicedesk_time_logged_seconds_total", billable="true") == seconds + 45 * 60
    store.close()
