"""Both priority matrices of DOMAIN.md, cell by cell, and the rules around them."""

from __future__ import annotations

import pytest

from servicedesk_contracts.matrices import R_MATRIX, Z_MATRIX
from servicedesk_triage.domain import decide

R_TABLE = {
    ("one user", "low"): "D",
    ("one user", "medium"): "C",
    ("one user", "high"): "B",
    ("multiple users", "low"): "D",
    ("multiple users", "medium"): "C",
    ("multiple users", "high"): "A",
    ("whole organisation", "low"): "C",
    ("whole organisation", "medium"): "B",
    ("whole organisation", "high"): "A",
}
Z_TABLE = {  # (impact, urgency) -> priority; DOMAIN.md lists urgency rows x impact columns
    ("high", "high"): "P1",
    ("medium", "high"): "P2",
    ("low", "high"): "P3",
    ("high", "medium"): "P2",
    ("medium", "medium"): "P3",
    ("low", "medium"): "P4",
    ("high", "low"): "P3",
    ("medium", "low"): "P4",
    ("low", "low"): "P4",
}


@pytest.mark.parametrize(("inputs", "expected"), R_TABLE.items())
def test_provider_r_incidents_follow_the_matrix(inputs: tuple[str, str], expected: str) -> None:
    impact, criticality = inputs
    assert decide(R_MATRIX, "Incident", impact, criticality, None, False).priority == expected


@pytest.mark.parametrize("category", ["Question", "Change request"])
def test_provider_r_questions_and_change_requests_are_always_d(category: str) -> None:
    decision = decide(R_MATRIX, category, "whole organisation", "high", None, False)
    assert decision.priority == "D"
    assert "always gets D" in decision.reason


@pytest.mark.parametrize(("inputs", "expected"), Z_TABLE.items())
def test_provider_z_follows_impact_and_urgency(inputs: tuple[str, str], expected: str) -> None:
    impact, urgency = inputs
    assert decide(Z_MATRIX, "incident", impact, urgency, None, False).priority == expected


def test_z_customer_override_is_honoured_and_traceable() -> None:
    decision = decide(Z_MATRIX, "incident", "low", "low", "P1", customer_may_override=True)
    assert decision.priority == "P1"
    assert "customer override of P4" in decision.reason


def test_a_requested_priority_without_override_right_is_noted_not_granted() -> None:
    decision = decide(R_MATRIX, "incident", "one user", "low", "A", customer_may_override=False)
    assert decision.priority == "D"
    assert "requested A not granted" in decision.reason


def test_inputs_outside_the_matrix_get_the_lowest_priority_with_the_reason() -> None:
    decision = decide(Z_MATRIX, "incident", "catastrophic", "high", None, False)
    assert decision.priority == "P4"
    assert "'catastrophic'" in decision.reason
