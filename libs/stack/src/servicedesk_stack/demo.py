"""Demo agreements from DOMAIN.md, as a customer would register them."""

from __future__ import annotations

import uuid
from typing import Any

WEEKDAYS_9_TO_5 = {
    d: [{"opens": "09:00", "closes": "17:00"}] for d in ("mon", "tue", "wed", "thu", "fri")
}
WEEKDAYS_8_TO_5 = {
    d: [{"opens": "08:00", "closes": "17:00"}] for d in ("mon", "tue", "wed", "thu", "fri")
}
DANISH_HOURS = {
    **{d: [{"opens": "08:30", "closes": "16:00"}] for d in ("mon", "tue", "wed", "thu")},
    "fri": [{"opens": "08:30", "closes": "15:30"}],
}


def provider_r_medium(customer: str = "Acme Logistics") -> dict[str, Any]:
    """Provider R, plan Medium with PrioritySupport targets (DOMAIN.md 4), Dutch working days."""
    return {
        "customer": customer,
        "plan": "R Medium",
        "calendar": {
            "timezone": "Europe/Amsterdam",
            "weekly_hours": WEEKDAYS_9_TO_5,
            "holidays_country": "NL",
        },
        "matrix": "R-ABCD",
        "targets": {
            "A": {"response_minutes": 120, "resolution_working_days": 1},
            "B": {"response_minutes": 240, "resolution_working_days": 2},
            "C": {"response_working_days": 2},
            "D": {"response_working_days": 5},
        },
        "billing": {"model": "monthly_invoice", "hourly_rate_cents": 9500, "vat_rate": "0.21"},
    }


def provider_z_premium(customer: str = "Nordlicht GmbH") -> dict[str, Any]:
    """Provider Z, Premium 24x7: P1 15 min, P2 60 min, P3 4 h, P4 8 h; the customer may
    override the assigned priority."""
    return {
        "customer": customer,
        "plan": "Z Premium",
        "calendar": {"timezone": "Europe/Berlin", "always_open": True},
        "matrix": "Z-P1P4",
        "customer_may_override_priority": True,
        "targets": {
            "P1": {"response_minutes": 15},
            "P2": {"response_minutes": 60},
            "P3": {"response_minutes": 240},
            "P4": {"response_minutes": 480},
        },
        "billing": {"model": "monthly_invoice", "hourly_rate_cents": 12000, "vat_rate": "0.19"},
    }


def provider_v_danish(customer: str = "Hygge Software ApS") -> dict[str, Any]:
    """Provider V (Denmark): answered within 8 working hours, Mon-Thu 08:30-16:00,
    Fri 08:30-15:30, closed on Danish holidays and 24 Dec, 31 Dec, 5 June."""
    return {
        "customer": customer,
        "plan": "V Billed",
        "calendar": {
            "timezone": "Europe/Copenhagen",
            "weekly_hours": DANISH_HOURS,
            "holidays_country": "DK",
            "closed_dates": [
                "2026-06-05",
                "2026-12-24",
                "2026-12-31",
                "2027-06-05",
                "2027-12-24",
                "2027-12-31",
            ],
        },
        "matrix": "Z-P1P4",
        "targets": {p: {"response_minutes": 480} for p in ("P1", "P2", "P3", "P4")},
        "billing": {
            "model": "billed_per_use",
            "hourly_rate_cents": 11000,
            "minimum_minutes_per_request": 15,
            "vat_rate": "0.25",
        },
    }


DEMO_AGREEMENTS = {
    uuid.UUID("00000000-0000-4000-8000-00000000000a"): provider_r_medium,
    uuid.UUID("00000000-0000-4000-8000-00000000000b"): provider_z_premium,
    uuid.UUID("00000000-0000-4000-8000-00000000000c"): provider_v_danish,
}
