"""The plan catalogue: the support plans of DOMAIN.md as data, and how an agreement (a plan,
its extensions and the customer's own overrides) resolves into full `AgreementTerms`.

The catalogue is part of the published language: a CRM registers agreements by plan name,
the gateway checks them, billing resolves them. Choices where DOMAIN.md is silent are
written next to the plan they concern.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date, timedelta
from typing import Any

from pydantic import Field, ValidationError

from servicedesk_contracts.envelope import Data
from servicedesk_contracts.messages import (
    PAUSED_BY_DEFAULT,
    AgreementTerms,
    BillingTerms,
    Calendar,
    MatrixName,
    PlanSelection,
    Target,
    TicketStatus,
    Trial,
)

WORKDAYS = ("mon", "tue", "wed", "thu", "fri")
ALL_DAYS = (*WORKDAYS, "sat", "sun")


def _hours(days: tuple[str, ...], opens: str, closes: str) -> dict[str, Any]:
    return {day: [{"opens": opens, "closes": closes}] for day in days}


def _targets(**by_priority: Any) -> dict[str, Target]:
    return {p: Target.model_validate(t) for p, t in by_priority.items()}


class Extension(Data):
    name: str
    monthly_fee_cents: int
    per_unit: bool = False
    """Charged per integration (quantity given in the agreement)."""
    category_calendars: dict[str, Calendar] = Field(default_factory=dict)
    category_targets: dict[str, dict[str, Target]] = Field(default_factory=dict)


class Plan(Data):
    name: str
    provider: str
    monthly_fee_cents: int = 0
    calendar: Calendar
    matrix: MatrixName
    targets: dict[str, Target]
    customer_may_override_priority: bool = False
    paused_statuses: list[TicketStatus] = Field(default_factory=lambda: list(PAUSED_BY_DEFAULT))
    warning_thresholds: list[float] = Field(default_factory=lambda: [0.75, 0.9])
    extensions: dict[str, Extension] = Field(default_factory=dict)
    trial_plan: str | None = None
    """The plan whose terms a trial customer gets during the evaluation period."""


# Provider R: working days 09:00-17:00 (Dutch holidays), PrioritySupport targets; the
# Premium extension adds incident reporting 06:00-23:00 (we read it as every day, as its
# emergency number suggests) with Premium targets for incidents.
_R_CALENDAR = Calendar.model_validate(
    {
        "timezone": "Europe/Amsterdam",
        "weekly_hours": _hours(WORKDAYS, "09:00", "17:00"),
        "holidays_country": "NL",
    }
)
_R_TARGETS = _targets(
    A={"response_minutes": 120, "resolution_working_days": 1},
    B={"response_minutes": 240, "resolution_working_days": 2},
    C={"response_working_days": 2},
    D={"response_working_days": 5},
)
_R_PREMIUM = Extension(
    name="premium",
    monthly_fee_cents=79500,
    category_calendars={
        "incident": Calendar.model_validate(
            {"timezone": "Europe/Amsterdam", "weekly_hours": _hours(ALL_DAYS, "06:00", "23:00")}
        )
    },
    category_targets={
        "incident": _targets(
            A={"response_minutes": 60, "resolution_working_days": 1},
            B={"response_minutes": 120, "resolution_working_days": 1},
            C={"response_working_days": 1},
            D={"response_working_days": 3},
        )
    },
)
_R_EXTENSIONS = {
    "premium": _R_PREMIUM,
    "integration": Extension(name="integration", monthly_fee_cents=29500, per_unit=True),
    "migration": Extension(name="migration", monthly_fee_cents=42500),
}


def _r_plan(name: str, fee: int) -> Plan:
    return Plan(
        name=name,
        provider="R",
        monthly_fee_cents=fee,
        calendar=_R_CALENDAR,
        matrix="R-ABCD",
        targets=_R_TARGETS,
        extensions=_R_EXTENSIONS,
    )


# Provider Z: Standard Mon-Fri 08:00-17:00 local time, Premium 24x7x365; the customer may
# override the assigned priority; trial customers get Premium during the evaluation.
_Z_STANDARD = Plan(
    name="Z Standard",
    provider="Z",
    calendar=Calendar.model_validate(
        {"timezone": "Europe/Berlin", "weekly_hours": _hours(WORKDAYS, "08:00", "17:00")}
    ),
    matrix="Z-P1P4",
    customer_may_override_priority=True,
    targets=_targets(
        P1={"response_minutes": 60},
        P2={"response_minutes": 180},
        P3={"response_minutes": 480},
        P4={"response_minutes": 1440},
    ),
    trial_plan="Z Premium",
)
_Z_PREMIUM = Plan(
    name="Z Premium",
    provider="Z",
    calendar=Calendar(timezone="Europe/Berlin", always_open=True),
    matrix="Z-P1P4",
    customer_may_override_priority=True,
    targets=_targets(
        P1={"response_minutes": 15},
        P2={"response_minutes": 60},
        P3={"response_minutes": 240},
        P4={"response_minutes": 480},
    ),
)

# Provider V (Denmark): answered within 8 working hours, Mon-Thu 08:30-16:00, Fri
# 08:30-15:30, closed on Danish holidays, 24 Dec, 31 Dec and 5 June. V publishes no matrix:
# its plans use the impact x urgency one.
_V_CALENDAR = Calendar.model_validate(
    {
        "timezone": "Europe/Copenhagen",
        "weekly_hours": {
            **_hours(("mon", "tue", "wed", "thu"), "08:30", "16:00"),
            **_hours(("fri",), "08:30", "15:30"),
        },
        "holidays_country": "DK",
        "closed_every_year": ["12-24", "12-31", "06-05"],
    }
)


def _v_plan(name: str) -> Plan:
    return Plan(
        name=name,
        provider="V",
        calendar=_V_CALENDAR,
        matrix="Z-P1P4",
        targets=_targets(**{p: {"response_minutes": 8 * 60} for p in ("P1", "P2", "P3", "P4")}),
    )


# Provider E: answers within one business day. Its hours are not published: we take Dutch
# working days 09:00-17:00, and the impact x urgency matrix.
_E_STANDARD = Plan(
    name="E SLA",
    provider="E",
    calendar=_R_CALENDAR,
    matrix="Z-P1P4",
    targets=_targets(**{p: {"response_working_days": 1} for p in ("P1", "P2", "P3", "P4")}),
)

PLANS: dict[str, Plan] = {
    plan.name: plan
    for plan in (
        _r_plan("R Small", 19500),
        _r_plan("R Medium", 54500),
        _r_plan("R Large", 99500),
        _Z_STANDARD,
        _Z_PREMIUM,
        _v_plan("V Hyper care"),
        _v_plan("V Extended"),
        _v_plan("V Basic"),
        _v_plan("V Billed"),
        _E_STANDARD,
    )
}


class PlanRefused(ValueError):
    """A selection that does not resolve into valid terms. `field` names the selection's
    field at fault, `reason` is a short label for dead letters."""

    reason = "invalid_plan_selection"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class UnknownPlan(PlanRefused):
    """The plan, an extension or a trial the selection names does not exist."""

    reason = "unknown_plan"


def resolve(selection: PlanSelection) -> AgreementTerms:
    """The full terms of an agreement. Raises `UnknownPlan` naming what does not exist, and
    `PlanRefused` when the plan with the customer's overrides is not a valid agreement (a
    target for a priority the plan's matrix never gives, a subdivision its country lacks):
    what resolves here is what billing will publish, so it must never fail later."""
    plan = PLANS.get(selection.plan)
    if plan is None:
        raise UnknownPlan("plan", f"unknown plan {selection.plan!r}; plans: {', '.join(PLANS)}")
    _check_extensions(plan, selection)
    try:
        return _resolve(plan, selection)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        # The selection's own field behind the problem (`calendar.holidays_subdivision` ->
        # `holidays_subdivision`), else the plan that brought the faulty part.
        field = next(
            (str(p) for p in reversed(problem["loc"]) if p in PlanSelection.model_fields), "plan"
        )
        raise PlanRefused(
            field, f"the plan's terms with it are invalid: {where}: {problem['msg']}"
        ) from error


def _check_extensions(plan: Plan, selection: PlanSelection) -> None:
    unknown = [e for e in selection.extensions if e not in plan.extensions]
    if unknown:
        raise UnknownPlan(
            "extensions",
            f"plan {plan.name!r} has no extension {unknown[0]!r}; "
            f"it offers: {', '.join(plan.extensions) or 'none'}",
        )
    unselected = [e for e in selection.extension_quantities if e not in selection.extensions]
    if unselected:
        raise PlanRefused(
            "extension_quantities",
            f"gives a quantity for {unselected[0]!r}, which is not among the extensions",
        )
    if selection.trial_until is not None and plan.trial_plan is None:
        raise UnknownPlan("trial_until", f"plan {plan.name!r} has no trial")
    if selection.holidays_subdivision and not (
        selection.holidays_country or plan.calendar.holidays_country
    ):
        raise PlanRefused(
            "holidays_subdivision",
            f"needs a holidays_country: plan {plan.name!r} observes no public holidays",
        )


def _resolve(plan: Plan, selection: PlanSelection) -> AgreementTerms:
    category_calendars: dict[str, Calendar] = {}
    category_targets: dict[str, dict[str, Target]] = {}
    for name in selection.extensions:
        extension = plan.extensions[name]
        category_calendars.update(extension.category_calendars)
        category_targets.update(extension.category_targets)
    trial = None
    if selection.trial_until is not None and plan.trial_plan is not None:
        trial_plan = PLANS[plan.trial_plan]
        trial = Trial(
            until=selection.trial_until,
            calendar=_localised(trial_plan.calendar, selection),
            targets=trial_plan.targets,
        )
    return AgreementTerms(
        customer=selection.customer,
        plan=plan.name,
        extensions=selection.extensions,
        calendar=_localised(plan.calendar, selection),
        category_calendars={c: _localised(cal, selection) for c, cal in category_calendars.items()},
        matrix=plan.matrix,
        targets={**plan.targets, **selection.targets},
        category_targets=category_targets,
        trial=trial,
        customer_may_override_priority=plan.customer_may_override_priority,
        paused_statuses=plan.paused_statuses,
        warning_thresholds=plan.warning_thresholds,
        billing=_billing(plan, selection),
        channels=selection.channels,
        mail=selection.mail,
    )


def _billing(plan: Plan, selection: PlanSelection) -> BillingTerms:
    """The agreement's billing terms with the plan's and extensions' fees and hyper care."""
    fees = {
        name: plan.extensions[name].monthly_fee_cents
        * (selection.extension_quantities.get(name, 1) if plan.extensions[name].per_unit else 1)
        for name in selection.extensions
    }
    changes: dict[str, Any] = {"extension_fees": fees}
    if not selection.billing.monthly_fee_cents:
        changes["monthly_fee_cents"] = plan.monthly_fee_cents
    if selection.hyper_care_from is not None:
        changes["hyper_care_until"] = _add_months(
            selection.hyper_care_from, selection.hyper_care_months
        ) - timedelta(days=1)
    return selection.billing.model_copy(update=changes)


def _add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    last = monthrange(year, month)[1]
    return date(year, month, min(day.day, last))


def _localised(calendar: Calendar, selection: PlanSelection) -> Calendar:
    changes: dict[str, Any] = {}
    if selection.timezone:
        changes["timezone"] = selection.timezone
    if selection.holidays_country:
        changes["holidays_country"] = selection.holidays_country
        changes["holidays_subdivision"] = selection.holidays_subdivision
    elif selection.holidays_subdivision and calendar.holidays_country:
        changes["holidays_subdivision"] = selection.holidays_subdivision  # of the plan's country
    if selection.closed_dates:
        changes["closed_dates"] = [*calendar.closed_dates, *selection.closed_dates]
    return Calendar.model_validate({**calendar.model_dump(), **changes})
