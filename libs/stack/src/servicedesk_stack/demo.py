"""Demo agreements from DOMAIN.md, resolved from the plan catalogue as a customer would
sign them (one source of truth: `servicedesk_contracts.plans`)."""

from __future__ import annotations

import uuid
from typing import Any

from servicedesk_contracts.messages import PlanSelection
from servicedesk_contracts.plans import resolve


def _terms(**selection: Any) -> dict[str, Any]:
    return resolve(PlanSelection.model_validate(selection)).model_dump(mode="json")


def provider_r_medium(customer: str = "Acme Logistics") -> dict[str, Any]:
    """Provider R, plan Medium: PrioritySupport targets on Dutch working days."""
    return _terms(
        customer=customer,
        plan="R Medium",
        billing={"model": "monthly_invoice", "hourly_rate_cents": 9500, "vat_rate": "0.21"},
    )


def provider_z_premium(customer: str = "Nordlicht GmbH") -> dict[str, Any]:
    """Provider Z, Premium 24x7: P1 15 min, P2 60 min, P3 4 h, P4 8 h; the customer may
    override the assigned priority."""
    return _terms(
        customer=customer,
        plan="Z Premium",
        billing={"model": "monthly_invoice", "hourly_rate_cents": 12000, "vat_rate": "0.19"},
    )


def provider_v_danish(customer: str = "Hygge Software ApS") -> dict[str, Any]:
    """Provider V (Denmark): answered within 8 working hours, Mon-Thu 08:30-16:00,
    Fri 08:30-15:30, closed on Danish holidays and every 24 Dec, 31 Dec and 5 June."""
    return _terms(
        customer=customer,
        plan="V Billed",
        billing={
            "model": "billed_per_use",
            "hourly_rate_cents": 11000,
            "minimum_minutes_per_request": 15,
            "vat_rate": "0.25",
        },
    )


DEMO_AGREEMENTS = {
    uuid.UUID("00000000-0000-4000-8000-00000000000a"): provider_r_medium,
    uuid.UUID("00000000-0000-4000-8000-00000000000b"): provider_z_premium,
    uuid.UUID("00000000-0000-4000-8000-00000000000c"): provider_v_danish,
}
