"""Monthly-invoice statements computed by hand from DOMAIN.md numbers."""

from __future__ import annotations

import uuid

from servicedesk_billing.domain import Entry, monthly_statement
from servicedesk_contracts.messages import AgreementTerms
from servicedesk_stack.demo import provider_r_medium

TERMS = AgreementTerms.model_validate(provider_r_medium())  # EUR 95.00 / h, VAT 21 %
AGREEMENT = uuid.UUID("00000000-0000-4000-8000-00000000000a")


def entry(ticket: str, minutes: int, billable: bool = True) -> Entry:
    return Entry(str(uuid.uuid4()), ticket, f"SD-{ticket}", minutes, billable)


def test_short_requests_are_billed_at_least_15_minutes() -> None:
    statement = monthly_statement(
        AGREEMENT,
        "2026-11",
        TERMS,
        [entry("000001", 10), entry("000002", 30), entry("000002", 20)],
    )
    first, second = statement["lines"]
    assert (first["minutes_logged"], first["minutes_billed"]) == (10, 15)
    assert first["amount_cents"] == 2375  # 15/60 x 9500
    assert "minimum of 15 min" in first["rounding"]
    assert (second["minutes_logged"], second["minutes_billed"]) == (50, 50)
    assert second["amount_cents"] == 7917  # 50/60 x 9500 = 7916.67, half up
    assert second["rounding"] == "as logged"
    assert statement["subtotal_cents"] == 10292
    assert statement["vat_cents"] == 2161  # 21 % of 10292 = 2161.32
    assert statement["total_cents"] == 12453
    assert statement["minutes_billed"] == 65


def test_statement_ids_are_one_per_agreement_and_month() -> None:
    november = monthly_statement(AGREEMENT, "2026-11", TERMS, [])
    assert (
        november["statement_id"]
        == monthly_statement(AGREEMENT, "2026-11", TERMS, [])["statement_id"]
    )
    assert (
        november["statement_id"]
        != monthly_statement(AGREEMENT, "2026-12", TERMS, [])["statement_id"]
    )
    assert november["total_cents"] == 0
