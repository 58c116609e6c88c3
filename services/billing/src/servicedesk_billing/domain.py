"""Agreements (with their prepaid balance) and monthly ledgers of time entries (pure: no
I/O). What a statement says is computed in `statement.py`."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate, event

from servicedesk_billing.statement import Entry, FeePeriod, Prepaid, month_bounds
from servicedesk_contracts.calendars import month_end
from servicedesk_contracts.envelope import STORED
from servicedesk_contracts.messages import AgreementTerms


class Agreement(Aggregate):
    # Event classes that @event creates, declared for type checkers.
    Registered: ClassVar[type[Any]]
    TermsChanged: ClassVar[type[Any]]
    Cancelled: ClassVar[type[Any]]
    BundleToppedUp: ClassVar[type[Any]]

    @staticmethod
    def create_id(agreement_id: uuid.UUID, **_: Any) -> uuid.UUID:
        return agreement_id

    @event("Registered")
    def __init__(
        self, agreement_id: uuid.UUID, terms_json: dict[str, Any], effective_from: str = ""
    ) -> None:
        self.terms_json = terms_json
        self.history: list[tuple[str, dict[str, Any]]] = [(effective_from, terms_json)]
        self.cancelled_on: str | None = None
        self.balance_minutes = 0
        self.topped_up_minutes = 0

    @event("TermsChanged")
    def change_terms(self, terms_json: dict[str, Any], effective_from: str = "") -> None:
        """A plan change: it applies from `effective_from` (fees are prorated by day)."""
        self.terms_json = terms_json
        self.history = [*self.history, (effective_from, terms_json)]

    @event("Cancelled")
    def cancel(self, effective_on: str, reason: str) -> None:
        """The agreement ends at the end of `effective_on`: no fees after it."""
        self.cancelled_on = effective_on

    def fee_periods(self, month: str) -> list[FeePeriod]:
        """The terms in force on each day of `month`, as consecutive periods."""
        first, last = month_bounds(month)
        if self.cancelled_on:
            last = min(last, date.fromisoformat(self.cancelled_on))
        periods = []
        for index, (start, terms_json) in enumerate(self.history):
            begins = max(first, date.fromisoformat(start) if start else date.min)
            following = self.history[index + 1][0] if index + 1 < len(self.history) else ""
            ends = (
                min(last, date.fromisoformat(following) - timedelta(days=1)) if following else last
            )
            if begins <= ends:
                periods.append(
                    FeePeriod(
                        begins, ends, AgreementTerms.model_validate(terms_json, context=STORED)
                    )
                )
        return periods

    @event("BundleToppedUp")
    def top_up(self, minutes: int, note: str) -> None:
        """Hours bought in advance: they never expire (DOMAIN.md 6)."""
        self.topped_up_minutes += minutes

    @event("BundleSettled")
    def settle_bundle(self, month: str, balance_after_minutes: int) -> None:
        """A statement took the month's time off the balance (top-ups included)."""
        self.balance_minutes = balance_after_minutes
        self.topped_up_minutes = 0

    @property
    def prepaid(self) -> Prepaid:
        return Prepaid(balance_before=self.balance_minutes, topped_up=self.topped_up_minutes)

    @property
    def terms(self) -> AgreementTerms:
        return AgreementTerms.model_validate(self.terms_json, context=STORED)


class MonthLedger(Aggregate):
    """The time entries of one agreement in one month, and that month's statement."""

    # Event classes that @event creates, declared for type checkers.
    StatementIssued: ClassVar[type[Any]]

    SNAPSHOT_EVERY: ClassVar[int] = 10_000
    """A month of a large agreement gains an event per time entry: loading its ledger reads
    the latest snapshot and fewer than this many events after it. Each snapshot holds the
    whole month so far, so a shorter interval stores more."""

    @staticmethod
    def create_id(agreement_id: uuid.UUID, month: str) -> uuid.UUID:
        return uuid.uuid5(agreement_id, f"ledger:{month}")

    @event("Opened")
    def __init__(self, agreement_id: uuid.UUID, month: str) -> None:
        self.agreement_id = agreement_id
        self.month = month
        # What a statement needs of each entry, by entry id, as a `_row`: the ledger's
        # snapshots hold every entry of the month, so each is kept small.
        self.entries: dict[str, list[Any]] = {}
        self.adjustments: dict[str, list[Any]] = {}
        self.statement: dict[str, Any] | None = None

    @event("EntryRecorded")
    def record_entry(self, entry: dict[str, Any]) -> None:
        self.entries[str(entry["entry_id"])] = _row(entry, self.month)

    @event("StatementIssued")
    def issue(self, statement: dict[str, Any]) -> None:
        self.statement = statement

    @event("AdjustmentRecorded")
    def record_adjustment(self, entry: dict[str, Any]) -> None:
        """Time worked in an earlier month whose statement was already issued."""
        self.adjustments[str(entry["entry_id"])] = _row(entry, str(entry["month"]))

    @property
    def due_for_snapshot(self) -> bool:
        return self.version % self.SNAPSHOT_EVERY == 0

    def knows(self, entry_id: str) -> bool:
        return entry_id in self.entries or entry_id in self.adjustments

    def statement_entries(self) -> tuple[list[Entry], list[Entry]]:
        """(this month's entries, adjustments for earlier months)."""
        return (
            [_entry(entry_id, row) for entry_id, row in self.entries.items()],
            [_entry(entry_id, row) for entry_id, row in self.adjustments.items()],
        )


def _row(stored: dict[str, Any], month: str) -> list[Any]:
    """An entry as the ledger keeps it (a list: a snapshot of 100,000 is half the size)."""
    return [
        str(stored["ticket_id"]),
        str(stored["reference"]),
        int(stored["minutes"]),
        bool(stored["billable"]),
        str(stored.get("work_type", "support")),
        str(stored.get("category", "")),
        str(stored["worked_on"]) if stored.get("worked_on") else None,
        month,
    ]


def _entry(entry_id: str, row: list[Any]) -> Entry:
    ticket_id, reference, minutes, billable, work_type, category, worked_on, month = row
    return Entry(
        entry_id=entry_id,
        ticket_id=ticket_id,
        reference=reference,
        minutes=minutes,
        billable=billable,
        work_type=work_type,
        category=category,
        worked_on=date.fromisoformat(worked_on) if worked_on else None,
        month=month,
    )


def month_of(instant: datetime) -> str:
    return f"{instant.year:04d}-{instant.month:02d}"


def next_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def month_not_ended(month: str, terms: AgreementTerms, now: datetime) -> str | None:
    """Why `month`'s statement cannot be issued at `now`, or None. A statement is final, so
    its month must have ended in the agreement's time zone: time still to be worked in it
    would otherwise count on no statement of its own."""
    ends = month_end(month, terms.calendar.timezone)
    if now < ends:
        return f"{month} has not ended in {terms.calendar.timezone}: it ends {ends.isoformat()}"
    return None
