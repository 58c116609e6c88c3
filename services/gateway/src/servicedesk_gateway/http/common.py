"""What every route uses: who calls, the view, publishing a command, refusals."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated, Any, ParamSpec, TypeVar
from urllib.parse import quote

from fastapi import Depends, HTTPException, Path, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from servicedesk_contracts import Message
from servicedesk_contracts.envelope import Actor
from servicedesk_gateway.auth import Caller, People
from servicedesk_gateway.http import models
from servicedesk_gateway.view.queries import BadCursor, Sort, TicketFilter, ViewQueries
from servicedesk_gateway.view.tickets import TicketView
from servicedesk_runtime.blobs import BlobNotFound, BlobStore

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


class Accepted(BaseModel):
    """The command is stored and will be published (it survives a restart of the gateway or
    the broker); `location` is where its result will show, `command_location` where the
    command's outcome (applied or refused, and why) will."""

    id: uuid.UUID
    command_id: uuid.UUID
    location: str
    command_location: str


_bearer = HTTPBearer(auto_error=False)


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Sync on purpose: FastAPI runs it in a worker thread, where a first argon2 check of
    a people-file token (~30 ms) does not hold up the event loop."""
    people: People = request.app.state.people
    who = None if credentials is None else people.lookup(credentials.credentials)
    if who is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or unknown bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.who = who  # the actor of the commands this request sends
    return who


def actor_of(request: Request) -> Actor:
    who: Caller = request.state.who
    return Actor(name=who.name, role=who.role, organisation=who.organisation)


def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    if not who.may("admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may do this")
    return who


def agent(who: Annotated[Caller, Depends(caller)]) -> Caller:
    if not who.may("agent"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only agents may do this")
    return who


AnyCaller = Annotated[Caller, Depends(caller)]
AgentCaller = Annotated[Caller, Depends(agent)]
AdminCaller = Annotated[Caller, Depends(admin)]


def view_of(request: Request) -> ViewQueries:
    view: ViewQueries = request.app.state.view
    return view


async def read(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Runs a (synchronous) view query off the event loop."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def send(
    request: Request, topic: str, kind: type[Message], subject_id: uuid.UUID, data: Any
) -> uuid.UUID:
    state = request.app.state
    message: Message = kind.create(
        producer=PRODUCER,
        subject_id=subject_id,
        data=data,
        occurred_at=state.now(),
        actor=actor_of(request),
    )
    await state.publish(topic, message)
    return message.event_id


async def blob_response(
    request: Request, sha256: str, content_type: str, filename: str
) -> Response:
    """A stored blob (an attachment, a raw mail) as a download: never rendered inline, so
    an HTML attachment cannot run in the desk's origin."""
    blobs: BlobStore | None = request.app.state.blobs
    try:
        if blobs is None:
            raise BlobNotFound(sha256)
        content = await asyncio.to_thread(blobs.get, sha256)
    except BlobNotFound as missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no stored content {sha256}") from missing
    disposition = f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
    headers = {"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"}
    return Response(content, media_type=content_type, headers=headers)


async def ticket_or_404(request: Request, key: str) -> TicketView:
    """The ticket, if the caller may see it: 404 alike for one that does not exist and
    one of another organisation (a customer learns nothing of others' tickets)."""
    ticket = await read(view_of(request).ticket, key)
    if ticket is None or not sees_ticket(request.state.who, ticket):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no ticket {key}")
    return ticket


def sees_ticket(who: Caller, ticket: TicketView) -> bool:
    if not who.is_customer:
        return True
    return ticket.organisation == who.organisation and who.agreement_id in (
        None,
        ticket.agreement_id,
    )


def sees_agreement(who: Caller, agreement: dict[str, Any]) -> bool:
    """A customer sees their own agreements: the one they are bound to, or those made
    for their organisation."""
    if not who.is_customer:
        return True
    if who.agreement_id is not None:
        return bool(str(who.agreement_id) == agreement["agreement_id"])
    return bool(agreement.get("customer") == who.organisation)


def scoped(who: Caller, where: TicketFilter) -> TicketFilter:
    """`where`, narrowed to what the caller may see; a customer cannot filter on the desk's
    internals (who has a ticket) either."""
    if not who.is_customer:
        return where
    return replace(
        where,
        scope_organisation=who.organisation,
        scope_agreement=who.agreement_id,
        assignee=None,
        unassigned=None,
        group=None,
    )


async def agreement_or_404(request: Request, agreement_id: uuid.UUID) -> dict[str, Any]:
    agreement = await read(view_of(request).agreement, agreement_id)
    if agreement is None or not sees_agreement(request.state.who, agreement):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agreement {agreement_id}")
    return agreement


def accepted(subject_id: uuid.UUID, command_id: uuid.UUID, location: str) -> Accepted:
    return Accepted(
        id=subject_id,
        command_id=command_id,
        location=location,
        command_location=f"/commands/{command_id}",
    )


def unprocessable(field: str, message: str, kind: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the body field."""
    problem = {"loc": ["body", field], "msg": message, "type": kind}
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [problem])


def unprocessable_query(parameter: str, message: str, kind: str) -> HTTPException:
    problem = {"loc": ["query", parameter], "msg": message, "type": kind}
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [problem])


def require_agreement(
    request: Request, agreement_id: uuid.UUID, known: dict[str, Any] | None
) -> None:
    """Refuses a ticket for an agreement nobody registered: it could never be triaged.
    Only once the view has caught up with the topics (before that an agreement may be on
    its way), and never for one this gateway has just accepted (on its way to billing).
    Tickets from Kafka are parked by triage instead, visibly."""
    state = request.app.state
    if known is not None or agreement_id in state.registering:
        return
    if state.view_ready():
        raise unprocessable("agreement_id", f"no such agreement {agreement_id}", "unknown")


async def command_or_404(request: Request, command_id: uuid.UUID) -> dict[str, Any]:
    """What became of a command, as the view (decided) and the outbox (accepted) know it;
    404 alike for an unknown command and another organisation's (for a customer)."""
    who: Caller = request.state.who
    decided = await read(view_of(request).command, command_id)
    accepted = await read(request.app.state.find_accepted, command_id)
    found = accepted if decided is None else {**(accepted or {}), **decided}
    if found is None or (who.is_customer and found.get("organisation") != who.organisation):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no command {command_id}")
    return found


def ticket_json(
    ticket: TicketView, notifications: list[str] | None = None, *, for_customer: bool = False
) -> models.Ticket:
    shown = models.Ticket(**ticket.to_doc(), notifications=notifications)
    if for_customer:  # the desk's internals: who has it, how long it took
        return shown.model_copy(update={"assignee": None, "group": None, "minutes_logged": None})
    return shown


async def page_of(
    request: Request, where: TicketFilter, sort: Sort, cursor: str | None, limit: int
) -> models.TicketPage:
    where = scoped(request.state.who, where)  # every list, whatever it asked for
    try:
        page = await read(view_of(request).tickets, where, sort, cursor, limit)
    except BadCursor as bad:
        raise unprocessable_query("cursor", str(bad), "bad_cursor") from bad
    customer = request.state.who.is_customer
    return models.TicketPage(
        tickets=[ticket_json(t, for_customer=customer) for t in page.tickets],
        next_cursor=page.next_cursor,
    )
