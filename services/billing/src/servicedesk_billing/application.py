"""Billing's handlers."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

from servicedesk_billing.domain import Agreement, MonthLedger, month_of, monthly_statement
from servicedesk_contracts import messages as m
from servicedesk_contracts import plans
from servicedesk_runtime.consumer import Handler, Rejected, handles
from servicedesk_runtime.metrics import (
    AGREEMENTS_REGISTERED,
    STATEMENTS_ISSUED,
    TIME_LOGGED_SECONDS,
)
from servicedesk_runtime.store import UnitOfWork


class Billing:
    def handlers(self) -> dict[str, Handler]:
        return dict(
            [
                handles(m.RegisterAgreement, self.register_agreement),
                handles(m.RegisterPlanAgreement, self.register_plan_agreement),
                handles(m.TimeLogged, self.record_time),
                handles(m.IssueStatement, self.issue_statement),
            ]
        )

    def register_agreement(self, command: m.RegisterAgreement, uow: UnitOfWork) -> None:
        _register(uow, command.subject_id, command.data)

    def register_plan_agreement(self, command: m.RegisterPlanAgreement, uow: UnitOfWork) -> None:
        try:
            terms = plans.resolve(command.data)
        except plans.UnknownPlan as unknown:
            raise Rejected("unknown_plan", str(unknown)) from unknown
        _register(uow, command.subject_id, terms)

    def record_time(self, logged: m.TimeLogged, uow: UnitOfWork) -> None:
        data = logged.data
        agreement = uow.get(data.agreement_id, Agreement)
        zone = ZoneInfo(agreement.terms.calendar.timezone) if agreement else None
        month = month_of(data.started_at.astimezone(zone))
        ledger = _ledger(uow, data.agreement_id, month)
        if str(data.entry_id) in ledger.entries:
            return
        ledger.record_entry(
            {
                "entry_id": str(data.entry_id),
                "ticket_id": str(logged.subject_id),
                "reference": data.reference,
                "minutes": data.duration_minutes,
                "billable": data.billable,
                "agent": data.agent,
                "work_type": data.work_type,
                "started_at": data.started_at.isoformat(),
            }
        )
        TIME_LOGGED_SECONDS.labels(str(data.billable).lower()).inc(data.duration_minutes * 60)

    def issue_statement(self, command: m.IssueStatement, uow: UnitOfWork) -> None:
        agreement = uow.get(command.subject_id, Agreement)
        if agreement is None:
            raise Rejected("unknown_agreement", f"no agreement {command.subject_id}")
        ledger = _ledger(uow, command.subject_id, command.data.month)
        if ledger.statement is not None:
            raise Rejected(
                "already_issued", f"statement for {command.data.month} was issued already"
            )
        terms = agreement.terms
        ledger.issue(
            monthly_statement(
                command.subject_id, command.data.month, terms, ledger.billable_entries()
            )
        )
        STATEMENTS_ISSUED.labels(terms.billing.model).inc()


def _register(uow: UnitOfWork, agreement_id: uuid.UUID, terms: m.AgreementTerms) -> None:
    terms_json = terms.model_dump(mode="json")
    agreement = uow.get(agreement_id, Agreement)
    if agreement is None:
        agreement = Agreement(agreement_id=agreement_id, terms_json=terms_json)
        AGREEMENTS_REGISTERED.labels(terms.billing.model).inc()
    elif agreement.terms_json != terms_json:
        agreement.change_terms(terms_json)  # applies to new clocks and later statements
    uow.add(agreement)


def _ledger(uow: UnitOfWork, agreement_id: uuid.UUID, month: str) -> MonthLedger:
    ledger_id = MonthLedger.create_id(agreement_id, month)
    ledger = uow.get(ledger_id, MonthLedger) or MonthLedger(agreement_id=agreement_id, month=month)
    uow.add(ledger)
    return ledger
