"""A ticket's facts in order, each told with who, what and why (pure: no I/O).

This is the "explain this deadline" view: a clock that starts says its target, its
calendar and which closed days lie between start and deadline; a clock that pauses,
resumes or is retargeted names the status or priority change that moved it; a breach
says its deadline and when it was noticed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from servicedesk_contracts import calendars
from servicedesk_contracts.messages import Calendar

Entry = dict[str, Any]
MAX_CLOSED_DAYS_LISTED = 60


def timeline(facts: list[tuple[str, dict[str, Any]]], calendar: Calendar | None) -> list[Entry]:
    """`facts`: (event type, message JSON) in time order. `calendar`: the agreement's, if
    the view knows it."""
    entries: list[Entry] = []
    last_cause: dict[str, Entry] = {}  # the latest status and priority change
    for kind, message in facts:
        entry = _entry(kind, message, calendar, last_cause)
        if entry is None:
            continue
        entries.append(entry)
        if kind == "TicketStatusChanged":
            last_cause["status"] = entry
        elif kind == "TicketTriaged":
            last_cause["priority"] = entry
    return entries


def _entry(
    kind: str, message: dict[str, Any], calendar: Calendar | None, causes: dict[str, Entry]
) -> Entry | None:
    data = message.get("data", {})
    at = message.get("occurred_at")
    telling = _TELLERS.get(kind)
    if telling is None:
        return None
    told = telling(data, calendar, causes)
    return {"at": at, "event": kind, "event_id": message.get("event_id"), **told}


def _opened(data: dict[str, Any], _: Calendar | None, __: dict[str, Entry]) -> Entry:
    return {
        "who": f"{data['reporter_name']} <{data['reporter_email']}>",
        "what": f"opened {data['reference']} by {data['channel']}: {data['subject']}",
        "why": None,
        "details": {
            "received_at": data["received_at"],
            "category": data["category"],
            "impact": data["impact"],
            "urgency": data["urgency"],
            "requested_priority": data.get("requested_priority"),
            "body": data["body"],
        },
    }


def _status(data: dict[str, Any], _: Calendar | None, __: dict[str, Entry]) -> Entry:
    return {
        "who": data["changed_by"],
        "what": f"status {data['from_status']} -> {data['to_status']}",
        "why": data.get("reason") or None,
        "details": {"changed_at": data.get("changed_at")},
    }


def _triaged(data: dict[str, Any], _: Calendar | None, __: dict[str, Entry]) -> Entry:
    return {
        "who": data.get("decided_by", "triage"),
        "what": f"priority {data['priority']}",
        "why": data["reason"],
        "details": {
            "matrix": data["matrix"],
            "impact": data["impact"],
            "urgency": data["urgency"],
            "requested_priority": data.get("requested_priority"),
        },
    }


def _assigned(data: dict[str, Any], _: Calendar | None, __: dict[str, Entry]) -> Entry:
    def who(agent: str | None, group: str | None) -> str:
        return " in ".join(part for part in (agent or "nobody", group) if part)

    return {
        "who": data["assigned_by"],
        "what": f"assigned to {who(data.get('assignee'), data.get('group'))} (was "
        f"{who(data.get('previous_assignee'), data.get('previous_group'))})",
        "why": data.get("reason") or None,
        "details": {"assigned_at": data["assigned_at"]},
    }


def _agent_replied(data: dict[str, Any], _: Calendar | None, __: dict[str, Entry]) -> Entry:
    return {"who": data["agent"], "what": "replied", "why": None, "details": {"body": data["body"]}}


def _customer_replied(data: dict[str, Any], _: Calendar | None, __: dict[str, Entry]) -> Entry:
    return {
        "who": data.get("author_name") or data["author_email"],
        "what": "customer replied",
        "why": None,
        "details": {"body": data["body"]},
    }


def _internal_note(data: dict[str, Any], _: Calendar | None, __: dict[str, Entry]) -> Entry:
    return {
        "who": data["author"],
        "what": "added an internal note",
        "why": None,
        "details": {"body": data["body"]},
    }


def _linked(data: dict[str, Any], _: Calendar | None, __: dict[str, Entry]) -> Entry:
    return {
        "who": data["linked_by"],
        "what": f"{data['kind'].replace('_', ' ')} {data['other_reference']}",
        "why": None,
        "details": {"ticket_id": data["other_ticket_id"]},
    }


def _time_logged(data: dict[str, Any], _: Calendar | None, __: dict[str, Entry]) -> Entry:
    billable = "billable" if data.get("billable", True) else "not billable"
    return {
        "who": data["agent"],
        "what": f"logged {data['duration_minutes']} min of {data['work_type']} ({billable})",
        "why": None,
        "details": {"started_at": data["started_at"]},
    }


def _clock_started(data: dict[str, Any], calendar: Calendar | None, _: dict[str, Entry]) -> Entry:
    details: dict[str, Any] = {
        "target_business_minutes": data["target_minutes"],
        "started_at": data["started_at"],
        "due_at": data["due_at"],
    }
    if calendar is not None:
        details["calendar"] = _calendar_summary(calendar)
        details["closed_days_skipped"] = closed_days_between(
            calendar, data["started_at"], data["due_at"]
        )
    return {
        "who": "sla-timer",
        "what": f"{data['kind']} clock started: {data['target_minutes']:g} business minutes "
        f"for {data['priority']}, due {data['due_at']}",
        "why": f"the agreement's target for {data['priority']}",
        "details": details,
    }


def _clock_paused(data: dict[str, Any], _: Calendar | None, causes: dict[str, Entry]) -> Entry:
    return {
        "who": "sla-timer",
        "what": f"{data['kind']} clock paused after {data['spent_minutes']:g} business minutes",
        "why": _because(causes.get("status")),
        "details": {"paused_at": data["paused_at"]},
    }


def _clock_resumed(data: dict[str, Any], _: Calendar | None, causes: dict[str, Entry]) -> Entry:
    due = data.get("due_at")
    return {
        "who": "sla-timer",
        "what": f"{data['kind']} clock resumed, due {due}"
        if due
        else f"{data['kind']} clock resumed, untimed",
        "why": _because(causes.get("status")),
        "details": {"resumed_at": data["resumed_at"]},
    }


def _clock_retargeted(data: dict[str, Any], _: Calendar | None, causes: dict[str, Entry]) -> Entry:
    target = data.get("target_minutes")
    aim = f"{target:g} business minutes" if target is not None else "no target"
    return {
        "who": "sla-timer",
        "what": f"{data['kind']} clock retargeted to {data['priority']}: {aim}, due "
        f"{data.get('due_at')}, {data['spent_minutes']:g} minutes already spent",
        "why": _because(causes.get("priority")),
        "details": {"retargeted_at": data["retargeted_at"]},
    }


def _warning(data: dict[str, Any], _: Calendar | None, __: dict[str, Entry]) -> Entry:
    return {
        "who": "sla-timer",
        "what": f"{data['kind']} clock at {data['threshold']:.0%} of its target, due "
        f"{data['due_at']}",
        "why": None,
        "details": {"warned_at": data["warned_at"], "noticed_at": data.get("noticed_at")},
    }


def _breached(data: dict[str, Any], _: Calendar | None, __: dict[str, Entry]) -> Entry:
    noticed = data.get("noticed_at")
    return {
        "who": "sla-timer",
        "what": f"{data['kind']} target breached at its deadline {data['breached_at']}",
        "why": f"noticed at {noticed}" if noticed and noticed != data["breached_at"] else None,
        "details": {"due_at": data["due_at"], "noticed_at": noticed},
    }


def _stopped(data: dict[str, Any], _: Calendar | None, causes: dict[str, Entry]) -> Entry:
    outcome = "met" if data["met"] else "missed"
    spent = data.get("spent_minutes")
    used = f" after {spent:g} business minutes" if spent is not None else ""
    return {
        "who": "sla-timer",
        "what": f"{data['kind']} clock stopped: target {outcome}{used}",
        "why": _because(causes.get("status")),
        "details": {"stopped_at": data["stopped_at"], "due_at": data.get("due_at")},
    }


def _notification(outcome: str) -> Any:
    def tell(data: dict[str, Any], _: Calendar | None, __: dict[str, Entry]) -> Entry:
        return {
            "who": "notifier",
            "what": f"mail {outcome}: {data['subject_line']}",
            "why": None,
            "details": {},
        }

    return tell


def _because(cause: Entry | None) -> str | None:
    if cause is None:
        return None
    why = f" ({cause['why']})" if cause.get("why") else ""
    return f"{cause['what']} by {cause['who']}{why}"


_TELLERS = {
    "TicketOpened": _opened,
    "TicketStatusChanged": _status,
    "TicketTriaged": _triaged,
    "TicketAssigned": _assigned,
    "AgentReplied": _agent_replied,
    "CustomerReplied": _customer_replied,
    "InternalNoteAdded": _internal_note,
    "TicketLinked": _linked,
    "TimeLogged": _time_logged,
    "SlaClockStarted": _clock_started,
    "SlaClockPaused": _clock_paused,
    "SlaClockResumed": _clock_resumed,
    "SlaClockRetargeted": _clock_retargeted,
    "SlaWarning": _warning,
    "SlaBreached": _breached,
    "SlaClockStopped": _stopped,
    "Notification.sent": _notification("sent"),
    "Notification.failed": _notification("failed"),
}


def _calendar_summary(calendar: Calendar) -> dict[str, Any]:
    return {
        "timezone": calendar.timezone,
        "always_open": calendar.always_open,
        "weekly_hours": {
            day: [f"{i.opens:%H:%M}-{i.closes:%H:%M}" for i in intervals]
            for day, intervals in calendar.weekly_hours.items()
        },
        "holidays_country": calendar.holidays_country,
        "holidays_subdivision": calendar.holidays_subdivision,
    }


def closed_days_between(calendar: Calendar, start: str, end: str) -> list[dict[str, str]]:
    """The local dates from `start` to `end` (inclusive) on which the calendar is closed,
    each with why (at most `MAX_CLOSED_DAYS_LISTED`)."""
    zone = ZoneInfo(calendar.timezone)
    first = datetime.fromisoformat(start).astimezone(zone).date()
    last = datetime.fromisoformat(end).astimezone(zone).date()
    closed: list[dict[str, str]] = []
    day: date = first
    while day <= last and len(closed) < MAX_CLOSED_DAYS_LISTED:
        why = calendars.why_closed(calendar, day)
        if why is not None:
            closed.append({"date": day.isoformat(), "why": why})
        day += timedelta(days=1)
    return closed
