"""sla-timer's handlers and its timer loop."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable

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
)
from servicedesk_runtime.service import BackgroundLoop
from servicedesk_runtime.store import ServiceStore, UnitOfWork
from servicedesk_sla_timer.business_time import add_business_minutes
from servicedesk_sla_timer.domain import RESPONSE, SlaClock
from servicedesk_sla_timer.due_timers import DueTimers

log = get_logger(__name__)


class SlaTimer:
    def __init__(self, store: ServiceStore, due: DueTimers, clock: Clock) -> None:
        self.store = store
        self.due = due
        self.clock = clock

    def handlers(self) -> dict[str, Handler]:
        return dict(
            [
                handles(m.TicketTriaged, self.start_response_clock),
                handles(m.AgentReplied, self.stop_response_clock),
                handles(m.AgreementRegistered, self.learn_agreement),
            ]
        )

    def start_response_clock(self, triaged: m.TicketTriaged, uow: UnitOfWork) -> None:
        clock = _clock(uow, triaged.subject_id, RESPONSE)
        if clock.opened_at is not None:
            return  # already triaged (a priority change is issue 4's)
        data = triaged.data
        clock.note_triage(data.reference, data.priority, data.opened_at, data.agreement_id)
        terms = terms_or_park(uow, data.agreement_id, clock)
        if terms is not None:  # else started when the agreement arrives
            self._start(clock, terms)

    def stop_response_clock(self, replied: m.AgentReplied, uow: UnitOfWork) -> None:
        clock = _clock(uow, replied.subject_id, RESPONSE)
        was_running = clock.running
        clock.stop(replied.data.replied_at)
        if was_running and not clock.running:
            SLA_CLOCKS_STOPPED.labels(clock.kind, "met" if clock.met else "breached").inc()
            if clock.opened_at is not None:
                waited = (replied.data.replied_at - clock.opened_at).total_seconds()
                FIRST_RESPONSE_SECONDS.labels(clock.priority).observe(max(waited, 0))

    def learn_agreement(self, registered: m.AgreementRegistered, uow: UnitOfWork) -> None:
        for clock in learn_terms(uow, registered, SlaClock):
            self._start(clock, registered.data)

    def _start(self, clock: SlaClock, terms: m.AgreementTerms) -> None:
        assert clock.opened_at is not None
        target = terms.targets[clock.priority].response_minutes
        due_at = add_business_minutes(terms.calendar, clock.opened_at, target)
        clock.start(target_minutes=target, due_at=due_at)
        SLA_CLOCKS_STARTED.labels(clock.kind, clock.priority).inc()

    # --- timers --------------------------------------------------------------------------

    def fire_due_timers(self) -> int:
        """Brings the due index up to date, then breaches every clock past its deadline.
        Returns how many breaches were recorded."""
        while self.due.catch_up():
            pass
        now = self.clock.now()
        breached = 0
        with self.due.claim_due(now) as clock_ids:
            uow = self.store.unit_of_work()
            for clock_id in clock_ids:
                clock = uow.get(clock_id, SlaClock)
                if clock is not None and clock.breach_if_due(now):
                    uow.add(clock)
                    breached += 1
                    SLA_BREACHES.labels(clock.kind, clock.priority).inc()
                    if clock.due_at is not None:
                        delay = (now - clock.due_at).total_seconds()
                        SLA_TIMER_FIRE_DELAY_SECONDS.observe(delay)
            uow.commit()
        SLA_CLOCKS_OPEN.set(self.due.open_count())
        return breached

    def timer_loop(self, interval: float, on_breach: Callable[[], None]) -> BackgroundLoop:
        async def loop(stop: asyncio.Event) -> None:
            while not stop.is_set():
                try:
                    if await asyncio.to_thread(self.fire_due_timers):
                        on_breach()
                except Exception:
                    # A clock changed under us (its ticket was answered): try next tick.
                    log.exception("timer_tick_failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)

        return loop


def _clock(uow: UnitOfWork, ticket_id: uuid.UUID, kind: str) -> SlaClock:
    clock_id = SlaClock.create_id(ticket_id, kind)
    clock = uow.get(clock_id, SlaClock) or SlaClock(ticket_id=ticket_id, kind=kind)
    uow.add(clock)
    return clock
