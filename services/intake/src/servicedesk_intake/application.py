"""Intake's handlers: one per command, each a few lines (load, decide, add)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_contracts.envelope import STORED
from servicedesk_contracts.messages import derived_id, ticket_id_for_request
from servicedesk_intake.domain import AgentDay, AgentTimer, Ticket, TicketRuleBroken, days_touched
from servicedesk_intake.mail_desk import link_both, open_ticket, opening_reads
from servicedesk_runtime.agreements import known_terms
from servicedesk_runtime.clock import Clock
from servicedesk_runtime.consumer import Handler, Rejected, handles
from servicedesk_runtime.metrics import (
    TICKET_REQUESTS_REJECTED,
    TICKET_STATUS_CHANGES,
)
from servicedesk_runtime.store import UnitOfWork

CLOCK_SKEW = timedelta(minutes=2)
"""How far in the future a request's timestamp may be before it is refused."""


class Intake:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def handlers(self) -> dict[str, Handler]:
        return dict(
            [
                handles(m.SubmitTicket, self.submit_ticket, reads=submit_reads),
                handles(m.ChangeTicketStatus, self.change_status),
                handles(m.ReplyAsAgent, self.reply_as_agent),
                handles(m.AddInternalNote, self.add_internal_note),
                handles(m.LinkTickets, self.link_tickets),
                handles(m.SplitTicket, self.split_ticket),
                handles(m.ChangeTicketPriority, self.change_priority),
                handles(m.AssignTicket, self.assign),
                handles(m.AddCustomerReply, self.add_customer_reply),
                handles(m.LogTime, self.log_time),
                handles(m.StartTimer, self.start_timer),
                handles(m.StopTimer, self.stop_timer),
            ]
        )

    def submit_ticket(self, command: m.SubmitTicket, uow: UnitOfWork) -> None:
        """Opens the requested ticket (reads: `submit_reads`)."""
        ticket_id = ticket_id_for_request(command.event_id)
        if uow.get(ticket_id, Ticket) is not None:
            return  # the same request again: it opened its ticket already
        if command.occurred_at > self.clock.now() + CLOCK_SKEW:
            uow.after_commit(TICKET_REQUESTS_REJECTED.labels("future_timestamp").inc)
            raise Rejected(
                "future_timestamp",
                f"occurred_at {command.occurred_at.isoformat()} is in the future",
            )
        request = command.data
        terms = known_terms(uow, request.agreement_id)
        if (
            terms is not None
            and terms.channels is not None
            and request.channel not in terms.channels
        ):
            uow.after_commit(TICKET_REQUESTS_REJECTED.labels("channel_not_allowed").inc)
            raise Rejected(
                "channel_not_allowed",
                f"{terms.customer}'s agreement takes no {request.channel} requests: only "
                + ", ".join(terms.channels),
            )
        if request.language is None and terms is not None and terms.mail is not None:
            request = request.model_copy(update={"language": terms.mail.language})
        open_ticket(uow, request, command.occurred_at, command.event_id)

    def change_status(self, command: m.ChangeTicketStatus, uow: UnitOfWork) -> None:
        ticket = _ticket(command, uow)
        with _refusals(uow):
            data = command.data
            ticket.change_status(data.status, data.changed_by, data.reason, command.occurred_at)
        uow.add(ticket)
        uow.after_commit(TICKET_STATUS_CHANGES.labels(command.data.status).inc)

    def change_priority(self, command: m.ChangeTicketPriority, uow: UnitOfWork) -> None:
        ticket = _ticket(command, uow)
        data = command.data
        with _refusals(uow):
            ticket.request_priority_change(
                data.priority, data.changed_by, data.by_customer, data.reason, command.occurred_at
            )
        uow.add(ticket)

    def assign(self, command: m.AssignTicket, uow: UnitOfWork) -> None:
        ticket = _ticket(command, uow)
        data = command.data
        with _refusals(uow):
            ticket.assign(
                data.assignee,
                data.group,
                data.assigned_by,
                data.reason,
                data.assignee_email,
                command.occurred_at,
            )
        uow.add(ticket)

    def reply_as_agent(self, command: m.ReplyAsAgent, uow: UnitOfWork) -> None:
        ticket = _ticket(command, uow)
        data = command.data
        with _refusals(uow):
            ticket.reply_as_agent(data.agent, data.body, command.occurred_at, data.next_status)
        uow.add(ticket)

    def add_internal_note(self, command: m.AddInternalNote, uow: UnitOfWork) -> None:
        ticket = _ticket(command, uow)
        ticket.add_internal_note(command.data.author, command.data.body, command.occurred_at)
        uow.add(ticket)

    def add_customer_reply(self, command: m.AddCustomerReply, uow: UnitOfWork) -> None:
        ticket = _ticket(command, uow)
        data = command.data
        ticket.add_customer_reply(
            data.author_email,
            data.body,
            command.occurred_at,
            channel=data.channel,
            author_name=data.author_name,
        )
        uow.add(ticket)

    def link_tickets(self, command: m.LinkTickets, uow: UnitOfWork) -> None:
        ticket = _ticket(command, uow)
        data = command.data
        other = uow.get(data.other_ticket_id, Ticket)
        if other is None:
            uow.after_commit(TICKET_REQUESTS_REJECTED.labels("unknown_ticket").inc)
            raise Rejected("unknown_ticket", f"no ticket {data.other_ticket_id} to link to")
        with _refusals(uow):
            link_both(ticket, data.kind, other, data.linked_by, command.occurred_at)
        uow.add(ticket)
        uow.add(other)

    def split_ticket(self, command: m.SplitTicket, uow: UnitOfWork) -> None:
        """A new ticket for one subject of the original's request: same reporter,
        agreement and receipt time, linked both ways."""
        if uow.get(ticket_id_for_request(command.event_id), Ticket) is not None:
            return  # the same split again
        original = _ticket(command, uow)
        data = command.data
        changes = {"subject": data.subject, "body": data.body, "message_id": None}
        for term in ("category", "impact", "urgency"):
            if getattr(data, term) is not None:
                changes[term] = getattr(data, term)
        request = {**original.request, **changes, "attachments": []}
        part = open_ticket(
            uow,
            m.TicketRequest.model_validate(request, context=STORED),
            original.received_at,
            command.event_id,
        )
        link_both(part, "split_from", original, data.split_by, command.occurred_at)
        uow.add(original)

    def log_time(self, command: m.LogTime, uow: UnitOfWork) -> None:
        data = command.data
        self._log(
            uow,
            _ticket(command, uow),
            derived_id("time-entry", command.event_id),
            data.agent,
            data.started_at,
            data.duration_minutes,
            data.work_type,
            data.billable,
            "timesheet",
        )

    def start_timer(self, command: m.StartTimer, uow: UnitOfWork) -> None:
        ticket = _ticket(command, uow)
        timer = uow.get_or_create(AgentTimer, agent=command.data.agent)
        with _refusals(uow):
            timer.start(ticket.id, ticket.reference, command.occurred_at)

    def stop_timer(self, command: m.StopTimer, uow: UnitOfWork) -> None:
        ticket = _ticket(command, uow)
        data = command.data
        timer = uow.get_or_create(AgentTimer, agent=data.agent)
        with _refusals(uow):
            started, minutes = timer.stop(ticket.id, command.occurred_at)
        self._log(
            uow,
            ticket,
            derived_id("time-entry", command.event_id),
            data.agent,
            started,
            minutes,
            data.work_type,
            data.billable,
            "timer",
        )

    def _log(
        self,
        uow: UnitOfWork,
        ticket: Ticket,
        entry_id: uuid.UUID,
        agent: str,
        started_at: datetime,
        minutes: int,
        work_type: str,
        billable: bool,
        source: str,
    ) -> None:
        """Checks a time entry (not in the future, no overlap with the agent's other time)
        and records it on the ticket and the agent's days."""
        end = started_at + timedelta(minutes=minutes)
        if end > self.clock.now() + CLOCK_SKEW:
            uow.after_commit(TICKET_REQUESTS_REJECTED.labels("future_time").inc)
            raise Rejected("future_time", f"time entry ends at {end.isoformat()}, in the future")
        days = [
            uow.get(AgentDay.create_id(agent, day), AgentDay) or AgentDay(agent=agent, day=day)
            for day in days_touched(started_at, end)
        ]
        for day in days:
            clash = day.overlap(started_at, end)
            if clash is not None:
                uow.after_commit(TICKET_REQUESTS_REJECTED.labels("overlapping_time").inc)
                raise Rejected(
                    "overlapping_time",
                    f"{agent} already logged {clash['start'].isoformat()} to "
                    f"{clash['end'].isoformat()} on {clash['reference']}",
                )
        for day in days:
            day.add(entry_id, ticket.reference, started_at, end)
            uow.add(day)
        ticket.log_time(
            entry_id=entry_id,
            agent=agent,
            started_at=started_at,
            duration_minutes=minutes,
            work_type=work_type,
            billable=billable,
            source=source,
        )
        uow.add(ticket)


def _ticket(command: Message, uow: UnitOfWork) -> Ticket:
    ticket = uow.get(command.subject_id, Ticket)
    if ticket is None:
        uow.after_commit(TICKET_REQUESTS_REJECTED.labels("unknown_ticket").inc)
        raise Rejected("unknown_ticket", f"no ticket {command.subject_id}")
    return ticket


@contextmanager
def _refusals(uow: UnitOfWork) -> Iterator[None]:
    """Turns a ticket's refusal into a `Rejected` message (the ticket changed nothing)."""
    try:
        yield
    except TicketRuleBroken as error:
        uow.after_commit(TICKET_REQUESTS_REJECTED.labels(error.reason).inc)
        raise Rejected(error.reason, str(error)) from error


def submit_reads(command: m.SubmitTicket) -> list[uuid.UUID]:
    """What `submit_ticket` asks the store for, read ahead for a whole batch."""
    ticket_id = ticket_id_for_request(command.event_id)
    return [ticket_id, command.data.agreement_id, *opening_reads(command.data)]
