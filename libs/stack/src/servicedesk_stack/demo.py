"""Demo agreements from DOMAIN.md, resolved from the plan catalogue as a customer would
sign them (one source of truth: `servicedesk_contracts.plans`)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

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
        mail={
            "email_domains": ["acme-logistics.nl"],
            "category": "question",
            "impact": "one_user",
            "urgency": "low",
            "language": "nl",
        },
    )


def provider_z_premium(customer: str = "Nordlicht GmbH") -> dict[str, Any]:
    """Provider Z, Premium 24x7: P1 15 min, P2 60 min, P3 4 h, P4 8 h; the customer may
    override the assigned priority."""
    return _terms(
        customer=customer,
        plan="Z Premium",
        billing={"model": "monthly_invoice", "hourly_rate_cents": 12000, "vat_rate": "0.19"},
        mail={
            "email_domains": ["nordlicht.de"],
            "impact": "medium",
            "urgency": "medium",
            "on_call_email": "oncall@nordlicht-support.example",
        },
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
        mail={
            "email_domains": ["hygge.dk"],
            "contacts": ["mette@hygge.dk", "lars@hygge.dk"],
            "support_contacts_only": True,
            "closed_ticket_replies": "new_after_days",
            "reopen_within_days": 14,
            "category": "support",
            "impact": "medium",
            "urgency": "medium",
            "language": "da",
        },
    )


DEMO_AGREEMENTS = {
    uuid.UUID("00000000-0000-4000-8000-00000000000a"): provider_r_medium,
    uuid.UUID("00000000-0000-4000-8000-00000000000b"): provider_z_premium,
    uuid.UUID("00000000-0000-4000-8000-00000000000c"): provider_v_danish,
}

FIRST_AGREEMENT_ID = next(iter(DEMO_AGREEMENTS))
DEMO_ORGANISATION: str = DEMO_AGREEMENTS[FIRST_AGREEMENT_ID]()["customer"]
"""The organisation of the first demo agreement: the demo customer belongs to it."""
DEMO_PEOPLE = {
    "agent-token": "agent-token:agent:agent:first-line",
    "admin-token": "admin-token:admin:admin",
    "customer-token": (
        f"customer-token:customer:Demo Customer:{DEMO_ORGANISATION}:{FIRST_AGREEMENT_ID}:billing"
    ),
}
"""The demo's people as `GATEWAY_TOKENS` entries (plaintext tokens, for the demo only):
an agent of the group `first-line`, an admin, and a customer of the first demo agreement's
organisation who is its billing contact."""
DEMO_TOKENS = ",".join(DEMO_PEOPLE.values())

PEOPLE_FILE_HEADER = """\
# People of the gateway and their tokens, stored hashed (GATEWAY_PEOPLE_FILE). The gateway
# reads this file again when it changes: no restart. Add someone while the stack runs:
#   .venv/bin/python -m servicedesk_gateway.people new-token --name "Ole Hansen" \\
#       --role customer --organisation "Acme Logistics" --append var/people.toml
# The token is printed once; only its hash lands here. Removing an entry refuses its token.
# The demo tokens (agent-token, admin-token, customer-token) are in GATEWAY_TOKENS instead.
"""


def register_demo_agreements(gateway: str, token: str) -> list[str]:
    """Registers the demo agreements through the gateway (`gateway` is its base URL, `token`
    an admin's), under their fixed ids: registering them again changes nothing they say.
    Returns the customers."""
    customers = []
    for agreement_id, terms in DEMO_AGREEMENTS.items():
        body = {"agreement_id": str(agreement_id), **terms()}
        response = httpx.post(
            f"{gateway}/agreements",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        response.raise_for_status()
        customers.append(str(body["customer"]))
    return customers
