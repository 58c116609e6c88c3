"""Monthly statements under every billing model of DOMAIN.md (pure: no I/O).

Money is integer cents, computed with Decimal and rounded half up once per line, once per
fee and once for VAT; never floats. Time is whole minutes.

What is billed, per entry (in this order of precedence):
- not billable when logged as such, or work the provider never bills (repairing its own
  defects), or in a category the plan covers, or during hyper care: shown at 0;
- otherwise billable: per ticket and month at least the agreement's minimum per started
  request (15 minutes in DOMAIN.md).
How billable time becomes money depends on the model:
- monthly invoice and billed per use: every billable minute at the hourly rate;
- retainer: the month's included minutes are paid by the fee; minutes beyond are overage;
- prepaid bundle: minutes come off the balance (which never expires; top-ups add to it);
  minutes beyond the balance are billed at the hourly rate.
Entries logged for a month already issued appear as adjustment lines on a later statement
and are billed under the same rules.
"""

from __future__ import annotations

import uuid
from calendar import monthrange
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from servicedesk_contracts.messages import AgreementTerms, BillingTerms

NOT_BILLABLE = "logged as not billable"
OWN_DEFECT = "our own defect: never billed"
COVERED = "covered by the plan"
HYPER_CARE = "hyper care: free"


@dataclass(frozen=True)
class Entry:
    entry_id: str
    ticket_id: str
    reference: str
    minutes: int
    billable: bool
    work_type: str = "support"
    category: str = ""
    worked_on: date | None = None
    month: str = ""
    """The month the time was worked in (differs from the statement's on adjustments)."""


def cents(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def at_rate(minutes: int, billing: BillingTerms) -> int:
    return cents(Decimal(minutes) * billing.hourly_rate_cents / 60)


def free_reason(entry: Entry, billing: BillingTerms) -> str | None:
    if not entry.billable:
        return NOT_BILLABLE
    if entry.work_type in billing.unbilled_work_types:
        return OWN_DEFECT
    if entry.category.lower() in {c.lower() for c in billing.covered_categories}:
        return COVERED
    if billing.hyper_care_until and entry.worked_on and entry.worked_on <= billing.hyper_care_until:
        return HYPER_CARE
    return None


def ticket_lines(
    entries: Iterable[Entry], billing: BillingTerms, priced: bool
) -> list[dict[str, Any]]:
    """One line per ticket (and month, and reason it is free); billable lines rounded up to
    the minimum per request. `priced`: amounts at the hourly rate (monthly invoice and
    billed per use) or 0 (time paid from a retainer or bundle)."""
    groups: dict[tuple[str, str, str | None], list[Entry]] = {}
    for entry in entries:
        key = (entry.ticket_id, entry.month, free_reason(entry, billing))
        groups.setdefault(key, []).append(entry)
    lines = []
    for (ticket_id, month, reason), grouped in sorted(
        groups.items(), key=lambda g: (g[1][0].month, g[1][0].reference, g[0][2] or "")
    ):
        logged = sum(e.minutes for e in grouped)
        if reason is not None:
            billed, rounding = 0, reason
        else:
            billed = max(logged, billing.minimum_minutes_per_request)
            rounding = (
                f"raised to the minimum of {billing.minimum_minutes_per_request} min per request"
                if billed > logged
                else "as logged"
            )
        lines.append(
            {
                "ticket_id": ticket_id,
                "reference": grouped[0].reference,
                "month": month,
                "minutes_logged": logged,
                "minutes_billed": billed,
                "rounding": rounding,
                "amount_cents": at_rate(billed, billing) if priced else 0,
            }
        )
    return lines


@dataclass(frozen=True)
class FeePeriod:
    """Days of a month under one set of terms: fees are charged per day of the month."""

    first: date
    last: date
    terms: AgreementTerms


def month_bounds(month: str) -> tuple[date, date]:
    year, number = (int(part) for part in month.split("-"))
    return date(year, number, 1), date(year, number, monthrange(year, number)[1])


@dataclass(frozen=True)
class Prepaid:
    balance_before: int = 0
    topped_up: int = 0


def monthly_statement(
    agreement_id: uuid.UUID,
    month: str,
    terms: AgreementTerms,
    entries: list[Entry],
    adjustments: list[Entry] = (),  # type: ignore[assignment]
    prepaid: Prepaid = Prepaid(),
    fee_periods: list[FeePeriod] | None = None,
) -> dict[str, Any]:
    """`terms` price the time; fees follow `fee_periods` (default: `terms` all month)."""
    billing = terms.billing
    priced = billing.model in ("monthly_invoice", "billed_per_use")
    lines = ticket_lines(entries, billing, priced)
    for line in lines:
        line.pop("month")
    adjustment_lines = ticket_lines(adjustments, billing, priced)
    minutes_billed = sum(line["minutes_billed"] for line in (*lines, *adjustment_lines))
    first, last = month_bounds(month)
    fee_lines = _fee_lines(fee_periods or [FeePeriod(first, last, terms)], month)
    summary: dict[str, Any] = {"prepaid": None, "retainer": None}
    if billing.model == "retainer":
        overage = max(minutes_billed - billing.included_minutes_per_month, 0)
        summary["retainer"] = {
            "included_minutes": billing.included_minutes_per_month,
            "used_minutes": minutes_billed,
            "overage_minutes": overage,
        }
        if overage:
            fee_lines.append(_overage_line("beyond the retainer", overage, billing))
    elif billing.model == "prepaid_bundle":
        available = prepaid.balance_before + prepaid.topped_up
        used = min(minutes_billed, available)
        summary["prepaid"] = {
            "balance_before_minutes": prepaid.balance_before,
            "topped_up_minutes": prepaid.topped_up,
            "used_minutes": used,
            "balance_after_minutes": available - used,
        }
        if minutes_billed > used:
            fee_lines.append(
                _overage_line("beyond the prepaid balance", minutes_billed - used, billing)
            )
    subtotal = sum(line["amount_cents"] for line in (*lines, *adjustment_lines, *fee_lines))
    vat = cents(Decimal(subtotal) * billing.vat_rate)
    return {
        "statement_id": str(statement_id(agreement_id, month)),
        "agreement_id": str(agreement_id),
        "month": month,
        "customer": terms.customer,
        "billing_model": billing.model,
        "currency": billing.currency,
        "hourly_rate_cents": billing.hourly_rate_cents,
        "lines": lines,
        "adjustment_lines": adjustment_lines,
        "fee_lines": fee_lines,
        **summary,
        "minutes_billed": minutes_billed,
        "subtotal_cents": subtotal,
        "vat_rate": str(billing.vat_rate),
        "vat_cents": vat,
        "total_cents": subtotal + vat,
    }


def statement_id(agreement_id: uuid.UUID, month: str) -> uuid.UUID:
    return uuid.uuid5(agreement_id, f"ledger:{month}")


def _fee_lines(periods: list[FeePeriod], month: str) -> list[dict[str, Any]]:
    """Monthly fees per day of the month under each set of terms: a fee for part of a
    month is fee x days / days in the month, rounded half up per line."""
    days_in_month = month_bounds(month)[1].day
    lines = []
    for period in periods:
        days = (period.last - period.first).days + 1
        when = (
            month
            if days == days_in_month
            else f"{period.first:%d}-{period.last:%d %b %Y} ({days}/{days_in_month} days)"
        )
        billing = period.terms.billing
        fees = [(period.terms.plan, billing.monthly_fee_cents)] + [
            (f"Extension {name}", fee) for name, fee in sorted(billing.extension_fees.items())
        ]
        for description, fee in fees:
            if fee:
                amount = cents(Decimal(fee) * days / days_in_month)
                lines.append({"description": f"{description}, {when}", "amount_cents": amount})
    return lines


def _overage_line(why: str, minutes: int, billing: BillingTerms) -> dict[str, Any]:
    rate = Decimal(billing.hourly_rate_cents) / 100
    return {
        "description": f"{minutes} min {why} at {rate:.2f} {billing.currency}/h",
        "amount_cents": at_rate(minutes, billing),
    }
