"""The SLA risk board's gauges follow the view: groups come, change and go."""

from __future__ import annotations

from typing import Any

from servicedesk_gateway.broker import show_risk
from servicedesk_runtime.metrics import CATALOGUE


def group(agreement: str, priority: str, **figures: Any) -> dict[str, Any]:
    return {
        "agreement_id": agreement,
        "customer": f"customer of {agreement}",
        "priority": priority,
        "open": 1,
        "at_risk": 0,
        "breached": 0,
        "next_due_micros": None,
        **figures,
    }


def value(name: str, agreement: str, priority: str) -> float | None:
    labels = {"agreement": agreement, "customer": f"customer of {agreement}", "priority": priority}
    return CATALOGUE.get_sample_value(name, labels)


def test_a_group_without_open_tickets_or_a_deadline_leaves_the_board() -> None:
    show_risk(
        [
            group(
                "a-1", "P1", open=3, at_risk=2, breached=1, next_due_micros=1_800_000_000_000_000
            ),
            group("a-2", "B", open=5),
        ]
    )
    assert value("servicedesk_open_tickets", "a-1", "P1") == 3
    assert value("servicedesk_tickets_at_risk", "a-1", "P1") == 2
    assert value("servicedesk_tickets_breached_open", "a-1", "P1") == 1
    assert value("servicedesk_next_deadline_timestamp_seconds", "a-1", "P1") == 1_800_000_000
    assert value("servicedesk_open_tickets", "a-2", "B") == 5
    assert value("servicedesk_next_deadline_timestamp_seconds", "a-2", "B") is None

    show_risk([group("a-1", "P1", open=2)])  # a-2's tickets closed; a-1's clock stopped
    assert value("servicedesk_open_tickets", "a-1", "P1") == 2
    assert value("servicedesk_tickets_at_risk", "a-1", "P1") == 0
    assert value("servicedesk_next_deadline_timestamp_seconds", "a-1", "P1") is None
    assert value("servicedesk_open_tickets", "a-2", "B") is None

    show_risk([])
    assert value("servicedesk_open_tickets", "a-1", "P1") is None
