"""Agreements, monthly ledgers of time entries, and statements (pure: no I/O).

Money is integer cents, computed with Decimal and rounded half up once per line and once
for VAT; never floats.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate, event

from servicedesk_contracts.messages import AgreementTerms


class Agreement(Aggregate):
    # Event classes that @event creates, declared for type checkers.
    Registered: ClassVar[type[Any]]
    TermsChanged: ClassVar[type[Any]]

    @staticmethod
    def create_id(agreement_id: uuid.UUID, **_: Any) -> uuid.UUID:
        return agreement_id

    @event("Registered")
    def __init__(self, agreement_id: uuid.UUID, terms_json: dict[str, Any]) -> None:
        self.terms_json = terms_json

    @event("TermsChanged")
    def change_terms(self, terms_json: dict[str, Any]) -> None:
        self.terms_json = terms_json

    @property
    def terms(self) -> AgreementTerms:
        return AgreementTerms.model_validate(self.terms_json)


@dataclass(frozen=True)
class Entry:
    entry_id: str
    ticket_id: str
    reference: str
    minutes: int
    billable: bool


class MonthLedger(Aggregate):
    """The time entries of one agreement in one month, and that month's statement."""

    # Event classes that @event creates, declared for type checkers.
    StatementIssued: ClassVar[type[Any]]

    @staticmethod
    def create_id(agreement_id: uuid.UUID, month: str) -> uuid.UUID:
        return uuid.uuid5(agreement_id, f"ledger:{month}")

    @event("Opened")
    def __init__(self, agreement_id: uuid.UUID, month: str) -> None:
        self.agreement_id = agreement_id
        self.month = month
        self.entries: dict[str, dict[str, Any]] = {}
        self.statement: dict[str, Any] | None = None

    @event("EntryRecorded")
    def record_entry(self, entry: dict[str, Any]) -> None:
        self.entries[str(entry["entry_id"])] = entry

    @event("StatementIssued")
    def issue(self, statement: dict[str, Any]) -> None:
        self.statement = statement

    def billable_entries(self) -> list[Entry]:
        return [
            Entry(
                entry_id=str(e["entry_id"]),
                ticket_id=str(e["ticket_id"]),
                reference=str(e["reference"]),
                minutes=int(e["minutes"]),
                billable=bool(e["billable"]),
            )
            for e in self.entries.values()
            if e["billable"]
        ]


def month_of(instant: datetime) -> str:
    return f"{instant.year:04d}-{instant.month:02d}"


def cents(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def monthly_statement(
    agreement_id: uuid.UUID, month: str, terms: AgreementTerms, entries: list[Entry]
) -> dict[str, Any]:
    """The monthly-invoice statement: billable minutes per ticket, at least the agreement's
    minimum per started request (15 minutes in DOMAIN.md), at the hourly rate, plus VAT."""
    billing = terms.billing
    minutes_by_ticket: dict[str, tuple[str, int]] = {}
    for entry in entries:
        reference, minutes = minutes_by_ticket.get(entry.ticket_id, (entry.reference, 0))
        minutes_by_ticket[entry.ticket_id] = (reference, minutes + entry.minutes)
    lines = []
    for ticket_id, (reference, logged) in sorted(minutes_by_ticket.items(), key=lambda i: i[1][0]):
        billed = max(logged, billing.minimum_minutes_per_request)
        rounding = (
            f"raised to the minimum of {billing.minimum_minutes_per_request} min per request"
            if billed > logged
            else "as logged"
        )
        amount = cents(Decimal(billed) * billing.hourly_rate_cents / 60)
        lines.append(
            {
                "ticket_id": ticket_id,
                "reference": reference,
                "minutes_logged": logged,
                "minutes_billed": billed,
                "rounding": rounding,
                "amount_cents": amount,
            }
        )
    subtotal = sum(line["amount_cents"] for line in lines)  # type: ignore[misc]
    vat = cents(Decimal(subtotal) * billing.vat_rate)
    return {
        "statement_id": str(MonthLedger.create_id(agreement_id, month)),
        "agreement_id": str(agreement_id),
        "month": month,
        "customer": terms.customer,
        "billing_model": billing.model,
        "currency": billing.currency,
        "hourly_rate_cents": billing.hourly_rate_cents,
        "lines": lines,
        "minutes_billed": sum(line["minutes_billed"] for line in lines),  # type: ignore[misc]
        "subtotal_cents": subtotal,
        "vat_rate": str(billing.vat_rate),
        "vat_cents": vat,
        "total_cents": subtotal + vat,
    }
