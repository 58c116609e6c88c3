"""SLA clocks (pure: no I/O). A met or breached target is a fact that never changes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate, event

RESPONSE = "response"


class SlaClock(Aggregate):
    """One clock of one ticket (e.g. its response clock). It may learn of the first agent
    reply before it starts (tickets and triage are different topics): then it stops at
    once when started, with the outcome of that reply."""

    # Event classes that @event creates, declared for type checkers.
    Started: ClassVar[type[Any]]
    Stopped: ClassVar[type[Any]]
    Breached: ClassVar[type[Any]]

    @staticmethod
    def create_id(ticket_id: uuid.UUID, kind: str) -> uuid.UUID:
        return uuid.uuid5(ticket_id, f"sla-clock:{kind}")

    @event("Registered")
    def __init__(self, ticket_id: uuid.UUID, kind: str) -> None:
        self.ticket_id = ticket_id
        self.kind = kind
        self.reference = ""
        self.priority = ""
        self.due_at: datetime | None = None
        self.stopped_at: datetime | None = None
        self.breached = False
        self.met: bool | None = None
        self.early_stop: datetime | None = None
        self.opened_at: datetime | None = None
        self.agreement_id: uuid.UUID | None = None

    @property
    def running(self) -> bool:
        return self.due_at is not None and self.stopped_at is None

    @event("Triaged")
    def note_triage(
        self, reference: str, priority: str, opened_at: datetime, agreement_id: uuid.UUID
    ) -> None:
        """What the clock needs to start: it starts when the request reached us."""
        self.reference = reference
        self.priority = priority
        self.opened_at = opened_at
        self.agreement_id = agreement_id

    def start(self, target_minutes: float, due_at: datetime) -> None:
        if self.due_at is not None or self.opened_at is None:
            return
        self._started(
            ticket_id=self.ticket_id,
            kind=self.kind,
            reference=self.reference,
            priority=self.priority,
            target_minutes=target_minutes,
            started_at=self.opened_at,
            due_at=due_at,
        )
        if self.early_stop is not None:
            self.stop(self.early_stop)

    @event("Started")
    def _started(
        self,
        ticket_id: uuid.UUID,
        kind: str,
        reference: str,
        priority: str,
        target_minutes: float,
        started_at: datetime,
        due_at: datetime,
    ) -> None:
        self.due_at = due_at

    def stop(self, at: datetime) -> None:
        """Stops a running clock; before it started, remembers when to stop it."""
        if self.due_at is None:
            if self.early_stop is None:
                self._stop_noted(at=at)
            return
        if self.stopped_at is not None:
            return
        self._stopped(
            ticket_id=self.ticket_id,
            kind=self.kind,
            reference=self.reference,
            priority=self.priority,
            stopped_at=at,
            due_at=self.due_at,
            met=at <= self.due_at,
        )

    @event("StopNoted")
    def _stop_noted(self, at: datetime) -> None:
        self.early_stop = at

    @event("Stopped")
    def _stopped(
        self,
        ticket_id: uuid.UUID,
        kind: str,
        reference: str,
        priority: str,
        stopped_at: datetime,
        due_at: datetime,
        met: bool,
    ) -> None:
        self.stopped_at = stopped_at
        self.met = met

    def breach_if_due(self, now: datetime) -> bool:
        """Records the breach once, if the clock runs past its deadline."""
        if not self.running or self.breached or self.due_at is None or now < self.due_at:
            return False
        self._breached(
            ticket_id=self.ticket_id,
            kind=self.kind,
            reference=self.reference,
            priority=self.priority,
            due_at=self.due_at,
            breached_at=now,
        )
        return True

    @event("Breached")
    def _breached(
        self,
        ticket_id: uuid.UUID,
        kind: str,
        reference: str,
        priority: str,
        due_at: datetime,
        breached_at: datetime,
    ) -> None:
        self.breached = True
