"""sla-timer's handlers and its timer loop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from servicedesk_contracts import messages as m
from servicedesk_runtime.agreements import learn_terms, terms_or_park
from servicedesk_runtime.clock import Clock
from servicedesk_runtime.consumer import Handler, handles
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import (
    FIRST_RESPONSE_SECONDS,
    SLA_BREACHES,
    SLA_CLOCKS_OPEN,
    SLA_CLOCKS_STARTED,
    SLA_CLOCKS_STOPPED,
    SLA_TIMER_FIRE_DELAY_SECONDS,
    SLA_WARNINGS,
)
from servicedesk_runtime.service import BackgroundLoop
from servicedesk_runtime.signals import first_of
from servicedesk_runtime.store import ServiceStore, UnitOfWork
from servicedesk_sla_timer.business_time import BusinessCalendar
from servicedesk_sla_timer.domain import BREACH, KINDS, RESPONSE, SlaClock
from servicedesk_sla_timer.due_timers import DueTimers

log = get_logger(__name__)

RETRY_SECONDS = 0.25
"""How soon a timer that is due but was not fired is looked at again."""
INDEX_SPACING_SECONDS = 0.2
"""The shortest time between two looks woken by stored clocks (a timer due sooner is
still fired on time)."""


class SlaTimer:
    def __init__(self, store: ServiceStore, due: DueTimers, clock: Clock) -> None:
        self.store = store
        self.due = due
        self.clock = clock
        self._counted_at = -1e9
        self._clocks_changed = asyncio.Event()

    def clocks_changed(self) -> None:
        """Clocks were stored (a batch committed): index them and look again now."""
        self._clocks_changed.set()

    def handlers(self) -> dict[str, Handler]:
        return dict(
            [
                handles(m.TicketTriaged, self.time_ticket, reads=clocks_and_agreement),
                handles(m.AgentReplied, self.note_reply),
                handles(m.TicketStatusChanged, self.follow_status),
                handles(m.AgreementRegistered, self.learn_agreement),
            ]
        )

    def time_ticket(self, triaged: m.TicketTriaged, uow: UnitOfWork) -> None:
        """Starts the ticket's clocks on its first triage; a later one with another
        priority retargets them."""
        data = triaged.data
        for kind in KINDS:
            clock = uow.get_or_create(SlaClock, ticket_id=triaged.subject_id, kind=kind)
            if clock.opened_at is not None:
                clock.retarget(data.priority, triaged.occurred_at)  # a breach stays a breach
                continue
            clock.note_triage(
                data.reference, data.priority, data.opened_at, data.agreement_id, data.category
            )
            terms = terms_or_park(uow, data.agreement_id, clock)
            if terms is not None:  # else started when the agreement arrives
                self._start(clock, terms, uow)

    def note_reply(self, replied: m.AgentReplied, uow: UnitOfWork) -> None:
        clock = uow.get_or_create(SlaClock, ticket_id=replied.subject_id, kind=RESPONSE)
        was_running = clock.running
        clock.observe_reply(replied.data.replied_at)
        if was_running and not clock.running and clock.stopped_at is not None:
            self._count_stop(clock, uow)
            if clock.opened_at is not None:
                waited = (replied.data.replied_at - clock.opened_at).total_seconds()
                waiting = FIRST_RESPONSE_SECONDS.labels(clock.priority)
                uow.after_commit(partial(waiting.observe, max(waited, 0)))

    def follow_status(self, changed: m.TicketStatusChanged, uow: UnitOfWork) -> None:
        data = changed.data
        at = data.changed_at or changed.occurred_at
        for kind in KINDS:
            clock = uow.get_or_create(SlaClock, ticket_id=changed.subject_id, kind=kind)
            was_stopped, was_breached = clock.stopped_at is not None, clock.breached
            clock.observe_status(data.from_status, data.to_status, at)
            if not was_stopped and clock.stopped_at is not None:
                self._count_stop(clock, uow)
            if clock.breached and not was_breached:  # a deadline passed before a late pause
                uow.after_commit(SLA_BREACHES.labels(clock.kind, clock.priority).inc)

    def learn_agreement(self, registered: m.AgreementRegistered, uow: UnitOfWork) -> None:
        for clock in learn_terms(uow, registered, SlaClock):
            self._start(clock, registered.data, uow)

    def _start(self, clock: SlaClock, terms: m.AgreementTerms, uow: UnitOfWork) -> None:
        assert clock.opened_at is not None
        calendar, targets = clock_terms(terms, clock.category, clock.opened_at)
        budgets = target_budgets(calendar, targets, clock.kind, clock.opened_at)
        clock.start(
            calendar,
            budgets.minutes,
            list(terms.paused_statuses),
            terms.warning_thresholds,
            budgets.due_at_opening,
        )
        if clock.started:
            uow.after_commit(SLA_CLOCKS_STARTED.labels(clock.kind, clock.priority).inc)

    @staticmethod
    def _count_stop(clock: SlaClock, uow: UnitOfWork) -> None:
        outcome = "met" if clock.met else "breached"
        uow.after_commit(SLA_CLOCKS_STOPPED.labels(clock.kind, outcome).inc)

    # --- timers --------------------------------------------------------------------------

    def fire_due_timers(self) -> int:
        """Brings the due index up to date, then fires every timer that is due: warnings
        and breaches. Returns how many fired."""
        while self.due.catch_up():
            pass
        now = self.clock.now()
        fired = 0
        with self.due.claim_due(now) as claimed:
            uow = self.store.unit_of_work()
            clocks = [
                uow.get(clock_id, SlaClock) for clock_id in dict.fromkeys(c[0] for c in claimed)
            ]
            for clock in filter(None, clocks):
                for timer, due_at in clock.fire_due(now):  # in the order they fell due
                    uow.add(clock)
                    fired += 1
                    uow.after_commit(partial(self._count_fired, clock, timer, now - due_at))
            # A claimed timer that did not fire and is still pending moved later: keep it.
            pending = {clock.id: clock.timers() for clock in clocks if clock is not None}
            claimed[:] = [t for t in claimed if t[1] not in pending.get(t[0], {})]
            uow.commit()
        self._report_open_clocks()
        return fired

    @staticmethod
    def _count_fired(clock: SlaClock, timer: str, late: timedelta) -> None:
        SLA_TIMER_FIRE_DELAY_SECONDS.observe(late.total_seconds())
        counter = SLA_BREACHES if timer == BREACH else SLA_WARNINGS
        counter.labels(clock.kind, clock.priority).inc()

    def _report_open_clocks(self, every: float = 10) -> None:
        # A count over the whole table: not on every tick.
        if time.monotonic() - self._counted_at >= every:
            SLA_CLOCKS_OPEN.set(self.due.open_count())
            self._counted_at = time.monotonic()

    def timer_loop(self, longest: float, on_fired: Callable[[], None]) -> BackgroundLoop:
        """Fires timers when they fall due, and indexes new clocks as soon as they are
        stored; otherwise sleeps, at most `longest` seconds (another replica's clocks are
        noticed then, though that replica fires them itself)."""

        async def loop(stop: asyncio.Event) -> None:
            while not stop.is_set():
                self._clocks_changed.clear()  # a commit from here on wakes the next look
                try:
                    if await asyncio.to_thread(self.fire_due_timers):
                        on_fired()
                    wait = await asyncio.to_thread(self._until_next_due, longest)
                except Exception:
                    # A clock changed under us (its ticket was answered): try again soon.
                    log.exception("timer_tick_failed")
                    wait = min(longest, RETRY_SECONDS)
                # Commits come in dozens a second under load: index them together.
                spacing = min(wait, INDEX_SPACING_SECONDS)
                await first_of(stop, timeout=spacing)
                await first_of(self._clocks_changed, stop, timeout=wait - spacing)

        return loop

    def _until_next_due(self, longest: float) -> float:
        """Seconds until the next timer is due, at most `longest`. One still due after
        firing (a replica holds it, or its clock moved it) is looked at again shortly."""
        due = self.due.next_due()
        if due is None:
            return longest
        left = (due - self.clock.now()).total_seconds()
        return min(longest, left if left > 0 else RETRY_SECONDS)


def clocks_and_agreement(triaged: m.TicketTriaged) -> list[uuid.UUID]:
    """What `time_ticket` asks the store for, read ahead for a whole batch."""
    clocks = [SlaClock.create_id(ticket_id=triaged.subject_id, kind=kind) for kind in KINDS]
    return [*clocks, triaged.data.agreement_id]


def clock_terms(
    terms: m.AgreementTerms, category: str, opened_at: datetime
) -> tuple[m.Calendar, dict[str, m.Target]]:
    """The calendar and targets a ticket's clocks run on: a trial's while it lasts, else
    the agreement's, with what its extensions give the ticket's category."""
    trial = terms.trial
    if trial is not None:
        local_day = opened_at.astimezone(ZoneInfo(terms.calendar.timezone)).date()
        if local_day <= trial.until:
            return trial.calendar, trial.targets
    calendar = terms.category_calendars.get(category, terms.calendar)
    return calendar, {**terms.targets, **terms.category_targets.get(category, {})}


@dataclass(frozen=True)
class Budgets:
    minutes: dict[str, float] = field(default_factory=dict)
    due_at_opening: list[str] = field(default_factory=list)


def target_budgets(
    calendar: m.Calendar, targets: dict[str, m.Target], kind: str, opened_at: datetime
) -> Budgets:
    """Every priority's target for `kind` in business minutes from `opened_at`. A target in
    working days becomes the open minutes until its deadline by the working-day rule, and
    notes whether that deadline is an opening (business_time.py says why it matters)."""
    business = BusinessCalendar(calendar)
    budgets = Budgets()
    for priority, target in targets.items():
        minutes = getattr(target, f"{kind}_minutes")
        days = getattr(target, f"{kind}_working_days")
        if days is not None:
            minutes, at_opening = business.working_days_as_minutes(opened_at, days)
            if at_opening:
                budgets.due_at_opening.append(priority)
        if minutes is not None:
            budgets.minutes[priority] = float(minutes)
    return budgets
