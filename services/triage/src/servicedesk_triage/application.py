"""Triage's handlers."""

from __future__ import annotations

from servicedesk_contracts import messages as m
from servicedesk_runtime.agreements import learn_terms, terms_or_park
from servicedesk_runtime.clock import Clock
from servicedesk_runtime.consumer import Handler, handles
from servicedesk_runtime.metrics import TICKETS_TRIAGED, TRIAGE_LAG_SECONDS
from servicedesk_runtime.store import UnitOfWork
from servicedesk_triage.domain import MATRICES, Triage


class TriageDesk:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def handlers(self) -> dict[str, Handler]:
        return dict(
            [
                handles(m.TicketOpened, self.triage_ticket),
                handles(m.AgreementRegistered, self.learn_agreement),
            ]
        )

    def triage_ticket(self, opened: m.TicketOpened, uow: UnitOfWork) -> None:
        data = opened.data
        triage = Triage(
            ticket_id=opened.subject_id,
            reference=data.reference,
            agreement_id=data.agreement_id,
            category=data.category,
            impact=data.impact,
            urgency=data.urgency,
            requested_priority=data.requested_priority,
            opened_at=data.received_at,
        )
        if uow.get(triage.id, Triage) is not None:
            return
        uow.add(triage)
        terms = terms_or_park(uow, data.agreement_id, triage)
        if terms is not None:  # else decided when the agreement arrives
            self._decide(triage, terms)

    def learn_agreement(self, registered: m.AgreementRegistered, uow: UnitOfWork) -> None:
        for triage in learn_terms(uow, registered, Triage):
            self._decide(triage, registered.data)

    def _decide(self, triage: Triage, terms: m.AgreementTerms) -> None:
        triage.decide(MATRICES[terms.matrix], terms.customer_may_override_priority)
        TICKETS_TRIAGED.labels(triage.category.lower(), str(triage.priority)).inc()
        lag = (self.clock.now() - triage.opened_at).total_seconds()
        TRIAGE_LAG_SECONDS.observe(max(lag, 0))
