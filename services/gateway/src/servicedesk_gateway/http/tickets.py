"""Tickets: submitted, listed, read, explained and worked (status, priority, replies,
time, assignment)."""

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from servicedesk_contracts import Message, matrices, topics
from servicedesk_contracts import messages as m
from servicedesk_contracts.envelope import STORED
from servicedesk_gateway.auth import Caller
from servicedesk_gateway.http import models
from servicedesk_gateway.http.common import (
    PRODUCER,
    Accepted,
    AgentCaller,
    AnyCaller,
    TicketKey,
    accepted,
    actor_of,
    blob_response,
    page_of,
    read,
    require_agreement,
    sees_agreement,
    send,
    ticket_json,
    ticket_or_404,
    unprocessable,
    view_of,
)
from servicedesk_gateway.http.models import COMMON_RESPONSES, CONFLICT, FORBIDDEN, NOT_FOUND
from servicedesk_gateway.view.conversation import attachments_of, conversation
from servicedesk_gateway.view.queries import Sort, TicketFilter
from servicedesk_gateway.view.timeline import timeline

router = APIRouter(responses=COMMON_RESPONSES)


class TicketSubmission(m.TicketRequest):
    channel: m.Channel = "portal"
    # Set by intake's mail desk only: a caller may not name mail or blobs of its own.
    message_id: SkipJsonSchema[None] = None
    attachments: SkipJsonSchema[list[None]] = Field(default_factory=list, max_length=0)  # type: ignore[assignment]
    received_at: m.UtcDatetime | None = Field(
        default=None,
        description="When the request came in, for one logged afterwards (a phone call): "
        "not in the future and at most 7 days ago. The SLA clocks start here. Default: now.",
    )


MAX_BACKDATE = timedelta(days=7)
"""How long after a call its ticket may still be logged with the call's time."""


class StatusChange(BaseModel):
    status: m.TicketStatus
    reason: str = ""


class PriorityChange(BaseModel):
    priority: m.PriorityName
    reason: m.Reason
    by_customer: bool = False
    """Set when passing on the customer's own override (portal); the agreement decides."""


class AgentReply(BaseModel):
    body: m.Text
    next_status: m.TicketStatus | None = Field(
        default=None,
        description="Moves the ticket on with the reply (agents only), e.g. awaiting_reply "
        "when the reply asks the customer something (the SLA clock pauses there).",
    )


class InternalNote(BaseModel):
    body: m.Text


class Link(BaseModel):
    kind: m.LinkAsked
    other: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="The other ticket: its id or its reference (SD-000123)."
    )


class Split(BaseModel):
    subject: m.Subject
    body: m.Text
    category: m.Label | None = None
    impact: m.Label | None = None
    urgency: m.Label | None = None


class TimeEntry(BaseModel):
    started_at: m.UtcDatetime
    duration_minutes: Annotated[int, Field(gt=0, le=24 * 60)]
    work_type: m.WorkType = "support"
    billable: bool = True


class Timer(BaseModel):
    work_type: m.WorkType = "support"
    billable: bool = True


class Assignment(BaseModel):
    assignee: m.Name | None = None
    group: m.Label | None = None
    reason: Annotated[str, Field(max_length=2000)] = ""
    """Needed when the ticket is taken from the agent who has it."""


@router.post("/tickets", status_code=202, tags=["tickets"], responses=FORBIDDEN)
async def submit_ticket(request: Request, body: TicketSubmission, who: AnyCaller) -> Accepted:
    """A customer submits for their own organisation (and agreement) only: 403 otherwise.
    Impact and urgency must be words of the agreement's matrix where it applies (422
    naming them and the words it knows)."""
    return await submit(request, who, body)


async def submit(request: Request, who: Caller, body: TicketSubmission) -> Accepted:
    """A ticket request, checked and sent (the JSON API and the portal)."""
    agreement = await read(view_of(request).agreement, body.agreement_id)  # once, for all
    if who.is_customer:
        _require_own(who, body, agreement)
    require_agreement(request, body.agreement_id, agreement)
    _require_matrix_words(body, agreement)
    _require_channel(body, agreement)
    received_at = _arrival(body.received_at, request.app.state.now())
    request_id = uuid.uuid4()
    message = m.SubmitTicket.create(
        producer=PRODUCER,
        subject_id=request_id,
        event_id=request_id,
        data=m.TicketRequest.model_validate(body.model_dump(exclude={"received_at"})),
        occurred_at=received_at,  # intake opens the ticket as received at this instant
        actor=actor_of(request),
    )
    await request.app.state.publish(topics.INBOUND, message)
    ticket_id = m.ticket_id_for_request(request_id)
    return accepted(ticket_id, request_id, f"/tickets/{ticket_id}")


INTERNAL_FACTS = frozenset(
    {
        "TimeLogged",
        "TicketAssigned",
        "SlaWarning",
        "Notification.sent",
        "Notification.failed",
        "InternalNoteAdded",
    }
)
"""Timeline entries a customer does not see: time, assignment, warnings, the desk's mail,
internal notes."""


def _require_own(who: Caller, body: TicketSubmission, agreement: dict[str, Any] | None) -> None:
    if body.organisation != who.organisation:
        detail = f"you may submit tickets for {who.organisation} only"
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail)
    if agreement is None or not sees_agreement(who, agreement):
        detail = f"agreement {body.agreement_id} is not one of {who.organisation}'s"
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail)


def _require_matrix_words(body: TicketSubmission, agreement: dict[str, Any] | None) -> None:
    """Triage would give a request with words its matrix does not know the lowest priority
    (traceably, for requests from other systems); at the door they are named instead."""
    matrix = matrices.MATRICES.get(agreement["matrix"]) if agreement else None
    if matrix is None or not matrix.applies(body.category):
        return
    problems = matrix.unknown_words(body.impact, body.urgency)
    if problems:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {"loc": ["body", field], "msg": message, "type": "unknown_word"}
                for field, message in problems.items()
            ],
        )


def _require_channel(body: TicketSubmission, agreement: dict[str, Any] | None) -> None:
    """An agreement may take requests by some channels only (provider V Basic: portal and
    e-mail, no phone)."""
    allowed = agreement.get("channels") if agreement else None
    if agreement is None or allowed is None or body.channel in allowed:
        return
    detail = f"{agreement['customer']}'s agreement takes no {body.channel} requests"
    raise unprocessable("channel", f"{detail}: only {', '.join(allowed)}", "channel_not_allowed")


def _arrival(given: datetime | None, now: datetime) -> datetime:
    if given is None:
        return now
    if given > now:
        raise unprocessable("received_at", f"{given.isoformat()} is in the future", "future_time")
    if given < now - MAX_BACKDATE:
        detail = f"{given.isoformat()} is more than {MAX_BACKDATE.days} days ago"
        raise unprocessable("received_at", detail, "too_old")
    return given


@router.get("/tickets", tags=["tickets"])
async def list_tickets(
    request: Request,
    _: AnyCaller,
    status_is: Annotated[list[m.TicketStatus] | None, Query(alias="status")] = None,
    priority: Annotated[list[Annotated[str, Field(max_length=10)]] | None, Query()] = None,
    agreement_id: uuid.UUID | None = None,
    organisation: Annotated[str | None, Query(max_length=200)] = None,
    assignee: Annotated[str | None, Query(max_length=200)] = None,
    unassigned: bool | None = None,
    group: Annotated[str | None, Query(max_length=200)] = None,
    channel: m.Channel | None = None,
    category: Annotated[str | None, Query(max_length=60)] = None,
    breached: bool | None = None,
    at_risk: Annotated[
        bool | None, Query(description="A clock still running past its first warning.")
    ] = None,
    waiting_on_customer: bool | None = None,
    q: Annotated[
        str | None,
        Query(
            max_length=500,
            description="Words that must all be in the subject, description or a message.",
        ),
    ] = None,
    sort: Annotated[
        str,
        Query(
            pattern=r"^-?(due|received|updated|priority)$",
            description="due (next deadline), received, updated or priority; a leading "
            "minus sorts descending.",
        ),
    ] = "-received",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> models.TicketPage:
    """Tickets in a stable order, a page at a time, narrowed by every filter given."""
    where = TicketFilter(
        status=status_is or (),
        priority=priority or (),
        agreement_id=agreement_id,
        organisation=organisation,
        assignee=assignee,
        unassigned=unassigned,
        group=group,
        channel=channel,
        category=category,
        breached=breached,
        at_risk=at_risk,
        waiting_on_customer=waiting_on_customer,
        text=q,
    )
    return await page_of(request, where, Sort.parse(sort), cursor, limit)


@router.get("/tickets/{ticket_id}", tags=["tickets"], responses=NOT_FOUND)
async def get_ticket(request: Request, ticket_id: TicketKey, who: AnyCaller) -> models.Ticket:
    """With the mail sent about it (for staff: alerts go to the on-call address)."""
    ticket = await ticket_or_404(request, ticket_id)
    if who.is_customer:
        return ticket_json(ticket, for_customer=True)
    notifications = await read(view_of(request).notifications, ticket.reference)
    return ticket_json(ticket, notifications)


@router.get("/tickets/{ticket_id}/timeline", tags=["tickets"], responses=NOT_FOUND)
async def get_timeline(request: Request, ticket_id: TicketKey, who: AnyCaller) -> models.Timeline:
    """Every fact of the ticket in order, with who and why: status, priority and
    assignment changes, messages, time, mail, and each SLA clock's start (target,
    calendar, closed days skipped), pauses, resumptions, warnings, breach and stop."""
    ticket = await ticket_or_404(request, ticket_id)
    facts = await read(view_of(request).ticket_events, ticket)
    calendar = None
    if ticket.agreement_id is not None:
        agreement = await read(view_of(request).agreement, ticket.agreement_id)
        if agreement is not None:
            calendar = m.Calendar.model_validate(agreement["calendar"], context=STORED)
    told = timeline(facts, calendar)
    if who.is_customer:  # the desk's own workings stay inside
        told = [entry for entry in told if entry["event"] not in INTERNAL_FACTS]
    entries = [models.TimelineEntry(**entry) for entry in told]
    return models.Timeline(ticket_id=ticket.ticket_id, reference=ticket.reference, entries=entries)


async def _ticket_command(request: Request, key: str, kind: type[Message], data: Any) -> Accepted:
    """Sends a command about an existing ticket to intake."""
    ticket_id = (await ticket_or_404(request, key)).ticket_id
    sent = await send(request, topics.INBOUND, kind, ticket_id, data)
    return accepted(ticket_id, sent, f"/tickets/{ticket_id}")


@router.post(
    "/tickets/{ticket_id}/status",
    status_code=202,
    tags=["tickets"],
    responses={**NOT_FOUND, **FORBIDDEN},
)
async def change_status(
    request: Request, ticket_id: TicketKey, body: StatusChange, who: AgentCaller
) -> Accepted:
    data = m.ChangeTicketStatusData(status=body.status, changed_by=who.name, reason=body.reason)
    return await _ticket_command(request, ticket_id, m.ChangeTicketStatus, data)


@router.post(
    "/tickets/{ticket_id}/priority",
    status_code=202,
    tags=["tickets"],
    responses={**NOT_FOUND, **FORBIDDEN},
)
async def change_priority(
    request: Request, ticket_id: TicketKey, body: PriorityChange, who: AgentCaller
) -> Accepted:
    """Triage decides: an unknown priority, or a customer override the agreement does not
    allow, is refused (dead-lettered with the reason); the SLA clocks follow a change."""
    await _require_priority_of_matrix(request, ticket_id, body.priority)
    data = m.ChangeTicketPriorityData(changed_by=who.name, **body.model_dump())
    return await _ticket_command(request, ticket_id, m.ChangeTicketPriority, data)


async def _require_priority_of_matrix(request: Request, key: str, priority: str) -> None:
    """Triage's rule, told at the door when the view knows the ticket's agreement: a
    priority its matrix never gives (A on a P1-P4 agreement) would only be refused later."""
    ticket = await read(view_of(request).ticket, key)
    if ticket is None or ticket.agreement_id is None:
        return
    agreement = await read(view_of(request).agreement, ticket.agreement_id)
    if agreement is None:
        return
    matrix = agreement["matrix"]
    if priority not in m.MATRIX_PRIORITIES[matrix]:
        allowed = ", ".join(sorted(m.MATRIX_PRIORITIES[matrix]))
        detail = f"{priority!r} is not a priority of {matrix} (one of {allowed})"
        raise unprocessable("priority", detail, "unknown_priority")


@router.post("/tickets/{ticket_id}/replies", status_code=202, tags=["tickets"], responses=NOT_FOUND)
async def reply(
    request: Request, ticket_id: TicketKey, body: AgentReply, who: AnyCaller
) -> Accepted:
    """An agent's answer, mailed to the reporter in their thread (it may set the next
    status), or a customer's reply (which reopens a waiting ticket)."""
    return await answer(request, who, ticket_id, body.body, body.next_status)


async def answer(
    request: Request,
    who: Caller,
    key: str,
    text: str,
    next_status: str | None = None,
    channel: m.Channel = "api",
) -> Accepted:
    """A reply on a ticket the caller may see (the JSON API and the portal). A customer's
    is theirs: their name, and their address when the people directory has one (else the
    reporter's, where the desk's answer goes)."""
    if who.is_customer:
        if next_status is not None:
            raise unprocessable("next_status", "customers cannot set a status", "agents_only")
        ticket = await ticket_or_404(request, key)
        reply = m.AddCustomerReplyData(
            author_email=who.email or ticket.reporter_email,
            author_name=who.name,
            body=text,
            channel=channel,
        )
        return await _ticket_command(request, key, m.AddCustomerReply, reply)
    data = m.ReplyAsAgentData(agent=who.name, body=text, next_status=next_status)
    return await _ticket_command(request, key, m.ReplyAsAgent, data)


@router.post(
    "/tickets/{ticket_id}/notes",
    status_code=202,
    tags=["tickets"],
    responses={**NOT_FOUND, **FORBIDDEN},
)
async def add_note(
    request: Request, ticket_id: TicketKey, body: InternalNote, who: AgentCaller
) -> Accepted:
    """An internal note: for agents only, never mailed, never shown to customers."""
    data = m.AddInternalNoteData(author=who.name, body=body.body)
    return await _ticket_command(request, ticket_id, m.AddInternalNote, data)


@router.post(
    "/tickets/{ticket_id}/links",
    status_code=202,
    tags=["tickets"],
    responses={**NOT_FOUND, **FORBIDDEN},
)
async def link(request: Request, ticket_id: TicketKey, body: Link, who: AgentCaller) -> Accepted:
    """Links the ticket to another (relates_to, blocks, blocked_by, duplicate_of); the
    other ticket shows the inverse link."""
    other = await read(view_of(request).ticket, body.other)
    if other is None:
        raise unprocessable("other", f"no ticket {body.other}", "unknown_ticket")
    data = m.LinkTicketsData(kind=body.kind, other_ticket_id=other.ticket_id, linked_by=who.name)
    return await _ticket_command(request, ticket_id, m.LinkTickets, data)


@router.post(
    "/tickets/{ticket_id}/split",
    status_code=202,
    tags=["tickets"],
    responses={**NOT_FOUND, **FORBIDDEN},
)
async def split(request: Request, ticket_id: TicketKey, body: Split, who: AgentCaller) -> Accepted:
    """One subject of a request that raised several becomes a ticket of its own: the
    reporter, agreement and receipt time (its SLA clocks start there) of the original,
    linked both ways. `Location` is the new ticket."""
    original = (await ticket_or_404(request, ticket_id)).ticket_id
    data = m.SplitTicketData(**body.model_dump(), split_by=who.name)
    sent = await send(request, topics.INBOUND, m.SplitTicket, original, data)
    part = m.ticket_id_for_request(sent)
    return accepted(part, sent, f"/tickets/{part}")


@router.get("/tickets/{ticket_id}/conversation", tags=["tickets"], responses=NOT_FOUND)
async def get_conversation(
    request: Request, ticket_id: TicketKey, who: AnyCaller
) -> models.Conversation:
    """The request (with its custom fields) and every reply in order, with author,
    channel, time and attachments; agents also see internal notes."""
    ticket = await ticket_or_404(request, ticket_id)
    facts = await read(view_of(request).ticket_events, ticket)
    messages = conversation(facts, for_customer=who.is_customer)
    opened = next((message for kind, message in facts if kind == "TicketOpened"), None)
    custom_fields = opened["data"].get("custom_fields", []) if opened else []
    return models.Conversation(
        ticket_id=ticket.ticket_id,
        reference=ticket.reference,
        subject=ticket.subject,
        custom_fields=custom_fields,
        messages=[models.ConversationMessage(**message) for message in messages],
    )


@router.get(
    "/tickets/{ticket_id}/attachments/{sha256}",
    tags=["tickets"],
    responses=NOT_FOUND,
    response_class=Response,
)
async def get_attachment(
    request: Request, ticket_id: TicketKey, sha256: str, who: AnyCaller
) -> Response:
    """An attachment of a message the caller may see on this ticket, by its hash."""
    ticket = await ticket_or_404(request, ticket_id)
    facts = await read(view_of(request).ticket_events, ticket)
    attachment = attachments_of(conversation(facts, for_customer=who.is_customer)).get(sha256)
    if attachment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no attachment {sha256} on this ticket")
    return await blob_response(request, sha256, attachment["content_type"], attachment["filename"])


@router.post(
    "/tickets/{ticket_id}/time-entries",
    status_code=202,
    tags=["tickets"],
    responses={**NOT_FOUND, **FORBIDDEN},
)
async def log_time(
    request: Request, ticket_id: TicketKey, body: TimeEntry, who: AgentCaller
) -> Accepted:
    ends = body.started_at + timedelta(minutes=body.duration_minutes)
    if ends > request.app.state.now():
        detail = f"the entry ends at {ends.isoformat()}, in the future"
        raise unprocessable("started_at", detail, "future_time")
    data = m.LogTimeData(agent=who.name, **body.model_dump())
    return await _ticket_command(request, ticket_id, m.LogTime, data)


@router.post(
    "/tickets/{ticket_id}/assignment",
    status_code=202,
    tags=["tickets"],
    responses={**NOT_FOUND, **FORBIDDEN, **CONFLICT},
)
async def assign(
    request: Request, ticket_id: TicketKey, body: Assignment, who: AgentCaller
) -> Accepted:
    """Assigns the ticket to an agent and/or a group (both null: unassigned); the assignee
    is told by mail. Refused at once: a closed ticket (409), an assignment that changes
    nothing (409), taking the ticket from its agent without a reason (422)."""
    ticket = await ticket_or_404(request, ticket_id)
    if ticket.status == "closed":
        raise HTTPException(status.HTTP_409_CONFLICT, f"{ticket.reference} is closed: reopen it")
    if (body.assignee, body.group) == (ticket.assignee, ticket.group):
        raise HTTPException(status.HTTP_409_CONFLICT, f"{ticket.reference} is assigned so already")
    if ticket.assignee and body.assignee != ticket.assignee and not body.reason.strip():
        detail = f"{ticket.reference} is {ticket.assignee}'s: say why it moves"
        raise unprocessable("reason", detail, "reason_required")
    data = m.AssignTicketData(
        assignee=body.assignee,
        group=body.group,
        assigned_by=who.name,
        reason=body.reason,
        assignee_email=request.app.state.email_of(body.assignee) if body.assignee else None,
    )
    return await _ticket_command(request, str(ticket.ticket_id), m.AssignTicket, data)


@router.post(
    "/tickets/{ticket_id}/timer",
    status_code=202,
    tags=["tickets"],
    responses={**NOT_FOUND, **FORBIDDEN},
)
async def start_timer(
    request: Request, ticket_id: TicketKey, body: Timer, who: AgentCaller
) -> Accepted:
    """Starts the caller's timer on the ticket (one running timer per agent)."""
    return await _timer_command(request, ticket_id, m.StartTimer, body, who)


@router.post(
    "/tickets/{ticket_id}/timer/stop",
    status_code=202,
    tags=["tickets"],
    responses={**NOT_FOUND, **FORBIDDEN},
)
async def stop_timer(
    request: Request, ticket_id: TicketKey, body: Timer, who: AgentCaller
) -> Accepted:
    """Stops it: the time (whole minutes, at least one) becomes a time entry."""
    return await _timer_command(request, ticket_id, m.StopTimer, body, who)


async def _timer_command(
    request: Request, ticket_id: str, kind: type[Message], body: Timer, who: Caller
) -> Accepted:
    data = m.TimerData(agent=who.name, **body.model_dump())
    return await _ticket_command(request, ticket_id, kind, data)
