"""An agreement the contracts accept is always one the sla-timer can run: whatever terms
pass `AgreementTerms` validation give every ticket, of every priority its matrix can assign,
in any category and at any time, a response clock with a deadline. (Once, an agreement with
`holidays_country: "XX"` was accepted and every ticket on it got no clock at all.)"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from servicedesk_contracts.messages import MATRIX_PRIORITIES, AgreementTerms
from servicedesk_sla_timer.application import clock_terms, target_budgets
from servicedesk_sla_timer.business_time import WEEKDAYS
from servicedesk_sla_timer.domain import KINDS, RESPONSE, SlaClock

ZONES = [
    "UTC",
    "Europe/Amsterdam",
    "America/New_York",
    "Australia/Lord_Howe",  # a half-hour daylight-saving shift
    "Asia/Kathmandu",
    "Pacific/Chatham",
]
COUNTRIES = [None, "NL", "DK", "dk", "DE", "US"]
SUBDIVISIONS = {"DE": ["BY", "by"], "US": ["CA"], "NL": ["Zuid"]}


def sometimes(draw: st.DrawFn, wrong: Any, right: Any) -> Any:
    """Mostly `right`; now and then something the contract should refuse. (Not on 0 or
    the bounds: hypothesis draws those far more often.)"""
    return wrong if draw(st.integers(0, 29)) == 13 else right


@st.composite
def intervals(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One or two opening intervals on quarter hours, ordered (rarely not)."""
    count = draw(st.integers(1, 2))
    quarters = sorted(draw(st.lists(st.integers(0, 96), min_size=2 * count, max_size=2 * count)))
    quarters = sometimes(draw, list(reversed(quarters)), quarters)
    as_time = [time((q // 4) % 24, (q % 4) * 15) for q in quarters]
    return [
        {"opens": as_time[i].isoformat(), "closes": as_time[i + 1].isoformat()}
        for i in range(0, len(as_time), 2)
    ]


@st.composite
def calendars(draw: st.DrawFn) -> dict[str, Any]:
    zone = sometimes(draw, draw(st.sampled_from(["Mars/Olympus", "europe/amsterdam"])), None)
    zone = zone or draw(st.sampled_from(ZONES))
    if draw(st.integers(0, 5)) == 0:
        return {"timezone": zone, "always_open": True}
    days = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True))
    country = sometimes(draw, "XX", draw(st.sampled_from(COUNTRIES)))
    subdivisions = SUBDIVISIONS.get(str(country).upper(), [])
    subdivision = draw(st.sampled_from([None, *subdivisions]))
    closed_every_year = sometimes(
        draw,
        [date(2024, 1, 1) + timedelta(days=n) for n in range(366)],
        draw(st.lists(st.dates(date(2024, 1, 1), date(2024, 12, 31)), max_size=8)),
    )
    return {
        "timezone": zone,
        "weekly_hours": {day: draw(intervals()) for day in days},
        "holidays_country": country,
        "holidays_subdivision": sometimes(draw, "ZZ", subdivision),
        "closed_dates": [
            d.isoformat()
            for d in draw(st.lists(st.dates(date(2024, 1, 1), date(2031, 12, 31)), max_size=20))
        ],
        "closed_every_year": [d.strftime("%m-%d") for d in closed_every_year],
    }


@st.composite
def targets(draw: st.DrawFn, matrix: str, partial: bool = False) -> dict[str, Any]:
    """A target per priority of the matrix (category targets: some of them), rarely one
    too few or one for a priority the matrix never gives."""
    priorities = sorted(MATRIX_PRIORITIES[matrix])
    if partial:
        priorities = draw(st.lists(st.sampled_from(priorities), unique=True))
    priorities = sometimes(draw, [*priorities[1:], "P5", "a"], priorities)
    result = {}
    for priority in priorities:
        if draw(st.booleans()):
            target: dict[str, Any] = {"response_minutes": draw(st.floats(0.05, 20_000))}
        else:
            target = {"response_working_days": draw(st.integers(1, 60))}
        if draw(st.booleans()):
            target["resolution_working_days"] = draw(st.integers(1, 120))
        result[priority] = target
    return result


@st.composite
def agreement_documents(draw: st.DrawFn) -> dict[str, Any]:
    matrix = draw(st.sampled_from(sorted(MATRIX_PRIORITIES)))
    document: dict[str, Any] = {
        "customer": "C",
        "plan": "P",
        "calendar": draw(calendars()),
        "matrix": matrix,
        "targets": draw(targets(matrix)),
        "billing": {"hourly_rate_cents": 1},
    }
    if draw(st.booleans()):
        document["category_calendars"] = {"incident": draw(calendars())}
        document["category_targets"] = {"incident": draw(targets(matrix, partial=True))}
    if draw(st.integers(0, 3)) == 0:
        document["trial"] = {
            "until": draw(st.dates(date(2024, 1, 1), date(2031, 12, 31))).isoformat(),
            "calendar": draw(calendars()),
            "targets": draw(targets(matrix)),
        }
    return document


arrivals = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2031, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(agreement_documents(), arrivals, st.sampled_from(["incident", "question"]))
def test_every_accepted_agreement_gives_every_priority_a_deadline(
    document: dict[str, Any], opened: datetime, category: str
) -> None:
    try:
        terms = AgreementTerms.model_validate(document)
    except ValidationError:
        return  # refused at the door: the gateway answers 422, Kafka dead-letters it
    calendar, category_targets = clock_terms(terms, category, opened)
    for kind in KINDS:
        budgets = target_budgets(calendar, category_targets, kind, opened)
        for priority in MATRIX_PRIORITIES[terms.matrix]:
            clock = SlaClock(ticket_id=uuid.uuid4(), kind=kind)
            clock.note_triage("SD-000001", priority, opened, uuid.uuid4(), category)
            clock.start(
                calendar, budgets.minutes, [], terms.warning_thresholds, budgets.due_at_opening
            )
            if kind == RESPONSE:  # every target has a response; resolution is optional
                assert clock.started, f"{priority}: no response clock"
            if clock.started:
                assert clock.due_at is not None
                assert clock.due_at >= opened


def test_the_generated_agreements_are_often_accepted() -> None:
    """The property above says something only if many generated agreements pass."""
    accepted = 0

    @settings(max_examples=200, deadline=None, database=None)
    @given(agreement_documents())
    def count(document: dict[str, Any]) -> None:
        nonlocal accepted
        try:
            AgreementTerms.model_validate(document)
        except ValidationError:
            return
        accepted += 1

    count()
    assert accepted >= 20
