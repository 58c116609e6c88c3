"""Billing's stored events -> agreement and billing messages."""

from __future__ import annotations

from typing import Any

from servicedesk_billing.domain import Agreement, MonthLedger
from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_contracts.envelope import STORED
from servicedesk_runtime.relay import envelope_of

PRODUCER = "billing"


def translate(event: Any) -> tuple[str, Message] | None:
    envelope = envelope_of(event, PRODUCER)
    if isinstance(event, Agreement.Registered | Agreement.TermsChanged):
        terms = m.AgreementTerms.model_validate(event.terms_json, context=STORED)
        return topics.AGREEMENTS, m.AgreementRegistered(**envelope, data=terms)
    if isinstance(event, MonthLedger.StatementIssued):
        data = m.StatementIssuedData.model_validate(event.statement, context=STORED)
        # Keyed by the agreement, so an agreement's messages stay in order.
        envelope["subject_id"] = data.agreement_id
        return topics.BILLING, m.StatementIssued(**envelope, data=data)
    return None
