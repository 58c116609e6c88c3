"""SLA clocks (pure: no I/O, no wall clock).

A clock measures business time on the agreement's calendar from the moment the request
reached us. It runs, pauses while the ticket waits in a status the plan declares paused,
resumes, may be retargeted when the priority changes, warns at the plan's thresholds,
breaches at its deadline and stops (met or not). Every change that moves its timers says
which timers are pending afterwards, so the due-time table is a plain projection.

Facts about the ticket may arrive before the clock can start (tickets and triage are
different topics, and the agreement may come later still). They are kept as observations
and replayed in time order when the clock starts, so the outcome depends on when things
happened, not on when this service heard of them. A breach is a fact that never changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate, event

from servicedesk_contracts.envelope import STORED
from servicedesk_contracts.messages import Calendar
from servicedesk_sla_timer.business_time import BusinessCalendar

RESPONSE = "response"
RESOLUTION = "resolution"
KINDS = (RESPONSE, RESOLUTION)
BREACH = "breach"


def warning_timer(fraction: float) -> str:
    return f"warn:{fraction:g}"


def _threshold(timer: str) -> float:
    """The fraction of the target a timer stands for: a warning's, or 1 for the breach."""
    return 1.0 if timer == BREACH else float(timer.split(":", 1)[1])


class SlaClock(Aggregate):
    class Started(Aggregate.Event):
        """The clock started. Version 2 (Nov 2026) added `due_at_opening`: clocks started
        before it have none (their working-day deadlines were computed the old way and
        stay as they were), which the upcaster says for their stored events."""

        class_version = 2

        ticket_id: uuid.UUID
        kind: str
        reference: str
        priority: str
        target_minutes: float
        started_at: datetime
        due_at: datetime
        calendar_json: dict[str, Any]
        budgets: dict[str, float]
        paused_statuses: list[str]
        warn_fractions: list[float]
        due_at_opening: list[str]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["due_at_opening"] = []

    # Event classes that @event creates, declared for type checkers.
    Paused: ClassVar[type[Any]]
    Resumed: ClassVar[type[Any]]
    Retargeted: ClassVar[type[Any]]
    Warned: ClassVar[type[Any]]
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
        self.opened_at: datetime | None = None
        self.category = ""
        self.agreement_id: uuid.UUID | None = None
        self.observations: list[dict[str, Any]] = []
        # Set when started:
        self.calendar_json: dict[str, Any] | None = None
        self.budgets: dict[str, float] = {}
        self.due_at_opening: list[str] = []
        """Priorities whose working-day deadline is an opening (business_time.py)."""
        self.paused_statuses: list[str] = []
        self.budget_minutes: float | None = 0.0
        """None when the current priority has no target of this kind (the clock runs
        untimed: R's C and D have resolution 'by planning')."""
        self.warn_fractions: list[float] = []
        self.running_since: datetime | None = None
        self.spent_minutes = 0.0
        self.due_at: datetime | None = None
        self.warned: list[float] = []
        self.breached = False
        self.stopped_at: datetime | None = None
        self.met: bool | None = None

    # --- what is known before it starts ----------------------------------------------------

    @property
    def started(self) -> bool:
        return self.calendar_json is not None

    @property
    def running(self) -> bool:
        return self.started and self.running_since is not None

    @property
    def paused(self) -> bool:
        return self.started and self.running_since is None and self.stopped_at is None

    @event("Triaged")
    def note_triage(
        self,
        reference: str,
        priority: str,
        opened_at: datetime,
        agreement_id: uuid.UUID,
        category: str = "",
    ) -> None:
        """What the clock needs to start: it starts when the request reached us."""
        self.category = category
        self.reference = reference
        self.priority = priority
        self.opened_at = opened_at
        self.agreement_id = agreement_id

    def observe_status(self, from_status: str, to_status: str, at: datetime) -> None:
        """A ticket status change: applied now if started, else when the clock starts."""
        self._observe({"what": "status", "from": from_status, "to": to_status, "at": at})

    def observe_reply(self, at: datetime) -> None:
        """The first agent reply stops a response clock."""
        if self.kind == RESPONSE:
            self._observe({"what": "reply", "at": at})

    def _observe(self, observation: dict[str, Any]) -> None:
        if self.started:
            self._apply(observation)
        else:
            self._observed(observation=observation)

    @event("Observed")
    def _observed(self, observation: dict[str, Any]) -> None:
        self.observations = [*self.observations, observation]

    def _apply(self, observation: dict[str, Any]) -> None:
        at: datetime = observation["at"]
        if observation["what"] == "reply":
            self.stop(at)
            return
        before, after = observation["from"], observation["to"]
        if after == "closed":
            self.stop(at)  # closing ends both clocks
            return
        if before == "closed" and self.kind == RESOLUTION:
            self.resume(at)  # a reopen resumes the resolution clock
        if after in self.paused_statuses:
            self.pause(at)
        elif before in self.paused_statuses and self.paused:
            # Only a paused clock runs again: one that stopped (a response met by the
            # reply that asked the customer something) keeps its outcome.
            self.resume(at)

    # --- running ---------------------------------------------------------------------------

    def start(
        self,
        calendar: Calendar,
        budgets: dict[str, float],
        paused_statuses: list[str],
        warn_fractions: list[float],
        due_at_opening: Collection[str] = (),
    ) -> None:
        """Starts at the request's arrival with the agreement's terms as they are now (a
        later change of the agreement applies to new clocks). `budgets` holds the target of
        every priority in business minutes, so a priority change needs nothing else;
        `due_at_opening` the priorities whose working-day deadline is an opening."""
        if self.started or self.opened_at is None or self.priority not in budgets:
            return
        budget = budgets[self.priority]
        due_at = BusinessCalendar(calendar).add_minutes(
            self.opened_at, budget, at_opening=self.priority in due_at_opening
        )
        self._started(
            ticket_id=self.ticket_id,
            kind=self.kind,
            reference=self.reference,
            priority=self.priority,
            target_minutes=budget,
            started_at=self.opened_at,
            due_at=due_at,
            calendar_json=calendar.model_dump(mode="json"),
            budgets=budgets,
            paused_statuses=paused_statuses,
            warn_fractions=sorted(warn_fractions),
            due_at_opening=sorted(due_at_opening),
        )
        for observation in sorted(self.observations, key=lambda o: o["at"]):
            self._apply({**observation, "at": max(observation["at"], self.opened_at)})

    @event(Started)
    def _started(
        self,
        ticket_id: uuid.UUID,
        kind: str,
        reference: str,
        priority: str,
        target_minutes: float,
        started_at: datetime,
        due_at: datetime,
        calendar_json: dict[str, Any],
        budgets: dict[str, float],
        paused_statuses: list[str],
        warn_fractions: list[float],
        due_at_opening: list[str],
    ) -> None:
        self.calendar_json = calendar_json
        self.budgets = budgets
        self.due_at_opening = due_at_opening
        self.paused_statuses = paused_statuses
        self.budget_minutes = target_minutes
        self.warn_fractions = warn_fractions
        self.running_since = started_at
        self.due_at = due_at

    def timers(self) -> dict[str, datetime]:
        """The pending timers: the breach at the deadline and each warning not yet given."""
        if (
            not self.running
            or self.due_at is None
            or self.running_since is None
            or self.budget_minutes is None
        ):
            return {}
        pending = {} if self.breached else {BREACH: self.due_at}
        calendar = self._calendar()
        for fraction in self.warn_fractions:
            if fraction in self.warned or self.breached:
                continue
            left = fraction * self.budget_minutes - self.spent_minutes
            if left >= 0:
                at = calendar.add_minutes(self.running_since, left)
                if at < self.due_at:
                    pending[warning_timer(fraction)] = at
        return pending

    def pause(self, at: datetime) -> None:
        if not self.running or self.running_since is None:
            return
        # What fell due before the pause is a fact of then, even if not yet noticed (a
        # backdated ticket): recorded now, or it would be lost or breach at the resume.
        self.fire_due(at)
        spent = self.spent_minutes + self._calendar().minutes_between(self.running_since, at)
        self._paused(
            ticket_id=self.ticket_id,
            kind=self.kind,
            reference=self.reference,
            priority=self.priority,
            paused_at=at,
            spent_minutes=spent,
        )

    @event("Paused")
    def _paused(
        self,
        ticket_id: uuid.UUID,
        kind: str,
        reference: str,
        priority: str,
        paused_at: datetime,
        spent_minutes: float,
    ) -> None:
        self.spent_minutes = spent_minutes
        self.running_since = None

    def resume(self, at: datetime) -> None:
        """Resumes a paused clock (also a closed ticket's resolution clock on reopen)."""
        if not self.started or self.running:
            return
        due_at = None
        if self.budget_minutes is not None:
            remaining = max(self.budget_minutes - self.spent_minutes, 0)
            due_at = self._deadline(self.priority, at, remaining)
        self._resumed(
            ticket_id=self.ticket_id,
            kind=self.kind,
            reference=self.reference,
            priority=self.priority,
            resumed_at=at,
            due_at=due_at,
        )

    @event("Resumed")
    def _resumed(
        self,
        ticket_id: uuid.UUID,
        kind: str,
        reference: str,
        priority: str,
        resumed_at: datetime,
        due_at: datetime | None,
    ) -> None:
        self.running_since = resumed_at
        self.stopped_at = None
        self.due_at = due_at

    def retarget(self, priority: str, at: datetime) -> None:
        """A new priority: the new target from the original start, minus what is spent."""
        if not self.started or priority == self.priority:
            return
        if self.stopped_at is not None:
            return  # an outcome is a fact: a stopped clock is not retargeted
        budget_minutes = self.budgets.get(priority)  # None: untimed at this priority
        calendar = self._calendar()
        spent = self.spent_minutes
        due_at = None  # paused (set when it resumes) or untimed
        if self.running_since is not None:
            spent += calendar.minutes_between(self.running_since, at)
        if self.running_since is not None and budget_minutes is not None:
            # From the current run's start, so a target already used up is due in the past
            # at the instant it ran out (and breaches at once).
            left = max(budget_minutes - self.spent_minutes, 0)
            due_at = self._deadline(priority, self.running_since, left)
        self._retargeted(
            ticket_id=self.ticket_id,
            kind=self.kind,
            reference=self.reference,
            priority=priority,
            target_minutes=budget_minutes,
            spent_minutes=spent,
            retargeted_at=at,
            due_at=due_at,
        )

    @event("Retargeted")
    def _retargeted(
        self,
        ticket_id: uuid.UUID,
        kind: str,
        reference: str,
        priority: str,
        target_minutes: float | None,
        spent_minutes: float,
        retargeted_at: datetime,
        due_at: datetime | None,
    ) -> None:
        self.priority = priority
        self.budget_minutes = target_minutes
        self.due_at = due_at
        if target_minutes is not None:
            self.warned = [f for f in self.warned if f * target_minutes <= spent_minutes]

    def stop(self, at: datetime) -> None:
        if not self.started or self.stopped_at is not None:
            return
        spent = self.spent_minutes
        if self.running_since is not None:
            spent += self._calendar().minutes_between(self.running_since, at)
        met = not self.breached and (self.budget_minutes is None or spent <= self.budget_minutes)
        self._stopped(
            ticket_id=self.ticket_id,
            kind=self.kind,
            reference=self.reference,
            priority=self.priority,
            stopped_at=at,
            due_at=self.due_at,
            met=met,
            spent_minutes=spent,
        )

    @event("Stopped")
    def _stopped(
        self,
        ticket_id: uuid.UUID,
        kind: str,
        reference: str,
        priority: str,
        stopped_at: datetime,
        due_at: datetime | None,
        met: bool,
        spent_minutes: float,
    ) -> None:
        self.stopped_at = stopped_at
        self.running_since = None
        self.spent_minutes = spent_minutes
        self.met = met

    # --- timers firing ---------------------------------------------------------------------

    def fire_due(self, now: datetime) -> list[tuple[str, datetime]]:
        """Records every timer due by `now`, once, in the order they fell due: each warning
        before a later one, every warning before the breach, also when all are overdue at
        once (a backdated ticket, a timer loop that was down). Each is the fact of the
        instant it fell due on the business clock (a breach at the deadline); `now`, when
        it was noticed, is kept beside it. Returns the timers fired and when they fell
        due, in order."""
        fired: list[tuple[str, datetime]] = []
        while (due := self._next_due(now)) is not None:
            self._record(*due, now)
            fired.append(due)
        return fired

    def _next_due(self, now: datetime) -> tuple[str, datetime] | None:
        due = [(at, _threshold(timer), timer) for timer, at in self.timers().items() if at <= now]
        if not due:
            return None
        at, _, timer = min(due)
        return timer, at

    def _record(self, timer: str, at: datetime, now: datetime) -> None:
        assert self.due_at is not None
        if timer == BREACH:
            self._breached(
                ticket_id=self.ticket_id,
                kind=self.kind,
                reference=self.reference,
                priority=self.priority,
                due_at=self.due_at,
                breached_at=at,
                noticed_at=now,
            )
        else:
            self._warned(
                ticket_id=self.ticket_id,
                kind=self.kind,
                reference=self.reference,
                priority=self.priority,
                threshold=_threshold(timer),
                due_at=self.due_at,
                warned_at=at,
                noticed_at=now,
            )

    @event("Breached")
    def _breached(
        self,
        ticket_id: uuid.UUID,
        kind: str,
        reference: str,
        priority: str,
        due_at: datetime,
        breached_at: datetime,
        noticed_at: datetime | None = None,  # absent from breaches recorded before it
    ) -> None:
        self.breached = True

    @event("Warned")
    def _warned(
        self,
        ticket_id: uuid.UUID,
        kind: str,
        reference: str,
        priority: str,
        threshold: float,
        due_at: datetime,
        warned_at: datetime,
        noticed_at: datetime | None = None,  # absent from warnings recorded before it
    ) -> None:
        self.warned = [*self.warned, threshold]

    def _deadline(self, priority: str, start: datetime, minutes: float) -> datetime:
        at_opening = priority in self.due_at_opening
        return self._calendar().add_minutes(start, minutes, at_opening=at_opening)

    def _calendar(self) -> BusinessCalendar:
        assert self.calendar_json is not None
        cached: BusinessCalendar | None = getattr(self, "_business_calendar", None)
        if cached is None:
            cached = BusinessCalendar(Calendar.model_validate(self.calendar_json, context=STORED))
            self._business_calendar = cached
        return cached
