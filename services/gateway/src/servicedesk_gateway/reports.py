"""The monthly evaluation of an agreement, as providers review their own performance
(DOMAIN.md 6): tickets opened, time to first response, response and resolution targets met
or breached. Computed from the gateway's view, so it is rebuilt with it. Only final
outcomes count as met or breached: a reopened ticket's resolution clock runs again (open),
and its business minutes count once it is closed again."""

from __future__ import annotations

import statistics
import uuid
from typing import Any

from servicedesk_contracts import calendars
from servicedesk_gateway.view.queries import ViewQueries
from servicedesk_gateway.view.tickets import TicketView


def evaluation(view: ViewQueries, agreement: dict[str, Any], month: str) -> dict[str, Any]:
    """`agreement` as the view holds it (its terms, with `agreement_id`)."""
    agreement_id = uuid.UUID(agreement["agreement_id"])
    zone = agreement["calendar"]["timezone"]
    tickets = view.tickets_received(
        agreement_id, calendars.month_start(month, zone), calendars.month_end(month, zone)
    )
    by_priority: dict[str, int] = {}
    for ticket in tickets:
        key = ticket.priority or "untriaged"
        by_priority[key] = by_priority.get(key, 0) + 1
    return {
        "agreement_id": str(agreement_id),
        "month": month,
        "tickets_opened": len(tickets),
        "tickets_by_priority": dict(sorted(by_priority.items())),
        "tickets_closed": sum(1 for t in tickets if t.status == "closed"),
        "response": _clock_summary(tickets, "response"),
        "resolution": _clock_summary(tickets, "resolution"),
    }


def _clock_summary(tickets: list[TicketView], kind: str) -> dict[str, Any]:
    clocks = [t.sla[kind] for t in tickets if kind in t.sla]
    met = sum(1 for c in clocks if c.get("state") == "met")
    breached = sum(1 for c in clocks if c.get("state") == "breached")
    minutes = sorted(c["business_minutes"] for c in clocks if "business_minutes" in c)
    return {
        "timed": len(clocks),
        "met": met,
        "breached": breached,
        "open": len(clocks) - met - breached,
        "met_ratio": round(met / (met + breached), 4) if met + breached else None,
        "median_business_minutes": statistics.median(minutes) if minutes else None,
        "p90_business_minutes": _p90(minutes),
    }


def _p90(values: list[float]) -> float | None:
    """The 90th percentile by the nearest-rank method: the ceil(0.9 n)-th smallest of the
    sorted `values` (for 10 values the 9th, for 1 value that one); always a measured value."""
    if not values:
        return None
    rank = (9 * len(values) + 9) // 10  # ceil(0.9 n) in integers: no rounding error
    return values[rank - 1]
