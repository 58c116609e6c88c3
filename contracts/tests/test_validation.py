"""What the contracts refuse (or normalise) so that nothing accepted breaks later: calendars
the sla-timer could not run, targets no ticket can get, envelopes without an identity or a
time, header-breaking text, strings that are not Unicode."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from servicedesk_contracts import InvalidMessage, decode
from servicedesk_contracts import messages as m
from servicedesk_contracts.plans import PlanRefused, UnknownPlan, resolve

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / f"{name}.v1.json").read_text())
    return document


def refusal(document: dict[str, Any]) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as caught:
        decode(json.dumps(document).encode())
    assert caught.value.reason == "validation_failed"
    return caught.value


def with_calendar(**changes: Any) -> dict[str, Any]:
    document = example("RegisterAgreement")
    document["data"]["calendar"].update(changes)
    return document


# --- calendars -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"holidays_country": "XX"}, "data.calendar.holidays_country", "'XX' is not a country"),
        ({"timezone": "Mars/Olympus"}, "data.calendar.timezone", "unknown IANA time zone"),
        (
            {"holidays_country": "DE", "holidays_subdivision": "ZZ"},
            "data.calendar.holidays_subdivision",
            "DE has no subdivision 'ZZ'; it has: BB, BE",
        ),
        (
            {"holidays_country": None, "holidays_subdivision": "BY"},
            "data.calendar.holidays_subdivision",
            "needs a holidays_country",
        ),
        (
            {"weekly_hours": {"mon": [{"opens": "09:00+02:00", "closes": "17:00"}]}},
            "data.calendar.weekly_hours.mon.0.opens",
            "local to the calendar's timezone",
        ),
        (
            {"weekly_hours": {"mon": [{"opens": "17:00", "closes": "09:00"}]}},
            "data.calendar.weekly_hours.mon.0",
            "closes (09:00:00) before it opens",
        ),
        (
            {
                "weekly_hours": {
                    "mon": [
                        {"opens": "09:00", "closes": "13:00"},
                        {"opens": "12:00", "closes": "17:00"},
                    ]
                }
            },
            "data.calendar.weekly_hours",
            "mon: opening intervals overlap",
        ),
        ({"weekly_hours": {}}, "data.calendar.weekly_hours", "needs weekly_hours"),
        ({"closed_every_year": ["02-30"]}, "data.calendar.closed_every_year.0", "day is out"),
    ],
)
def test_a_calendar_the_sla_timer_could_not_run_is_refused_naming_the_field(
    changes: dict[str, Any], field: str, says: str
) -> None:
    detail = refusal(with_calendar(**changes)).detail
    assert f"{field}:" in detail
    assert says in detail


def test_a_calendar_that_never_opens_is_refused() -> None:
    every_day = [f"{mo:02d}-{d:02d}" for mo in range(1, 13) for d in range(1, 32)]
    valid_every_day = [md for md in every_day if _exists(md)]
    all_but_leap_day = [md for md in valid_every_day if md != "02-29"]
    for closed in (valid_every_day, all_but_leap_day):  # 29 Feb 2024 is a Thursday
        detail = refusal(with_calendar(closed_every_year=closed)).detail
        assert "data.calendar: " in detail
        assert "must open at least once in any 366 days" in detail


def test_a_year_of_closed_dates_on_the_only_open_day_is_refused_wherever_it_lies() -> None:
    first = date(2041, 1, 7)  # a Monday, far from the reference years
    mondays = [(first + timedelta(weeks=n)).isoformat() for n in range(60)]
    detail = refusal(
        with_calendar(
            weekly_hours={"mon": [{"opens": "09:00", "closes": "17:00"}]}, closed_dates=mondays
        )
    ).detail
    assert "closed for" in detail
    assert "from 2041-01-01" in detail  # the day after Monday 31 Dec 2040, still open


def test_holiday_codes_are_read_in_any_case_and_kept_as_the_holidays_package_spells_them() -> None:
    message = decode(
        json.dumps(with_calendar(holidays_country="de", holidays_subdivision="by")).encode()
    )
    assert isinstance(message, m.RegisterAgreement)
    assert message.data.calendar.holidays_country == "DE"
    assert message.data.calendar.holidays_subdivision == "BY"
    lower_dk = with_calendar(holidays_country="dk")
    assert decode(json.dumps(lower_dk).encode()).data.calendar.holidays_country == "DK"  # type: ignore[attr-defined]


def _exists(month_day: str) -> bool:
    try:
        datetime.strptime(f"2024-{month_day}", "%Y-%m-%d")
    except ValueError:
        return False
    return True


# --- targets and the matrix ------------------------------------------------------------------


def test_targets_only_for_priorities_the_matrix_gives() -> None:
    document = example("RegisterAgreement")
    document["data"]["targets"]["a"] = {"response_minutes": 30}
    detail = refusal(document).detail
    assert "data.targets: " in detail
    assert "R-ABCD has no priority 'a'" in detail


def test_category_targets_only_for_priorities_the_matrix_gives() -> None:
    document = example("RegisterAgreement")
    document["data"]["category_targets"] = {"incident": {"P1": {"response_minutes": 30}}}
    detail = refusal(document).detail
    assert "data.category_targets: " in detail
    assert "incident: R-ABCD has no priority 'P1'" in detail


def test_a_trial_gives_a_target_to_every_priority_of_the_matrix() -> None:
    document = example("RegisterAgreement")
    document["data"]["trial"] = {
        "until": "2026-12-31",
        "calendar": {"always_open": True},
        "targets": {"A": {"response_minutes": 30}},
    }
    assert "data.trial: " in refusal(document).detail


# --- plan selections -------------------------------------------------------------------------


def plan_selection(**changes: Any) -> dict[str, Any]:
    return {"customer": "C", "plan": "R Medium", "billing": {"hourly_rate_cents": 1}, **changes}


def test_a_plan_selection_with_an_unknown_time_zone_is_refused_naming_it() -> None:
    document = example("RegisterPlanAgreement")
    document["data"]["timezone"] = "Mars/Olympus"
    assert "data.timezone: " in refusal(document).detail


@pytest.mark.parametrize(
    ("changes", "field", "kind"),
    [
        ({"plan": "R Gold"}, "plan", UnknownPlan),
        ({"extensions": ["turbo"]}, "extensions", UnknownPlan),
        ({"targets": {"P1": {"response_minutes": 5}}}, "targets", PlanRefused),
        ({"holidays_subdivision": "Oost"}, "holidays_subdivision", PlanRefused),
        ({"extension_quantities": {"integration": 2}}, "extension_quantities", PlanRefused),
    ],
)
def test_a_selection_that_does_not_resolve_into_valid_terms_is_refused_naming_the_field(
    changes: dict[str, Any], field: str, kind: type[PlanRefused]
) -> None:
    with pytest.raises(kind) as caught:
        resolve(m.PlanSelection.model_validate(plan_selection(**changes)))
    assert caught.value.field == field


def test_a_subdivision_of_the_plans_country_resolves_in_its_spelling() -> None:
    terms = resolve(m.PlanSelection.model_validate(plan_selection(holidays_subdivision="zuid")))
    assert (terms.calendar.holidays_country, terms.calendar.holidays_subdivision) == ("NL", "Zuid")


# --- the envelope --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("event_id", None, "event_id: Field required"),
        ("occurred_at", None, "occurred_at: Field required"),
        ("occurred_at", 1780578000, "not an RFC 3339 date-time with an offset"),
        ("occurred_at", "1780578000", "not an RFC 3339 date-time with an offset"),
        ("occurred_at", "2026-06-04T13:00:00", "occurred_at: "),
        ("occurred_at", "4 June 2026", "not an RFC 3339 date-time with an offset"),
    ],
)
def test_a_message_from_outside_must_carry_its_id_and_an_unambiguous_time(
    field: str, value: Any, says: str
) -> None:
    document = example("SubmitTicket")
    if value is None:
        del document[field]
    else:
        document[field] = value
    detail = refusal(document).detail
    assert detail.startswith(f"{field}: ")
    assert says in detail


def test_data_times_are_rfc_3339_strings_too() -> None:
    document = example("TicketOpened")
    document["data"]["received_at"] = 1780578000
    assert "data.received_at: " in refusal(document).detail


def test_the_same_bytes_sent_twice_are_the_same_message() -> None:
    raw = (EXAMPLES / "SubmitTicket.v1.json").read_bytes()
    assert decode(raw).event_id == decode(raw).event_id


def test_code_building_a_message_still_gets_a_fresh_id_and_time() -> None:
    before = datetime.now(UTC)
    one = m.IssueStatement.create(producer="t", subject_id=uuid.uuid4(), data={"month": "2026-10"})
    two = m.IssueStatement.create(producer="t", subject_id=uuid.uuid4(), data={"month": "2026-10"})
    assert one.event_id != two.event_id
    assert one.occurred_at >= before
    assert decode(one.to_json()) == one


# --- text that reaches mail headers ------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["anna@acme.example\n", "anna@acme.example\r\nBcc: x@y.z", "an na@acme.example", "a\x00@b.co"],
)
def test_an_address_with_whitespace_or_a_control_character_is_refused(address: str) -> None:
    document = example("SubmitTicket")
    document["data"]["reporter_email"] = address
    assert "data.reporter_email: " in refusal(document).detail


@pytest.mark.parametrize(
    ("field", "value", "kept"),
    [
        ("subject", "Invoices\r\nBcc: everyone@example.com", "Invoices Bcc: everyone@example.com"),
        ("subject", "Export \u2028 fails\u2029", "Export fails"),
        ("reporter_name", "Jens\x85Hansen", "Jens Hansen"),
        ("organisation", "Hygge\tSoftware\x00ApS\n", "Hygge Software ApS"),
        ("category", "incident\n", "incident"),
    ],
)
def test_single_line_fields_have_line_breaks_and_controls_normalised_to_a_space(
    field: str, value: str, kept: str
) -> None:
    document = example("SubmitTicket")
    document["data"][field] = value
    message = decode(json.dumps(document).encode())
    assert isinstance(message, m.SubmitTicket)
    assert getattr(message.data, field) == kept


def test_a_single_line_field_of_nothing_but_line_breaks_is_refused_as_empty() -> None:
    document = example("SubmitTicket")
    document["data"]["subject"] = "\r\n"
    assert "data.subject: " in refusal(document).detail


def test_bodies_keep_their_line_breaks() -> None:
    document = example("SubmitTicket")
    document["data"]["body"] = "line one\r\nline two"
    assert decode(json.dumps(document).encode()).data.body == "line one\r\nline two"  # type: ignore[attr-defined]


# --- Unicode ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("data", "reporter_email"), "data.reporter_email"),
        (("data", "body"), "data.body"),
        (("data", "requested_priority"), "data.requested_priority"),
        (("producer",), "producer"),
        (("data", "custom_fields", 0, "value"), "data.custom_fields.0"),
    ],
)
def test_a_lone_surrogate_in_any_string_is_refused_naming_the_field(
    path: tuple[Any, ...], field: str
) -> None:
    document = example("SubmitTicket")
    target: Any = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = "x\ud800y"
    raw = json.dumps(document).encode()  # ASCII JSON with the escape "\ud800"
    assert b"\\ud800" in raw
    with pytest.raises(InvalidMessage) as caught:
        decode(raw)
    assert caught.value.reason == "validation_failed"
    assert caught.value.detail.startswith(f"{field}")


def test_a_lone_surrogate_in_a_key_is_refused() -> None:
    document = example("RegisterAgreement")
    document["data"]["billing"]["extension_fees"] = {"inte\udc00gration": 1}
    assert "data.billing.extension_fees: " in refusal(document).detail


def test_every_golden_example_still_parses_with_the_stricter_contract() -> None:
    for path in EXAMPLES.glob("*.json"):
        decode(path.read_bytes())
