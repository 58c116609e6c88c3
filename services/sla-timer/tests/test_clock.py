"""SLA clocks on DOMAIN.md calendars: pauses, late facts, priority changes, warnings,
reopened tickets, and outcomes that never change. Exact expected instants."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from servicedesk_contracts.messages import AgreementTerms, Calendar
from servicedesk_sla_timer.application import target_budgets
from servicedesk_sla_timer.domain import BREACH, RESOLUTION, RESPONSE, SlaClock, warning_timer
from servicedesk_stack.demo import provider_r_medium, provider_v_danish, provider_z_premium

CPH = ZoneInfo("Europe/Copenhagen")
BERLIN = ZoneInfo("Europe/Berlin")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
DANISH = Calendar.model_validate(provider_v_danish()["calendar"])
PREMIUM_24X7 = Calendar.model_validate(provider_z_premium()["calendar"])
MONDAY_9 = datetime(2026, 11, 23, 9, 0, tzinfo=CPH)  # Danish: Mon-Thu 08:30-16:00
PAUSED = ["awaiting_reply", "on_hold"]


def clock(
    opened: datetime = MONDAY_9,
    calendar: Calendar = DANISH,
    budgets: dict[str, float] | None = None,
    priority: str = "P3",
    kind: str = RESPONSE,
    before_start: list[tuple[str, str, datetime]] = (),  # type: ignore[assignment]
) -> SlaClock:
    made = SlaClock(ticket_id=uuid.uuid4(), kind=kind)
    made.note_triage("SD-000001", priority, opened, uuid.uuid4())
    for before, after, at in before_start:
        made.observe_status(before, after, at)
    made.start(calendar, budgets or {"P3": 8 * 60}, PAUSED, [0.75, 0.9])
    return made


def test_eight_working_hours_from_monday_nine() -> None:
    # 7 h on Monday (to 16:00), the 8th hour Tuesday from 08:30.
    assert clock().due_at == datetime(2026, 11, 24, 9, 30, tzinfo=CPH)


def test_waiting_for_the_customer_moves_the_deadline_by_exactly_that_business_time() -> None:
    waiting = clock()
    waiting.observe_status("open", "awaiting_reply", MONDAY_9 + timedelta(hours=1))
    waiting.observe_status("awaiting_reply", "in_progress", MONDAY_9 + timedelta(hours=5))
    assert waiting.due_at == datetime(2026, 11, 24, 13, 30, tzinfo=CPH)  # 09:30 + 4 h


def test_a_pause_over_night_counts_only_the_open_hours_it_covered() -> None:
    waiting = clock()
    waiting.observe_status("open", "on_hold", datetime(2026, 11, 23, 15, 0, tzinfo=CPH))
    assert waiting.timers() == {}  # nothing can breach while paused
    waiting.observe_status("on_hold", "open", datetime(2026, 11, 24, 10, 0, tzinfo=CPH))
    # Paused 1 h Monday + 1 h 30 Tuesday morning = 2 h 30 of business time.
    assert waiting.due_at == datetime(2026, 11, 24, 12, 0, tzinfo=CPH)


def test_facts_that_arrive_before_the_clock_can_start_are_applied_in_time_order() -> None:
    late = clock(
        before_start=[
            ("awaiting_reply", "in_progress", MONDAY_9 + timedelta(hours=5)),
            ("open", "awaiting_reply", MONDAY_9 + timedelta(hours=1)),
        ]
    )
    assert late.due_at == datetime(2026, 11, 24, 13, 30, tzinfo=CPH)


def test_a_reply_before_the_clock_started_stops_it_met() -> None:
    made = SlaClock(ticket_id=uuid.uuid4(), kind=RESPONSE)
    made.note_triage("SD-000001", "P3", MONDAY_9, uuid.uuid4())
    made.observe_reply(MONDAY_9 + timedelta(minutes=20))
    made.start(DANISH, {"P3": 480}, PAUSED, [])
    assert made.stopped_at == MONDAY_9 + timedelta(minutes=20)
    assert made.met is True


def test_warnings_come_at_the_plans_thresholds_and_once() -> None:
    running = clock()
    timers = running.timers()
    assert timers[warning_timer(0.75)] == datetime(2026, 11, 23, 15, 0, tzinfo=CPH)  # 6 h in
    # 90 % = 7 h 12: 7 h on Monday, 12 minutes from Tuesday's 08:30 opening.
    assert timers[warning_timer(0.9)] == datetime(2026, 11, 24, 8, 42, tzinfo=CPH)
    at = timers[warning_timer(0.75)]
    assert running.fire_due(at) == [(warning_timer(0.75), at)]
    assert running.fire_due(at) == []
    assert warning_timer(0.75) not in running.timers()


def test_a_breach_is_recorded_once_and_the_late_reply_stops_it_breached() -> None:
    running = clock()
    assert running.due_at is not None
    running.fire_due(running.due_at - timedelta(seconds=1))  # the warnings, not the breach
    assert running.fire_due(running.due_at) == [(BREACH, running.due_at)]
    assert running.fire_due(running.due_at + timedelta(minutes=5)) == []
    assert running.timers() == {}  # no more warnings after a breach
    running.observe_reply(running.due_at + timedelta(hours=1))
    assert running.met is False
    running.retarget("P1", running.due_at + timedelta(hours=2))  # an outcome is a fact
    assert running.priority == "P3"


def test_a_priority_change_recomputes_from_the_original_start() -> None:
    # Z Premium 24x7: P4 8 h, P1 15 min. Opened Sunday 03:00; raised to P1 at 03:30.
    sunday_3 = datetime(2026, 11, 22, 3, 0, tzinfo=BERLIN)
    budgets = {"P1": 15.0, "P4": 480.0}
    raised = clock(opened=sunday_3, calendar=PREMIUM_24X7, budgets=budgets, priority="P4")
    raised.retarget("P1", sunday_3 + timedelta(minutes=30))
    assert raised.due_at == sunday_3 + timedelta(minutes=15)  # already past: breaches now
    fired = raised.fire_due(sunday_3 + timedelta(minutes=30))  # 75 %, 90 %, then the breach
    assert [timer for timer, _ in fired] == [warning_timer(0.75), warning_timer(0.9), BREACH]
    assert fired[-1][1] == sunday_3 + timedelta(minutes=15)
    lowered = clock(opened=sunday_3, calendar=PREMIUM_24X7, budgets=budgets, priority="P1")
    lowered.retarget("P4", sunday_3 + timedelta(minutes=10))
    assert lowered.due_at == sunday_3 + timedelta(hours=8)


def test_a_priority_change_keeps_the_time_already_spent_across_a_pause() -> None:
    budgets = {"P2": 240.0, "P3": 480.0}
    paused = clock(budgets=budgets)
    paused.observe_status("open", "awaiting_reply", MONDAY_9 + timedelta(hours=1))
    paused.retarget("P2", MONDAY_9 + timedelta(hours=2))  # while paused: due set on resume
    paused.observe_status("awaiting_reply", "open", MONDAY_9 + timedelta(hours=3))
    # 1 h spent before the pause, 3 h left of P2's 4 h from 12:00 -> 15:00.
    assert paused.due_at == MONDAY_9 + timedelta(hours=6)


def test_a_reopened_ticket_resumes_its_resolution_clock() -> None:
    resolution = clock(kind=RESOLUTION, budgets={"P3": 16 * 60})
    resolution.observe_status("in_progress", "closed", MONDAY_9 + timedelta(hours=2))
    assert resolution.met is True
    reopened_at = datetime(2026, 11, 25, 9, 0, tzinfo=CPH)
    resolution.observe_status("closed", "open", reopened_at)
    assert resolution.running
    # 2 h used, 14 h left from Wednesday 09:00: 7 h Wed, 7 h from Thursday 08:30.
    assert resolution.due_at == datetime(2026, 11, 26, 15, 30, tzinfo=CPH)


def test_working_day_targets_become_business_minutes_from_the_start() -> None:
    terms = AgreementTerms.model_validate(provider_r_medium())  # C: 2 working days
    tuesday_14 = datetime(2026, 11, 24, 14, 0, tzinfo=AMSTERDAM)
    budgets = target_budgets(terms.calendar, terms.targets, RESPONSE, tuesday_14)
    assert budgets.minutes["C"] == (3 + 8 + 5) * 60  # Tue 14-17, Wed 9-17, Thu 9-14
    assert budgets.minutes["A"] == 120
    resolution = target_budgets(terms.calendar, terms.targets, RESOLUTION, tuesday_14)
    assert resolution.minutes == {"A": 8 * 60, "B": 16 * 60}  # C and D are "by planning": no clock


def test_a_priority_without_a_target_of_this_kind_runs_untimed() -> None:
    # R: C has no resolution target ("by planning"); an A lowered to C stops being timed.
    resolution = clock(kind=RESOLUTION, budgets={"A": 8 * 60}, priority="A")
    resolution.retarget("C", MONDAY_9 + timedelta(hours=1))
    assert resolution.timers() == {}
    assert resolution.due_at is None
    resolution.observe_status("open", "closed", MONDAY_9 + timedelta(days=30))
    assert resolution.met is True


def test_a_backdated_ticket_records_each_timer_at_its_instant_in_threshold_order() -> None:
    # A phone call of Monday 09:00 logged on Wednesday: every timer is overdue at once.
    logged_late = clock()
    noticed = datetime(2026, 11, 25, 11, 0, tzinfo=CPH)
    due_at = datetime(2026, 11, 24, 9, 30, tzinfo=CPH)
    assert logged_late.fire_due(noticed) == [
        (warning_timer(0.75), datetime(2026, 11, 23, 15, 0, tzinfo=CPH)),
        (warning_timer(0.9), datetime(2026, 11, 24, 8, 42, tzinfo=CPH)),
        (BREACH, due_at),
    ]
    warned_75, warned_90, breached = logged_late.collect_events()[-3:]
    assert (warned_75.threshold, warned_90.threshold) == (0.75, 0.9)
    assert warned_90.warned_at == datetime(2026, 11, 24, 8, 42, tzinfo=CPH)
    assert (breached.breached_at, breached.due_at, breached.noticed_at) == (due_at, due_at, noticed)
    assert warned_75.noticed_at == noticed


def test_a_pause_after_an_unnoticed_deadline_keeps_the_breach_at_the_deadline() -> None:
    # Facts replayed late: the ticket went to awaiting_reply on Wednesday, after its
    # deadline (Tuesday 09:30) that nobody had noticed yet.
    late = clock(
        before_start=[("open", "awaiting_reply", datetime(2026, 11, 25, 10, 0, tzinfo=CPH))]
    )
    assert late.breached
    assert late.warned == [0.75, 0.9]
    late.observe_status("awaiting_reply", "open", datetime(2026, 11, 26, 10, 0, tzinfo=CPH))
    assert late.timers() == {}  # breached once, at the deadline, not again at the resume
    breached = next(e for e in late.collect_events() if isinstance(e, SlaClock.Breached))
    assert breached.breached_at == datetime(2026, 11, 24, 9, 30, tzinfo=CPH)


def test_a_response_met_by_a_reply_that_waits_for_the_customer_stays_met() -> None:
    """The agent answers and asks something (awaiting_reply); the customer's answer puts
    the ticket back in progress. The response target was met at the reply: it must not run
    again (found by a new user's trial, 2026-11-28)."""
    answered = clock()
    reply_at = MONDAY_9 + timedelta(hours=1)
    answered.observe_reply(reply_at)
    answered.observe_status("open", "awaiting_reply", reply_at)
    answered.observe_status("awaiting_reply", "in_progress", MONDAY_9 + timedelta(hours=3))
    assert answered.stopped_at == reply_at
    assert answered.timers() == {}  # nothing left to fire: it can never breach now
