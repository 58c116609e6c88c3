"""What was accepted and stored once stays readable when acceptance rules get stricter.

Stores keep agreement terms and calendars as the contract had them; the relay publishes
stored events again for every new broker. A rule added later (a holiday country that must
be known, targets only for the matrix's priorities, an e-mail address without a trailing
newline) must refuse new input, never the system's own history.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from servicedesk_contracts import messages as m
from servicedesk_contracts.envelope import STORED


def accepted_before_the_stricter_rules() -> dict[str, Any]:
    """Terms the contract accepted until Nov 2026: an unknown holiday country, a calendar
    closed for good by its closed dates, a target for a priority the matrix never gives."""
    return {
        "customer": "Old customer",
        "plan": "Old plan",
        "calendar": {
            "timezone": "Europe/Copenhagen",
            "weekly_hours": {"mon": [{"opens": "09:00", "closes": "17:00"}]},
            "holidays_country": "XX",
            "closed_every_year": [],
        },
        "matrix": "Z-P1P4",
        "targets": {p: {"response_minutes": 60} for p in ("P1", "P2", "P3", "P4", "P5")},
        "billing": {"hourly_rate_cents": 9500},
    }


def test_new_input_meets_the_stricter_rules() -> None:
    with pytest.raises(ValidationError) as refused:
        m.AgreementTerms.model_validate(accepted_before_the_stricter_rules())
    fields = {".".join(str(p) for p in error["loc"]) for error in refused.value.errors()}
    assert {"calendar.holidays_country", "targets"} <= fields


def test_stored_terms_are_read_as_they_were_accepted() -> None:
    terms = m.AgreementTerms.model_validate(accepted_before_the_stricter_rules(), context=STORED)
    assert terms.calendar.holidays_country == "XX"
    assert set(terms.targets) == {"P1", "P2", "P3", "P4", "P5"}


def test_rules_the_code_relies_on_still_hold_for_stored_terms() -> None:
    document = accepted_before_the_stricter_rules()
    del document["targets"]["P4"]  # a priority of the matrix without a target: never valid
    with pytest.raises(ValidationError, match="lack priorities"):
        m.AgreementTerms.model_validate(document, context=STORED)
