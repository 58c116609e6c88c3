"""The triage decision of one ticket with its agreement's matrix (pure: no I/O). The
matrices themselves are data in `servicedesk_contracts.matrices`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate, event

from servicedesk_contracts.matrices import Matrix, normalise


class TriageRefused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Decision:
    priority: str
    reason: str


def decide(
    matrix: Matrix,
    category: str,
    impact: str,
    urgency: str,
    requested_priority: str | None,
    customer_may_override: bool,
) -> Decision:
    category, impact, urgency = normalise(category), normalise(impact), normalise(urgency)
    if matrix.applies_to is not None and category not in matrix.applies_to:
        decided = Decision(
            matrix.default_priority,
            f"{matrix.name}: category {category} always gets {matrix.default_priority}",
        )
    elif (impact, urgency) in matrix.table:
        priority = matrix.table[(impact, urgency)]
        decided = Decision(priority, f"{matrix.name}: impact {impact} x urgency {urgency}")
    else:
        decided = Decision(
            matrix.default_priority,
            f"{matrix.name}: impact {impact!r} / urgency {urgency!r} not in the matrix, "
            f"lowest priority {matrix.default_priority}",
        )
    if requested_priority and requested_priority != decided.priority:
        if customer_may_override and requested_priority in matrix.priorities:
            return Decision(
                requested_priority,
                f"customer override of {decided.priority} ({decided.reason})",
            )
        return Decision(
            decided.priority, f"{decided.reason}; requested {requested_priority} not granted"
        )
    return decided


class Triage(Aggregate):
    """The triage of one ticket: its inputs, then its decision."""

    # Event classes that @event creates, declared for type checkers.
    Decided: ClassVar[type[Any]]

    @staticmethod
    def create_id(ticket_id: uuid.UUID, **_: object) -> uuid.UUID:
        return uuid.uuid5(ticket_id, "triage")

    @event("Requested")
    def __init__(
        self,
        ticket_id: uuid.UUID,
        reference: str,
        agreement_id: uuid.UUID,
        category: str,
        impact: str,
        urgency: str,
        requested_priority: str | None,
        opened_at: datetime,
    ) -> None:
        self.ticket_id = ticket_id
        self.reference = reference
        self.agreement_id = agreement_id
        self.category = category
        self.impact = impact
        self.urgency = urgency
        self.requested_priority = requested_priority
        self.opened_at = opened_at
        self.priority: str | None = None

    def change_priority(
        self,
        matrix: Matrix,
        priority: str,
        changed_by: str,
        by_customer: bool,
        customer_may_override: bool,
        reason: str,
    ) -> None:
        """A later change of priority by an agent, or a customer's override where the
        agreement allows it: traceable (who, why) in the decision it publishes."""
        if self.priority is None:
            raise TriageRefused("not_triaged", f"{self.reference} is not triaged yet")
        if priority not in matrix.priorities:
            raise TriageRefused(
                "unknown_priority", f"{priority!r} is not a priority of {matrix.name}"
            )
        if by_customer and not customer_may_override:
            raise TriageRefused(
                "override_not_allowed", "this agreement does not let customers override"
            )
        if priority == self.priority:
            return
        who = f"customer {changed_by}" if by_customer else changed_by
        reason = f"changed from {self.priority} by {who}: {reason}"
        self._record(matrix, Decision(priority, reason), decided_by=changed_by)

    def decide(self, matrix: Matrix, customer_may_override: bool) -> None:
        if self.priority is not None:
            return
        decision = decide(
            matrix,
            self.category,
            self.impact,
            self.urgency,
            self.requested_priority,
            customer_may_override,
        )
        self._record(matrix, decision, decided_by="triage")

    def _record(self, matrix: Matrix, decision: Decision, decided_by: str) -> None:
        # The event carries everything TicketTriaged needs, so the relay loads nothing.
        self._decided(
            ticket_id=self.ticket_id,
            reference=self.reference,
            agreement_id=self.agreement_id,
            category=normalise(self.category),
            priority=decision.priority,
            matrix=matrix.name,
            impact=self.impact,
            urgency=self.urgency,
            requested_priority=self.requested_priority,
            reason=decision.reason,
            opened_at=self.opened_at,
            decided_by=decided_by,
        )

    @event("Decided")
    def _decided(
        self,
        ticket_id: uuid.UUID,
        reference: str,
        agreement_id: uuid.UUID,
        category: str,
        priority: str,
        matrix: str,
        impact: str,
        urgency: str,
        requested_priority: str | None,
        reason: str,
        opened_at: datetime,
        decided_by: str = "triage",
    ) -> None:
        self.priority = priority


class ParkedTickets(Aggregate):
    """The tickets triage keeps waiting because they name an agreement it does not know:
    one record for the service, so that how many wait, and which, survives a restart (the
    `servicedesk_tickets_parked` gauge reads it). A ticket leaves it when its agreement
    arrives and it is triaged."""

    ID: ClassVar[uuid.UUID] = uuid.UUID("7a1d3c8e-2f4b-4e0a-9c6d-5b8e1f2a3c4d")

    @staticmethod
    def create_id() -> uuid.UUID:
        return ParkedTickets.ID

    @event("Started")
    def __init__(self) -> None:
        self.waiting: dict[str, dict[str, str]] = {}
        """By ticket id: the agreement it names, its reference, when it reached us."""

    @event("TicketParked")
    def park(
        self, ticket_id: uuid.UUID, agreement_id: uuid.UUID, reference: str, opened_at: datetime
    ) -> None:
        self.waiting = {
            **self.waiting,
            str(ticket_id): {
                "agreement_id": str(agreement_id),
                "reference": reference,
                "opened_at": opened_at.isoformat(),
            },
        }

    def waiting_for(self, agreement_id: uuid.UUID) -> list[str]:
        return [t for t, w in self.waiting.items() if w["agreement_id"] == str(agreement_id)]

    def release(self, agreement_id: uuid.UUID) -> list[str]:
        """The references of the tickets that waited for this agreement (none: no event)."""
        released = self.waiting_for(agreement_id)
        references = [self.waiting[t]["reference"] for t in released]
        if released:
            self._released(agreement_id=agreement_id, ticket_ids=released)
        return references

    @event("Released")
    def _released(self, agreement_id: uuid.UUID, ticket_ids: list[str]) -> None:
        self.waiting = {t: w for t, w in self.waiting.items() if t not in ticket_ids}
