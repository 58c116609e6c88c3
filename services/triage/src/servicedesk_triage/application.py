"""Triage's handlers."""

from __future__ import annotations

from functools import partial

from servicedesk_contracts import messages as m
from servicedesk_contracts.matrices import MATRICES
from servicedesk_runtime.agreements import agreement_copy, learn_terms, terms_or_park
from servicedesk_runtime.clock import Clock
from servicedesk_runtime.consumer import Handler, Rejected, handles
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import TICKETS_PARKED, TICKETS_TRIAGED, TRIAGE_LAG_SECONDS
from servicedesk_runtime.store import ServiceStore, UnitOfWork
from servicedesk_triage.domain import ParkedTickets, Triage, TriageRefused

log = get_logger(__name__)


class TriageDesk:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def handlers(self) -> dict[str, Handler]:
        return dict(
            [
                handles(
                    m.TicketOpened,
                    self.triage_ticket,
                    reads=lambda o: [Triage.create_id(o.subject_id), o.data.agreement_id],
                ),
                handles(m.AgreementRegistered, self.learn_agreement),
                handles(m.TicketPriorityChangeRequested, self.change_priority),
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
        if terms is None:  # decided when the agreement arrives
            self._park(triage, uow)
        else:
            self._decide(triage, terms, uow)

    def change_priority(self, requested: m.TicketPriorityChangeRequested, uow: UnitOfWork) -> None:
        triage = uow.get(Triage.create_id(requested.subject_id), Triage)
        terms = agreement_copy(uow, triage.agreement_id).terms if triage else None
        if triage is None or terms is None:
            raise Rejected("not_triaged", f"ticket {requested.subject_id} is not triaged yet")
        data = requested.data
        try:
            triage.change_priority(
                MATRICES[terms.matrix],
                data.priority,
                data.changed_by,
                data.by_customer,
                terms.customer_may_override_priority,
                data.reason,
            )
        except TriageRefused as refused:
            raise Rejected(refused.reason, str(refused)) from refused
        uow.add(triage)

    def learn_agreement(self, registered: m.AgreementRegistered, uow: UnitOfWork) -> None:
        for triage in learn_terms(uow, registered, Triage):
            self._decide(triage, registered.data, uow)
        parked = uow.get(ParkedTickets.ID, ParkedTickets)
        if parked is not None and parked.waiting_for(registered.subject_id):
            references = parked.release(registered.subject_id)
            uow.add(parked)
            waiting = len(parked.waiting)
            agreement = str(registered.subject_id)
            uow.after_commit(lambda: _report_parked(waiting))
            uow.after_commit(
                lambda: log.info("tickets_unparked", agreement=agreement, references=references)
            )

    @staticmethod
    def _park(triage: Triage, uow: UnitOfWork) -> None:
        """A ticket whose agreement triage does not know waits, visibly: on the parked
        record, in the gauge and in the log. It may be early (the agreement is on its way)
        or name an agreement that does not exist; either way an operator can see it."""
        parked = uow.get_or_create(ParkedTickets)
        parked.park(triage.ticket_id, triage.agreement_id, triage.reference, triage.opened_at)
        waiting = len(parked.waiting)
        fields = {
            "ticket": str(triage.ticket_id),
            "reference": triage.reference,
            "agreement": str(triage.agreement_id),
        }
        uow.after_commit(lambda: _report_parked(waiting))
        uow.after_commit(lambda: log.warning("ticket_parked_unknown_agreement", **fields))

    @staticmethod
    def parked(store: ServiceStore) -> dict[str, dict[str, str]]:
        """The tickets waiting for an agreement, by ticket id, as stored."""
        record = store.unit_of_work().get(ParkedTickets.ID, ParkedTickets)
        return dict(record.waiting) if record is not None else {}

    def report_parked(self, store: ServiceStore) -> None:
        """Sets the gauge from the stored record: at start-up, before any ticket comes."""
        _report_parked(len(self.parked(store)))

    def _decide(self, triage: Triage, terms: m.AgreementTerms, uow: UnitOfWork) -> None:
        triage.decide(MATRICES[terms.matrix], terms.customer_may_override_priority)
        uow.after_commit(TICKETS_TRIAGED.labels(triage.category.lower(), str(triage.priority)).inc)
        lag = (self.clock.now() - triage.opened_at).total_seconds()
        uow.after_commit(partial(TRIAGE_LAG_SECONDS.observe, max(lag, 0)))


def _report_parked(waiting: int) -> None:
    TICKETS_PARKED.set(waiting)
