"""Statements under every billing model, computed by hand from DOMAIN.md's numbers."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from servicedesk_billing.statement import Entry, Prepaid, monthly_statement
from servicedesk_contracts.messages import AgreementTerms, PlanSelection, StatementIssuedData
from servicedesk_contracts.plans import resolve
from servicedesk_stack.demo import provider_r_medium

AGREEMENT = uuid.UUID("00000000-0000-4000-8000-00000000000a")
NOVEMBER = "2026-11"


def terms(plan: str, **selection: Any) -> AgreementTerms:
    billing = selection.pop("billing", {})
    return resolve(
        PlanSelection.model_validate(
            {
                "customer": "Acme",
                "plan": plan,
                "billing": {"hourly_rate_cents": 9500, **billing},
                **selection,
            }
        )
    )


def entry(ticket: str, minutes: int, **fields: Any) -> Entry:
    values: dict[str, Any] = {"billable": True, "worked_on": date(2026, 11, 10), "month": NOVEMBER}
    values.update(fields)
    ticket_id = str(uuid.uuid5(AGREEMENT, ticket))
    return Entry(str(uuid.uuid4()), ticket_id, f"SD-{ticket}", minutes, **values)


def statement(
    agreement_terms: AgreementTerms, entries: list[Entry], **kwargs: Any
) -> dict[str, Any]:
    issued = monthly_statement(AGREEMENT, NOVEMBER, agreement_terms, entries, **kwargs)
    StatementIssuedData.model_validate(issued)  # what is issued fits the contract
    return issued


def test_monthly_invoice_with_plan_fee_extensions_and_the_15_minute_minimum() -> None:
    # R Medium EUR 545 + Premium EUR 795 + 2 integrations x EUR 295; EUR 95/h, VAT 21 %.
    r = terms(
        "R Medium",
        extensions=["premium", "integration"],
        extension_quantities={"integration": 2},
        billing={"vat_rate": "0.21"},
    )
    issued = statement(
        r,
        [
            entry("000001", 10),
            entry("000002", 30),
            entry("000002", 20),
            entry("000003", 30, work_type="own_defect"),
            entry("000004", 20, billable=False),
        ],
    )
    assert [f["amount_cents"] for f in issued["fee_lines"]] == [54500, 2 * 29500, 79500]
    by_reference = {line["reference"]: line for line in issued["lines"]}
    assert (
        by_reference["SD-000001"]["minutes_billed"],
        by_reference["SD-000001"]["amount_cents"],
    ) == (15, 2375)
    assert (
        by_reference["SD-000002"]["minutes_billed"],
        by_reference["SD-000002"]["amount_cents"],
    ) == (50, 7917)
    assert by_reference["SD-000003"]["amount_cents"] == 0
    assert by_reference["SD-000003"]["rounding"] == "our own defect: never billed"
    assert by_reference["SD-000004"]["rounding"] == "logged as not billable"
    assert issued["subtotal_cents"] == 193000 + 2375 + 7917 == 203292
    assert issued["vat_cents"] == 42691  # 21 % of 203292 = 42691.32
    assert issued["total_cents"] == 245983


def test_billed_per_use_bills_every_started_request_at_least_15_minutes() -> None:
    v = terms("V Billed", billing={"model": "billed_per_use", "hourly_rate_cents": 11000})
    issued = statement(v, [entry("000010", 5), entry("000011", 40)])
    assert [line["amount_cents"] for line in issued["lines"]] == [2750, 7333]
    assert issued["fee_lines"] == []
    assert (issued["subtotal_cents"], issued["vat_cents"], issued["total_cents"]) == (
        10083,
        2521,
        12604,
    )


def test_retainer_hours_included_and_overage_billed() -> None:
    # 20 h a month bought for EUR 1,500; 1,230 minutes used: 30 minutes overage at EUR 95/h.
    retainer = terms(
        "E SLA",
        billing={
            "model": "retainer",
            "monthly_fee_cents": 150000,
            "included_minutes_per_month": 1200,
        },
    )
    issued = statement(retainer, [entry("000020", 1000), entry("000021", 230)])
    assert issued["retainer"] == {
        "included_minutes": 1200,
        "used_minutes": 1230,
        "overage_minutes": 30,
    }
    assert [f["amount_cents"] for f in issued["fee_lines"]] == [150000, 4750]
    assert all(line["amount_cents"] == 0 for line in issued["lines"])
    assert (issued["subtotal_cents"], issued["vat_cents"]) == (154750, 38688)  # 38687.5 up


def test_prepaid_bundle_carries_its_balance_and_bills_what_goes_beyond() -> None:
    bundle = terms("E SLA", billing={"model": "prepaid_bundle"})
    november = statement(
        bundle,
        [entry("000030", 10), entry("000031", 700)],
        prepaid=Prepaid(balance_before=600, topped_up=1200),
    )
    assert november["prepaid"] == {
        "balance_before_minutes": 600,
        "topped_up_minutes": 1200,
        "used_minutes": 715,
        "balance_after_minutes": 1085,
    }
    assert november["total_cents"] == 0
    december = statement(bundle, [entry("000032", 1200)], prepaid=Prepaid(balance_before=1085))
    assert december["prepaid"]["balance_after_minutes"] == 0
    assert december["fee_lines"] == [
        {"description": "115 min beyond the prepaid balance at 95.00 EUR/h", "amount_cents": 18208}
    ]


def test_hyper_care_is_free_for_three_months_from_the_first_training_day() -> None:
    v = terms(
        "V Hyper care",
        hyper_care_from="2026-09-01",
        billing={"model": "billed_per_use", "hourly_rate_cents": 11000},
    )
    assert v.billing.hyper_care_until == date(2026, 11, 30)
    issued = statement(
        v,
        [
            entry("000040", 60, worked_on=date(2026, 11, 30)),
            entry("000041", 60, worked_on=date(2026, 12, 1)),
        ],
    )
    free, billed = issued["lines"]
    assert (free["rounding"], free["amount_cents"]) == ("hyper care: free", 0)
    assert billed["amount_cents"] == 11000


def test_time_a_plan_covers_is_not_billed_again() -> None:
    covered = terms("R Small", billing={"covered_categories": ["question"]})
    issued = statement(
        covered,
        [entry("000050", 30, category="Question"), entry("000051", 30, category="change request")],
    )
    assert [line["amount_cents"] for line in issued["lines"]] == [0, 4750]
    assert issued["lines"][0]["rounding"] == "covered by the plan"


def test_late_entries_for_a_closed_month_are_adjustment_lines_under_the_same_rules() -> None:
    r = AgreementTerms.model_validate(provider_r_medium())
    issued = statement(
        r,
        [entry("000060", 60)],
        adjustments=[entry("000061", 5, month="2026-10", worked_on=date(2026, 10, 30))],
    )
    (adjustment,) = issued["adjustment_lines"]
    assert (adjustment["month"], adjustment["minutes_billed"], adjustment["amount_cents"]) == (
        "2026-10",
        15,
        2375,
    )
    assert issued["subtotal_cents"] == 54500 + 9500 + 2375


def test_the_same_inputs_give_the_same_statement() -> None:
    r = AgreementTerms.model_validate(provider_r_medium())
    entries = [entry("000070", 10), entry("000071", 95)]
    assert statement(r, entries) == statement(r, list(reversed(entries)))


def test_a_plan_change_and_a_cancellation_mid_month_are_charged_by_the_day() -> None:
    from servicedesk_billing.domain import Agreement

    small, medium = terms("R Small"), terms("R Medium")
    agreement = Agreement(
        agreement_id=AGREEMENT,
        terms_json=small.model_dump(mode="json"),
        effective_from="2026-10-20",
    )
    agreement.change_terms(medium.model_dump(mode="json"), "2026-11-15")
    agreement.cancel("2026-11-25", "moving to another provider")
    periods = agreement.fee_periods(NOVEMBER)
    assert [(p.first.day, p.last.day, p.terms.plan) for p in periods] == [
        (1, 14, "R Small"),
        (15, 25, "R Medium"),
    ]
    issued = statement(medium, [], fee_periods=periods)
    assert issued["fee_lines"] == [
        {"description": "R Small, 01-14 Nov 2026 (14/30 days)", "amount_cents": 9100},
        {"description": "R Medium, 15-25 Nov 2026 (11/30 days)", "amount_cents": 19983},
    ]  # 19500 x 14/30 = 9100; 54500 x 11/30 = 19983.33
    assert agreement.fee_periods("2026-12") == []  # nothing after the cancellation
    october = agreement.fee_periods("2026-10")
    assert [(p.first.day, p.last.day) for p in october] == [(20, 31)]
