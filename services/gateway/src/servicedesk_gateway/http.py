"""The agents' HTTP API (OpenAPI at /docs): commands go out on topics, queries read the
gateway's own view.

(No `from __future__ import annotations` here: FastAPI must see the dependency aliases
defined inside `create_http_app` as real objects.)"""


import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, Field
from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_runtime.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS

from servicedesk_gateway.auth import Caller
from servicedesk_gateway.read_model import ReadModel

Publish = Callable[[str, Message], Awaitable[None]]
PRODUCER = "gateway"


class AgreementRequest(m.AgreementTerms):
    agreement_id: uuid.UUID | None = None


class TicketSubmission(m.TicketRequest):
    channel: m.Channel = "portal"


class StatusChange(BaseModel):
    status: m.TicketStatus
    reason: str = ""


class AgentReply(BaseModel):
    body: m.Text


class TimeEntry(BaseModel):
    started_at: AwareDatetime
    duration_minutes: Annotated[int, Field(gt=0, le=24 * 60)]
    work_type: str = "support"
    billable: bool = True


class StatementRequest(BaseModel):
    month: m.Month


class Accepted(BaseModel):
    id: uuid.UUID
    command_id: uuid.UUID
    location: str


def create_http_app(
    read_model: ReadModel,
    publish: Publish,
    callers: dict[str, Caller],
    now: Callable[[], datetime],
) -> FastAPI:
    app = FastAPI(
        title="servicedesk gateway",
        description="Agents' API: submit and work tickets, register agreements, read "
        "statements. Commands are accepted (202) and applied by the services; queries "
        "read a view built from the event topics.",
        version="1",
    )
    bearer = HTTPBearer(auto_error=False)

    def caller(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> Caller:
        if credentials is None or credentials.credentials not in callers:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or unknown bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return callers[credentials.credentials]

    def admin(who: Caller = Depends(caller)) -> Caller:  # noqa: B008
        if not who.may("admin"):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may do this")
        return who

    Agent = Annotated[Caller, Depends(caller)]
    Admin = Annotated[Caller, Depends(admin)]

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(template, request.method, str(response.status_code)).inc()
        HTTP_REQUEST_SECONDS.labels(template).observe(time.perf_counter() - started)
        return response

    async def send(topic: str, kind: type[Message], subject_id: uuid.UUID, data: Any) -> uuid.UUID:
        message = kind.create(producer=PRODUCER, subject_id=subject_id, data=data, occurred_at=now())
        await publish(topic, message)
        return message.event_id

    def known_ticket(ticket_id: uuid.UUID) -> dict[str, Any]:
        view = read_model.ticket_json(ticket_id)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no ticket {ticket_id}")
        return view

    @app.post("/agreements", status_code=202, response_model=Accepted, tags=["agreements"])
    async def register_agreement(body: AgreementRequest, _: Admin) -> Accepted:
        agreement_id = body.agreement_id or uuid.uuid4()
        terms = m.AgreementTerms.model_validate(body.model_dump(exclude={"agreement_id"}))
        command_id = await send(topics.BILLING_COMMANDS, m.RegisterAgreement, agreement_id, terms)
        return Accepted(id=agreement_id, command_id=command_id, location=f"/agreements/{agreement_id}")

    @app.get("/agreements/{agreement_id}", tags=["agreements"])
    def get_agreement(agreement_id: uuid.UUID, _: Agent) -> dict[str, Any]:
        if agreement_id not in read_model.agreements:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agreement {agreement_id}")
        return read_model.agreements[agreement_id]

    @app.post("/tickets", status_code=202, response_model=Accepted, tags=["tickets"])
    async def submit_ticket(body: TicketSubmission, _: Agent) -> Accepted:
        request_id = uuid.uuid4()
        message = m.SubmitTicket.create(
            producer=PRODUCER, subject_id=request_id, event_id=request_id,
            data=m.TicketRequest.model_validate(body.model_dump()), occurred_at=now(),
        )
        await publish(topics.INBOUND, message)
        ticket_id = m.ticket_id_for_request(request_id)
        return Accepted(id=ticket_id, command_id=request_id, location=f"/tickets/{ticket_id}")

    @app.get("/tickets", tags=["tickets"])
    def list_tickets(
        _: Agent, status_is: Annotated[m.TicketStatus | None, Field(alias="status")] = None
    ) -> list[dict[str, Any]]:
        return [
            known_ticket(t.ticket_id) for t in read_model.opened_tickets()
            if status_is is None or t.status == status_is
        ]

    @app.get("/tickets/{ticket_id}", tags=["tickets"])
    def get_ticket(ticket_id: uuid.UUID, _: Agent) -> dict[str, Any]:
        return known_ticket(ticket_id)

    @app.post("/tickets/{ticket_id}/status", status_code=202, response_model=Accepted, tags=["tickets"])
    async def change_status(ticket_id: uuid.UUID, body: StatusChange, who: Agent) -> Accepted:
        known_ticket(ticket_id)
        data = m.ChangeTicketStatusData(status=body.status, changed_by=who.name, reason=body.reason)
        command_id = await send(topics.INBOUND, m.ChangeTicketStatus, ticket_id, data)
        return Accepted(id=ticket_id, command_id=command_id, location=f"/tickets/{ticket_id}")

    @app.post("/tickets/{ticket_id}/replies", status_code=202, response_model=Accepted, tags=["tickets"])
    async def reply(ticket_id: uuid.UUID, body: AgentReply, who: Agent) -> Accepted:
        known_ticket(ticket_id)
        data = m.ReplyAsAgentData(agent=who.name, body=body.body)
        command_id = await send(topics.INBOUND, m.ReplyAsAgent, ticket_id, data)
        return Accepted(id=ticket_id, command_id=command_id, location=f"/tickets/{ticket_id}")

    @app.post("/tickets/{ticket_id}/time-entries", status_code=202, response_model=Accepted, tags=["tickets"])
    async def log_time(ticket_id: uuid.UUID, body: TimeEntry, who: Agent) -> Accepted:
        known_ticket(ticket_id)
        data = m.LogTimeData(agent=who.name, **body.model_dump())
        command_id = await send(topics.INBOUND, m.LogTime, ticket_id, data)
        return Accepted(id=ticket_id, command_id=command_id, location=f"/tickets/{ticket_id}")

    @app.post("/agreements/{agreement_id}/statements", status_code=202, response_model=Accepted, tags=["billing"])
    async def issue_statement(agreement_id: uuid.UUID, body: StatementRequest, _: Admin) -> Accepted:
        data = m.IssueStatementData(month=body.month)
        command_id = await send(topics.BILLING_COMMANDS, m.IssueStatement, agreement_id, data)
        location = f"/agreements/{agreement_id}/statements/{body.month}"
        return Accepted(id=agreement_id, command_id=command_id, location=location)

    @app.get("/agreements/{agreement_id}/statements/{month}", tags=["billing"])
    def get_statement(agreement_id: uuid.UUID, month: str, _: Agent) -> dict[str, Any]:
        statement = read_model.statements.get((agreement_id, month))
        if statement is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no statement for {month}")
        return statement

    return app
