"""Billing's handlers."""

from __future__ import annotations

import uuid
from functools import partial
from zoneinfo import ZoneInfo

from servicedesk_billing.domain import (
    Agreement,
    MonthLedger,
    month_not_ended,
    month_of,
    next_month,
)
from servicedesk_billing.statement import monthly_statement
from servicedesk_contracts import Message, plans
from servicedesk_contracts import messages as m
from servicedesk_runtime.clock import Clock
from servicedesk_runtime.consumer import Handler, Rejected, handles
from servicedesk_runtime.metrics import (
    AGREEMENTS_REGISTERED,
    STATEMENTS_ISSUED,
    TIME_LOGGED_SECONDS,
)
from servicedesk_runtime.snapshots import snapshot_when_committed
from servicedesk_runtime.store import UnitOfWork


class Billing:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def handlers(self) -> dict[str, Handler]:
        return dict(
            [
                handles(m.RegisterAgreement, self.register_agreement),
                handles(m.RegisterPlanAgreement, self.register_plan_agreement),
                handles(m.TimeLogged, self.record_time),
                handles(m.IssueStatement, self.issue_statement),
                handles(m.TopUpBundle, self.top_up_bundle),
                handles(m.CancelAgreement, self.cancel_agreement),
            ]
        )

    def register_agreement(self, command: m.RegisterAgreement, uow: UnitOfWork) -> None:
        _register(uow, command, command.data)

    def register_plan_agreement(self, command: m.RegisterPlanAgreement, uow: UnitOfWork) -> None:
        try:
            terms = plans.resolve(command.data)
        except plans.PlanRefused as refused:
            raise Rejected(refused.reason, str(refused)) from refused
        _register(uow, command, terms)

    def record_time(self, logged: m.TimeLogged, uow: UnitOfWork) -> None:
        """Files the entry under the month it was worked in, in the agreement's time zone;
        if that month's statement is out, on the next open month as an adjustment."""
        data = logged.data
        agreement = uow.get(data.agreement_id, Agreement)
        if agreement is None:
            # Billing registers every agreement itself: this ticket names one that does not
            # exist. Dead-lettered with the reason, so nothing is lost or billed wrongly.
            raise Rejected(
                "unknown_agreement",
                f"time on {data.reference} names agreement {data.agreement_id}: no such agreement",
            )
        local_start = data.started_at.astimezone(ZoneInfo(agreement.terms.calendar.timezone))
        month = month_of(local_start)
        entry_id = str(data.entry_id)
        entry: dict[str, object] = {
            "entry_id": entry_id,
            "ticket_id": str(logged.subject_id),
            "reference": data.reference,
            "minutes": data.duration_minutes,
            "billable": data.billable,
            "agent": data.agent,
            "work_type": data.work_type,
            "category": data.category,
            "started_at": data.started_at.isoformat(),
            "worked_on": local_start.date().isoformat(),
            "month": month,
        }
        ledger = uow.get_or_create(MonthLedger, agreement_id=data.agreement_id, month=month)
        while ledger.statement is not None:
            if ledger.knows(entry_id):
                return
            ledger = uow.get_or_create(
                MonthLedger, agreement_id=data.agreement_id, month=next_month(ledger.month)
            )
        if ledger.knows(entry_id):
            return
        if ledger.month == month:
            ledger.record_entry(entry)
        else:
            ledger.record_adjustment(entry)
        if ledger.due_for_snapshot:
            snapshot_when_committed(uow, ledger)
        logged_seconds = TIME_LOGGED_SECONDS.labels(str(data.billable).lower())
        uow.after_commit(partial(logged_seconds.inc, data.duration_minutes * 60))

    def cancel_agreement(self, command: m.CancelAgreement, uow: UnitOfWork) -> None:
        agreement = _agreement(uow, command.subject_id)
        if agreement.cancelled_on is not None:
            raise Rejected("agreement_cancelled", f"cancelled already on {agreement.cancelled_on}")
        agreement.cancel(command.data.effective_on.isoformat(), command.data.reason)
        uow.add(agreement)

    def top_up_bundle(self, command: m.TopUpBundle, uow: UnitOfWork) -> None:
        agreement = _agreement(uow, command.subject_id)
        if agreement.terms.billing.model != "prepaid_bundle":
            raise Rejected("not_a_bundle", f"agreement {command.subject_id} has no prepaid bundle")
        agreement.top_up(command.data.minutes, command.data.note)
        uow.add(agreement)

    def issue_statement(self, command: m.IssueStatement, uow: UnitOfWork) -> None:
        agreement = _agreement(uow, command.subject_id)
        month = command.data.month
        not_ended = month_not_ended(month, agreement.terms, self.clock.now())
        if not_ended:
            raise Rejected("month_not_ended", not_ended)
        ledger = uow.get_or_create(MonthLedger, agreement_id=command.subject_id, month=month)
        if ledger.statement is not None:
            raise Rejected("already_issued", f"statement for {month} was issued already")
        terms = agreement.terms
        entries, adjustments = ledger.statement_entries()
        statement = monthly_statement(
            command.subject_id,
            month,
            terms,
            entries,
            adjustments,
            agreement.prepaid,
            agreement.fee_periods(month),
        )
        ledger.issue(statement)
        if statement["prepaid"] is not None:
            agreement.settle_bundle(month, statement["prepaid"]["balance_after_minutes"])
            uow.add(agreement)
        uow.after_commit(STATEMENTS_ISSUED.labels(terms.billing.model).inc)


def _agreement(uow: UnitOfWork, agreement_id: uuid.UUID) -> Agreement:
    agreement = uow.get(agreement_id, Agreement)
    if agreement is None:
        raise Rejected("unknown_agreement", f"no agreement {agreement_id}")
    return agreement


def _register(uow: UnitOfWork, command: Message, terms: m.AgreementTerms) -> None:
    """Registers an agreement, or changes its terms from the day the command was given (in
    the agreement's time zone): fees are prorated by day, clocks started later use them."""
    terms_json = terms.model_dump(mode="json")
    effective_from = command.occurred_at.astimezone(ZoneInfo(terms.calendar.timezone)).date()
    agreement = uow.get(command.subject_id, Agreement)
    if agreement is None:
        agreement = Agreement(
            agreement_id=command.subject_id,
            terms_json=terms_json,
            effective_from=effective_from.isoformat(),
        )
        uow.after_commit(AGREEMENTS_REGISTERED.labels(terms.billing.model).inc)
    elif agreement.cancelled_on is not None:
        raise Rejected("agreement_cancelled", f"agreement {command.subject_id} was cancelled")
    elif agreement.terms_json != terms_json:
        agreement.change_terms(terms_json, effective_from.isoformat())
    uow.add(agreement)
