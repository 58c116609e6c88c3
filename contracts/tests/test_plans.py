"""The plan catalogue of DOMAIN.md, and how plan + extensions + overrides resolve."""

from __future__ import annotations

from datetime import date, time

import pytest

from servicedesk_contracts.messages import PlanSelection
from servicedesk_contracts.plans import PLANS, UnknownPlan, resolve

BILLING = {"hourly_rate_cents": 9500}


def select(plan: str, **overrides: object) -> PlanSelection:
    return PlanSelection.model_validate(
        {"customer": "Acme", "plan": plan, "billing": BILLING, **overrides}
    )


def test_every_plan_of_every_provider_resolves() -> None:
    assert {plan.provider for plan in PLANS.values()} == {"R", "Z", "V", "E"}
    for name in PLANS:
        assert resolve(select(name)).plan == name


def test_r_plans_share_priority_support_and_differ_in_price() -> None:
    fees = {name: PLANS[name].monthly_fee_cents for name in ("R Small", "R Medium", "R Large")}
    assert fees == {"R Small": 19500, "R Medium": 54500, "R Large": 99500}
    terms = resolve(select("R Medium"))
    assert terms.matrix == "R-ABCD"
    assert terms.targets["A"].response_minutes == 120
    assert terms.targets["C"].response_working_days == 2
    assert terms.targets["D"].response_working_days == 5
    assert terms.calendar.weekly_hours["mon"][0].opens == time(9)
    assert terms.category_calendars == {}


def test_r_premium_extension_gives_incidents_06_to_23_and_premium_targets() -> None:
    terms = resolve(select("R Small", extensions=["premium", "integration"]))
    incident_hours = terms.category_calendars["incident"].weekly_hours
    assert incident_hours["sun"][0].opens == time(6)
    assert incident_hours["sun"][0].closes == time(23)
    assert terms.category_targets["incident"]["A"].response_minutes == 60
    assert terms.category_targets["incident"]["D"].response_working_days == 3
    assert terms.targets["A"].response_minutes == 120  # other categories keep the plan's
    assert PLANS["R Small"].extensions["premium"].monthly_fee_cents == 79500


def test_z_standard_in_the_customers_time_zone_with_a_premium_trial() -> None:
    terms = resolve(select("Z Standard", timezone="America/New_York", trial_until="2026-12-31"))
    assert terms.calendar.timezone == "America/New_York"
    assert terms.customer_may_override_priority is True
    assert terms.trial is not None
    assert terms.trial.until == date(2026, 12, 31)
    assert terms.trial.calendar.always_open is True
    assert terms.trial.targets["P1"].response_minutes == 15  # Premium's, not Standard's 60
    assert terms.targets["P1"].response_minutes == 60


def test_the_danish_provider_closes_every_24_and_31_december_and_5_june() -> None:
    terms = resolve(select("V Billed", closed_dates=["2026-11-27"]))
    assert sorted(terms.calendar.closed_every_year) == ["06-05", "12-24", "12-31"]
    assert terms.calendar.closed_dates == [date(2026, 11, 27)]
    assert terms.targets["P3"].response_minutes == 8 * 60


def test_an_agreement_may_override_targets() -> None:
    terms = resolve(select("E SLA", targets={"P1": {"response_minutes": 30}}))
    assert terms.targets["P1"].response_minutes == 30
    assert terms.targets["P2"].response_working_days == 1


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (select("R Gold"), "unknown plan 'R Gold'"),
        (
            select("Z Premium", extensions=["premium"]),
            "plan 'Z Premium' has no extension 'premium'",
        ),
        (select("R Medium", trial_until="2026-12-31"), "plan 'R Medium' has no trial"),
    ],
)
def test_what_does_not_exist_is_named(selection: PlanSelection, message: str) -> None:
    with pytest.raises(UnknownPlan, match=message):
        resolve(selection)
