"""The agents' HTTP API (OpenAPI at /docs): commands go out on topics, queries read the
gateway's own view (tables in its database, see `view/`). Everything a route needs sits on
`app.state` (set by `create_http_app`), so routes are plain module-level functions. The
view's queries are synchronous: routes run them in a worker thread (`_read`)."""

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from servicedesk_contracts import Message, calendars, plans, topics
from servicedesk_contracts import messages as m
from servicedesk_contracts.envelope import STORED
from servicedesk_gateway.auth import Caller
from servicedesk_gateway.guard import RequireBearerToken
from servicedesk_gateway.reports import evaluation
from servicedesk_gateway.statements import as_csv, as_html
from servicedesk_gateway.view.queries import BadCursor, Sort, TicketFilter, ViewQueries
from servicedesk_gateway.view.tickets import TicketView
from servicedesk_gateway.view.timeline import timeline
from servicedesk_runtime.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS

Publish = Callable[[str, Message], Awaitable[None]]
PRODUCER = "gateway"
P = ParamSpec("P")
R = TypeVar("R")
TicketKey = Annotated[
    str,
    Path(
        description="The ticket's id, or its reference (SD-000123)",
        min_length=1,
        max_length=64,
    ),
]


class AgreementRequest(m.AgreementTerms):
    agreement_id: uuid.UUID | None = None


class TicketSubmission(m.TicketRequest):
    channel: m.Channel = "portal"
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


class TimeEntry(BaseModel):
    started_at: m.UtcDatetime
    duration_minutes: Annotated[int, Field(gt=0, le=24 * 60)]
    work_type: m.WorkType = "support"
    billable: bool = True


class StatementRequest(BaseModel):
    month: m.Month


class Accepted(BaseModel):
    """The command is stored and will be published (it survives a restart of the gateway or
    the broker); `location` is where its result will show, `command_location` where the
    command's outcome (applied or refused, and why) will."""

    id: uuid.UUID
    command_id: uuid.UUID
    location: str
    command_location: str


_bearer = HTTPBearer(auto_error=False)


def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    callers: dict[str, Caller] = request.app.state.callers
    if credentials is None or credentials.credentials not in callers:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or unknown bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return callers[credentials.credentials]


def _admin(who: Annotated[Caller, Depends(_caller)]) -> Caller:
    if not who.may("admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may do this")
    return who


def _agent(who: Annotated[Caller, Depends(_caller)]) -> Caller:
    if not who.may("agent"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only agents may do this")
    return who


AnyCaller = Annotated[Caller, Depends(_caller)]
AgentCaller = Annotated[Caller, Depends(_agent)]
AdminCaller = Annotated[Caller, Depends(_admin)]
router = APIRouter()


def _view(request: Request) -> ViewQueries:
    view: ViewQueries = request.app.state.view
    return view


async def _read(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Runs a (synchronous) view query off the event loop."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def _send(
    request: Request, topic: str, kind: type[Message], subject_id: uuid.UUID, data: Any
) -> uuid.UUID:
    state = request.app.state
    message: Message = kind.create(
        producer=PRODUCER, subject_id=subject_id, data=data, occurred_at=state.now()
    )
    await state.publish(topic, message)
    return message.event_id


async def _ticket_or_404(request: Request, key: str) -> TicketView:
    ticket = await _read(_view(request).ticket, key)
    if ticket is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no ticket {key}")
    return ticket


async def _agreement_or_404(request: Request, agreement_id: uuid.UUID) -> dict[str, Any]:
    agreement = await _read(_view(request).agreement, agreement_id)
    if agreement is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agreement {agreement_id}")
    return agreement


def _accepted(subject_id: uuid.UUID, command_id: uuid.UUID, location: str) -> Accepted:
    return Accepted(
        id=subject_id,
        command_id=command_id,
        location=location,
        command_location=f"/commands/{command_id}",
    )


@router.get("/commands/{command_id}", tags=["commands"])
async def get_command(request: Request, command_id: uuid.UUID, _: AnyCaller) -> dict[str, Any]:
    """What became of a command: `accepted` (stored, not decided yet), `applied` (with
    what it produced: ids, and a ticket's reference) or `refused` (with the reason and
    detail the service gave; the command is also on the dead-letter topic)."""
    decided = await _read(_view(request).command, command_id)
    if decided is not None:
        return decided
    accepted = await _read(request.app.state.find_accepted, command_id)
    if accepted is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no command {command_id}")
    result: dict[str, Any] = accepted
    return result


def _unprocessable(field: str, message: str, kind: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the body field."""
    problem = {"loc": ["body", field], "msg": message, "type": kind}
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [problem])


def _unprocessable_query(parameter: str, message: str, kind: str) -> HTTPException:
    problem = {"loc": ["query", parameter], "msg": message, "type": kind}
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [problem])


async def _require_agreement(request: Request, agreement_id: uuid.UUID) -> None:
    """Refuses a ticket for an agreement nobody registered: it could never be triaged.
    Only once the view has caught up with the topics (before that an agreement may be on
    its way), and never for one this gateway has just accepted (on its way to billing).
    Tickets from Kafka are parked by triage instead, visibly."""
    state = request.app.state
    if agreement_id in state.registering:
        return
    if await _read(_view(request).agreement, agreement_id) is not None:
        return
    if state.view_ready():
        raise _unprocessable("agreement_id", f"no such agreement {agreement_id}", "unknown")


@router.post("/agreements", status_code=202, tags=["agreements"])
async def register_agreement(request: Request, body: AgreementRequest, _: AdminCaller) -> Accepted:
    agreement_id = body.agreement_id or uuid.uuid4()
    terms = m.AgreementTerms.model_validate(body.model_dump(exclude={"agreement_id"}))
    sent = await _send(request, topics.BILLING_COMMANDS, m.RegisterAgreement, agreement_id, terms)
    request.app.state.registering.add(agreement_id)
    return _accepted(agreement_id, sent, f"/agreements/{agreement_id}")


class PlanAgreementRequest(m.PlanSelection):
    agreement_id: uuid.UUID | None = None


@router.get("/plans", tags=["agreements"])
async def list_plans(_: AnyCaller) -> list[dict[str, Any]]:
    """The plan catalogue (DOMAIN.md's providers) that agreements may name."""
    return [plan.model_dump(mode="json") for plan in plans.PLANS.values()]


@router.post("/agreements/by-plan", status_code=202, tags=["agreements"])
async def register_plan_agreement(
    request: Request, body: PlanAgreementRequest, _: AdminCaller
) -> Accepted:
    """An agreement as a plan, its extensions and the customer's overrides; refused at
    once (422 naming the field) when the plan or an extension does not exist or the plan's
    terms with the overrides are not a valid agreement."""
    agreement_id = body.agreement_id or uuid.uuid4()
    selection = m.PlanSelection.model_validate(body.model_dump(exclude={"agreement_id"}))
    try:
        plans.resolve(selection)
    except plans.PlanRefused as refused:
        raise _unprocessable(refused.field, refused.detail, refused.reason) from refused
    sent = await _send(
        request, topics.BILLING_COMMANDS, m.RegisterPlanAgreement, agreement_id, selection
    )
    request.app.state.registering.add(agreement_id)
    return _accepted(agreement_id, sent, f"/agreements/{agreement_id}")


@router.get("/agreements/{agreement_id}", tags=["agreements"])
async def get_agreement(request: Request, agreement_id: uuid.UUID, _: AnyCaller) -> dict[str, Any]:
    return await _agreement_or_404(request, agreement_id)


@router.post("/tickets", status_code=202, tags=["tickets"])
async def submit_ticket(request: Request, body: TicketSubmission, _: AnyCaller) -> Accepted:
    await _require_agreement(request, body.agreement_id)
    received_at = _arrival(body.received_at, request.app.state.now())
    request_id = uuid.uuid4()
    message = m.SubmitTicket.create(
        producer=PRODUCER,
        subject_id=request_id,
        event_id=request_id,
        data=m.TicketRequest.model_validate(body.model_dump(exclude={"received_at"})),
        occurred_at=received_at,  # intake opens the ticket as received at this instant
    )
    await request.app.state.publish(topics.INBOUND, message)
    ticket_id = m.ticket_id_for_request(request_id)
    return _accepted(ticket_id, request_id, f"/tickets/{ticket_id}")


def _arrival(given: datetime | None, now: datetime) -> datetime:
    if given is None:
        return now
    if given > now:
        raise _unprocessable("received_at", f"{given.isoformat()} is in the future", "future_time")
    if given < now - MAX_BACKDATE:
        detail = f"{given.isoformat()} is more than {MAX_BACKDATE.days} days ago"
        raise _unprocessable("received_at", detail, "too_old")
    return given


class TicketPage(BaseModel):
    tickets: list[dict[str, Any]]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


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
) -> TicketPage:
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
    return await _page(request, where, Sort.parse(sort), cursor, limit)


def _ticket_json(ticket: TicketView, notifications: list[str] | None = None) -> dict[str, Any]:
    shown = ticket.to_doc()
    if notifications is not None:
        shown["notifications"] = notifications
    return shown


@router.get("/tickets/{ticket_id}", tags=["tickets"])
async def get_ticket(request: Request, ticket_id: TicketKey, _: AnyCaller) -> dict[str, Any]:
    ticket = await _ticket_or_404(request, ticket_id)
    notifications = await _read(_view(request).notifications, ticket.reference)
    return _ticket_json(ticket, notifications)


@router.get("/tickets/{ticket_id}/timeline", tags=["tickets"])
async def get_timeline(request: Request, ticket_id: TicketKey, _: AnyCaller) -> dict[str, Any]:
    """Every fact of the ticket in order, with who and why: status, priority and
    assignment changes, messages, time, mail, and each SLA clock's start (target,
    calendar, closed days skipped), pauses, resumptions, warnings, breach and stop."""
    ticket = await _ticket_or_404(request, ticket_id)
    facts = await _read(_view(request).ticket_events, ticket)
    calendar = None
    if ticket.agreement_id is not None:
        agreement = await _read(_view(request).agreement, ticket.agreement_id)
        if agreement is not None:
            calendar = m.Calendar.model_validate(agreement["calendar"], context=STORED)
    return {
        "ticket_id": str(ticket.ticket_id),
        "reference": ticket.reference,
        "entries": timeline(facts, calendar),
    }


async def _ticket_command(request: Request, key: str, kind: type[Message], data: Any) -> Accepted:
    """Sends a command about an existing ticket to intake."""
    ticket_id = (await _ticket_or_404(request, key)).ticket_id
    sent = await _send(request, topics.INBOUND, kind, ticket_id, data)
    return _accepted(ticket_id, sent, f"/tickets/{ticket_id}")


@router.post("/tickets/{ticket_id}/status", status_code=202, tags=["tickets"])
async def change_status(
    request: Request, ticket_id: TicketKey, body: StatusChange, who: AnyCaller
) -> Accepted:
    data = m.ChangeTicketStatusData(status=body.status, changed_by=who.name, reason=body.reason)
    return await _ticket_command(request, ticket_id, m.ChangeTicketStatus, data)


@router.post("/tickets/{ticket_id}/priority", status_code=202, tags=["tickets"])
async def change_priority(
    request: Request, ticket_id: TicketKey, body: PriorityChange, who: AnyCaller
) -> Accepted:
    """Triage decides: an unknown priority, or a customer override the agreement does not
    allow, is refused (dead-lettered with the reason); the SLA clocks follow a change."""
    await _require_priority_of_matrix(request, ticket_id, body.priority)
    data = m.ChangeTicketPriorityData(changed_by=who.name, **body.model_dump())
    return await _ticket_command(request, ticket_id, m.ChangeTicketPriority, data)


async def _require_priority_of_matrix(request: Request, key: str, priority: str) -> None:
    """Triage's rule, told at the door when the view knows the ticket's agreement: a
    priority its matrix never gives (A on a P1-P4 agreement) would only be refused later."""
    ticket = await _read(_view(request).ticket, key)
    if ticket is None or ticket.agreement_id is None:
        return
    agreement = await _read(_view(request).agreement, ticket.agreement_id)
    if agreement is None:
        return
    matrix = agreement["matrix"]
    if priority not in m.MATRIX_PRIORITIES[matrix]:
        allowed = ", ".join(sorted(m.MATRIX_PRIORITIES[matrix]))
        detail = f"{priority!r} is not a priority of {matrix} (one of {allowed})"
        raise _unprocessable("priority", detail, "unknown_priority")


@router.post("/tickets/{ticket_id}/replies", status_code=202, tags=["tickets"])
async def reply(
    request: Request, ticket_id: TicketKey, body: AgentReply, who: AnyCaller
) -> Accepted:
    data = m.ReplyAsAgentData(agent=who.name, body=body.body)
    return await _ticket_command(request, ticket_id, m.ReplyAsAgent, data)


@router.post("/tickets/{ticket_id}/time-entries", status_code=202, tags=["tickets"])
async def log_time(
    request: Request, ticket_id: TicketKey, body: TimeEntry, who: AnyCaller
) -> Accepted:
    ends = body.started_at + timedelta(minutes=body.duration_minutes)
    if ends > request.app.state.now():
        detail = f"the entry ends at {ends.isoformat()}, in the future"
        raise _unprocessable("started_at", detail, "future_time")
    data = m.LogTimeData(agent=who.name, **body.model_dump())
    return await _ticket_command(request, ticket_id, m.LogTime, data)


class Assignment(BaseModel):
    assignee: m.Name | None = None
    group: m.Label | None = None
    reason: Annotated[str, Field(max_length=2000)] = ""
    """Needed when the ticket is taken from the agent who has it."""


@router.post("/tickets/{ticket_id}/assignment", status_code=202, tags=["tickets"])
async def assign(
    request: Request, ticket_id: TicketKey, body: Assignment, who: AgentCaller
) -> Accepted:
    """Assigns the ticket to an agent and/or a group (both null: unassigned); the assignee
    is told by mail. Refused at once: a closed ticket (409), an assignment that changes
    nothing (409), taking the ticket from its agent without a reason (422)."""
    ticket = await _ticket_or_404(request, ticket_id)
    if ticket.status == "closed":
        raise HTTPException(status.HTTP_409_CONFLICT, f"{ticket.reference} is closed: reopen it")
    if (body.assignee, body.group) == (ticket.assignee, ticket.group):
        raise HTTPException(status.HTTP_409_CONFLICT, f"{ticket.reference} is assigned so already")
    if ticket.assignee and body.assignee != ticket.assignee and not body.reason.strip():
        detail = f"{ticket.reference} is {ticket.assignee}'s: say why it moves"
        raise _unprocessable("reason", detail, "reason_required")
    data = m.AssignTicketData(
        assignee=body.assignee,
        group=body.group,
        assigned_by=who.name,
        reason=body.reason,
        assignee_email=request.app.state.email_of(body.assignee) if body.assignee else None,
    )
    return await _ticket_command(request, str(ticket.ticket_id), m.AssignTicket, data)


async def _page(
    request: Request, where: TicketFilter, sort: Sort, cursor: str | None, limit: int
) -> TicketPage:
    try:
        page = await _read(_view(request).tickets, where, sort, cursor, limit)
    except BadCursor as bad:
        raise _unprocessable_query("cursor", str(bad), "bad_cursor") from bad
    return TicketPage(
        tickets=[_ticket_json(ticket) for ticket in page.tickets], next_cursor=page.next_cursor
    )


NEXT_DEADLINE_FIRST = Sort("due", descending=False)


Cursor = Annotated[str | None, Query(max_length=500)]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/queues/mine", tags=["queues"])
async def my_queue(
    request: Request, who: AgentCaller, cursor: Cursor = None, limit: Limit = 50
) -> TicketPage:
    """The caller's open tickets, the next deadline first."""
    where = TicketFilter(assignee=who.name, open_only=True)
    return await _page(request, where, NEXT_DEADLINE_FIRST, cursor, limit)


@router.get("/queues/unassigned", tags=["queues"])
async def unassigned_queue(
    request: Request,
    who: AgentCaller,
    group: Annotated[str | None, Query(max_length=60)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> TicketPage:
    """Open tickets nobody has taken, in `group` (by default every group), the next
    deadline first."""
    where = TicketFilter(unassigned=True, group=group, open_only=True)
    return await _page(request, where, NEXT_DEADLINE_FIRST, cursor, limit)


@router.get("/queues/breaching-next", tags=["queues"])
async def breaching_next(
    request: Request, _: AgentCaller, cursor: Cursor = None, limit: Limit = 50
) -> TicketPage:
    """Every open ticket with a clock running towards a deadline, the nearest first."""
    where = TicketFilter(open_only=True, due_only=True)
    return await _page(request, where, NEXT_DEADLINE_FIRST, cursor, limit)


class Workload(BaseModel):
    assignee: str
    open: int
    at_risk: int
    breached: int


@router.get("/workload", tags=["queues"])
async def workload(request: Request, _: AgentCaller) -> list[Workload]:
    """Per agent: open tickets assigned, how many at risk, how many breached."""
    return [Workload(**row) for row in await _read(_view(request).workload)]


class Timer(BaseModel):
    work_type: m.WorkType = "support"
    billable: bool = True


@router.post("/tickets/{ticket_id}/timer", status_code=202, tags=["tickets"])
async def start_timer(
    request: Request, ticket_id: TicketKey, body: Timer, who: AnyCaller
) -> Accepted:
    """Starts the caller's timer on the ticket (one running timer per agent)."""
    return await _timer_command(request, ticket_id, m.StartTimer, body, who)


@router.post("/tickets/{ticket_id}/timer/stop", status_code=202, tags=["tickets"])
async def stop_timer(
    request: Request, ticket_id: TicketKey, body: Timer, who: AnyCaller
) -> Accepted:
    """Stops it: the time (whole minutes, at least one) becomes a time entry."""
    return await _timer_command(request, ticket_id, m.StopTimer, body, who)


async def _timer_command(
    request: Request, ticket_id: str, kind: type[Message], body: Timer, who: Caller
) -> Accepted:
    data = m.TimerData(agent=who.name, **body.model_dump())
    return await _ticket_command(request, ticket_id, kind, data)


async def _require_month_ended(request: Request, agreement_id: uuid.UUID, month: str) -> None:
    """Billing's rule, told at the door when the view knows the agreement's time zone (if
    it does not, billing refuses the command itself)."""
    agreement = await _read(_view(request).agreement, agreement_id)
    if agreement is None:
        return
    zone = agreement["calendar"]["timezone"]
    ends = calendars.month_end(month, zone)
    if request.app.state.now() < ends:
        detail = f"{month} has not ended in {zone}: it ends {ends.isoformat()}"
        raise _unprocessable("month", detail, "month_not_ended")


@router.post("/agreements/{agreement_id}/statements", status_code=202, tags=["billing"])
async def issue_statement(
    request: Request, agreement_id: uuid.UUID, body: StatementRequest, _: AdminCaller
) -> Accepted:
    await _require_month_ended(request, agreement_id, body.month)
    if await _read(_view(request).statement, agreement_id, body.month) is not None:
        detail = f"the statement for {body.month} was issued already (issued once, never again)"
        raise HTTPException(status.HTTP_409_CONFLICT, detail)
    data = m.IssueStatementData(month=body.month)
    sent = await _send(request, topics.BILLING_COMMANDS, m.IssueStatement, agreement_id, data)
    return _accepted(agreement_id, sent, f"/agreements/{agreement_id}/statements/{body.month}")


@router.post("/agreements/{agreement_id}/cancellation", status_code=202, tags=["agreements"])
async def cancel_agreement(
    request: Request, agreement_id: uuid.UUID, body: m.CancelAgreementData, _: AdminCaller
) -> Accepted:
    """Ends the agreement after `effective_on`; that month's fees are charged by the day."""
    sent = await _send(request, topics.BILLING_COMMANDS, m.CancelAgreement, agreement_id, body)
    return _accepted(agreement_id, sent, f"/agreements/{agreement_id}")


@router.post("/agreements/{agreement_id}/top-ups", status_code=202, tags=["billing"])
async def top_up_bundle(
    request: Request, agreement_id: uuid.UUID, body: m.TopUpBundleData, _: AdminCaller
) -> Accepted:
    """Adds prepaid minutes to a bundle; they show on the next statement."""
    sent = await _send(request, topics.BILLING_COMMANDS, m.TopUpBundle, agreement_id, body)
    return _accepted(agreement_id, sent, f"/agreements/{agreement_id}")


@router.get("/agreements/{agreement_id}/reports/{month}", tags=["billing"])
async def get_evaluation(
    request: Request, agreement_id: uuid.UUID, month: m.Month, _: AnyCaller
) -> dict[str, Any]:
    """The month's evaluation: tickets opened, time to first response, targets met."""
    agreement = await _agreement_or_404(request, agreement_id)
    return await _read(evaluation, _view(request), agreement, month)


@router.get(
    "/agreements/{agreement_id}/statements/{month}",
    tags=["billing"],
    responses={200: {"content": {"text/csv": {}, "text/html": {}}}},
)
async def get_statement(
    request: Request,
    agreement_id: uuid.UUID,
    month: m.Month,
    _: AnyCaller,
    format: Literal["json", "csv", "html"] = "json",
) -> Any:
    """The issued statement as JSON, CSV (bookkeeping) or an HTML page to send."""
    statement = await _read(_view(request).statement, agreement_id, month)
    if statement is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no statement for {month}")
    if format == "csv":
        filename = f"statement-{month}.csv"
        return Response(
            as_csv(statement),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    if format == "html":
        return Response(as_html(statement), media_type="text/html")
    return statement


async def _count_requests(request: Request, call_next: Any) -> Response:
    started = time.perf_counter()
    response: Response = await call_next(request)
    template = getattr(request.scope.get("route"), "path", "unmatched")
    HTTP_REQUESTS.labels(template, request.method, str(response.status_code)).inc()
    HTTP_REQUEST_SECONDS.labels(template).observe(time.perf_counter() - started)
    return response


async def _validation_failed(request: Request, error: Exception) -> Response:
    """FastAPI's own 422, in ASCII JSON: it echoes the input, and a lone surrogate in it
    (a JSON escape such as \\ud800) cannot be encoded as UTF-8, which made the 422 a 500."""
    assert isinstance(error, RequestValidationError)
    problems = [_without_long_input(problem) for problem in error.errors()]
    body = json.dumps({"detail": jsonable_encoder(problems)}, ensure_ascii=True)
    return Response(body, status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")


ECHOED_INPUT_CHARS = 200
"""A 422 names the field and shows at most this much of what was sent there: a 900 KB
body must not come back whole."""


def _without_long_input(problem: Any) -> Any:
    echoed = repr(problem.get("input")) if isinstance(problem, dict) else ""
    if len(echoed) <= ECHOED_INPUT_CHARS:
        return problem
    shortened = f"{echoed[:ECHOED_INPUT_CHARS]}... ({len(echoed)} characters)"
    return {**problem, "input": shortened}


def create_http_app(
    view: ViewQueries,
    publish: Publish,
    callers: dict[str, Caller],
    now: Callable[[], datetime],
    max_body_bytes: int = 1 << 20,
    find_accepted: Callable[[uuid.UUID], dict[str, Any] | None] = lambda _: None,
) -> FastAPI:
    """`max_body_bytes`: larger request bodies are refused with 413 as they arrive (by
    Content-Length, or counted while a chunked body streams in), never buffered."""
    app = FastAPI(
        title="servicedesk gateway",
        description="Agents' API: submit and work tickets, register agreements, read "
        "statements. Commands are accepted (202) and applied by the services; queries "
        "read a view built from the event topics.",
        version="1",
        max_body_size=max_body_bytes,
    )
    app.state.view = view
    app.state.publish = publish
    app.state.callers = callers
    app.state.now = now
    app.state.find_accepted = find_accepted
    # The address an assignee is told at (the people directory sets it).
    app.state.email_of = lambda name: None
    # Agreements this gateway sent for registration: tickets may name them at once.
    app.state.registering = set()
    # Whether the view has caught up with the topics (the composition root sets it).
    app.state.view_ready = lambda: False
    app.add_middleware(RequireBearerToken, callers=callers)  # before any body is read
    app.middleware("http")(_count_requests)
    app.exception_handler(RequestValidationError)(_validation_failed)
    app.include_router(router)
    return app
