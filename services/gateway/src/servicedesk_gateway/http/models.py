"""What the API answers, as typed models: they are the OpenAPI document's schemas, and
every answer is checked against them (a field the view lacks is a 500 in tests, not a
surprise for an integrator)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field


class Clock(BaseModel):
    """One SLA clock of a ticket as the view knows it."""

    state: Literal["running", "paused", "met", "breached"] = "running"
    priority: str | None = None
    target_minutes: float | None = Field(default=None, description="Business minutes.")
    started_at: str | None = None
    due_at: str | None = Field(default=None, description="None while paused or untimed.")
    paused_at: str | None = None
    reopened_at: str | None = None
    stopped_at: str | None = None
    breached_at: str | None = Field(default=None, description="The deadline it missed.")
    breach_noticed_at: str | None = None
    warnings: list[float] = Field(default_factory=list, description="Thresholds passed.")
    business_minutes: float | None = Field(default=None, description="Spent, once stopped.")


class TicketLink(BaseModel):
    kind: str = Field(
        description="relates_to, blocks, blocked_by, duplicate_of, has_duplicate, "
        "split_from, split_into, follows_up, followed_up_by"
    )
    ticket_id: uuid.UUID
    reference: str


class Ticket(BaseModel):
    ticket_id: uuid.UUID
    reference: str
    agreement_id: uuid.UUID | None
    status: str
    subject: str
    reporter_email: str
    organisation: str
    channel: str
    category: str
    received_at: str
    updated_at: str
    priority: str | None
    triage_reason: str | None
    assignee: str | None
    group: str | None
    sla: dict[str, Clock]
    agent_replies: int
    customer_replies: int
    minutes_logged: int | None = Field(description="None for a customer: the desk's own.")
    notifications: list[str] | None = Field(
        default=None, description="Mail about the ticket (only on GET /tickets/{id})."
    )
    links: list[TicketLink] = Field(default_factory=list)


class Contact(BaseModel):
    email: str
    name: str
    organisation: str
    agreement_id: uuid.UUID
    channel: str = Field(description="How their first request came in.")
    first_reference: str
    registered_at: str


class TicketPage(BaseModel):
    tickets: list[Ticket]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class TimelineEntry(BaseModel):
    at: str | None
    event: str
    event_id: str | None
    who: str
    what: str
    why: str | None
    details: dict[str, Any]


class Timeline(BaseModel):
    ticket_id: uuid.UUID
    reference: str
    entries: list[TimelineEntry]


class Attachment(BaseModel):
    filename: str
    content_type: str
    size: int
    sha256: str = Field(description="Download: GET /tickets/{id}/attachments/{sha256}.")


class ConversationMessage(BaseModel):
    kind: Literal["request", "customer_reply", "agent_reply", "internal_note"]
    event_id: str | None
    at: str | None = Field(description="When it reached the desk (or was written there).")
    author: str
    channel: str | None = Field(description="How a customer's words came in.")
    body: str
    attachments: list[Attachment]
    message_id: str | None = Field(description="The mail's Message-ID, for mail.")


class Conversation(BaseModel):
    ticket_id: uuid.UUID
    reference: str
    subject: str
    custom_fields: list[dict[str, Any]]
    messages: list[ConversationMessage]


class Delivery(BaseModel):
    notification_id: uuid.UUID
    kind: str
    recipient: str
    subject_line: str
    outcome: Literal["sent", "failed"]
    error: str | None = None
    message_id: str | None = Field(default=None, description="The mail's own Message-ID.")
    at: str = Field(description="When the latest outcome was recorded.")


class SetAsideMail(BaseModel):
    mail_id: uuid.UUID
    reason: str
    detail: str
    sender: str
    subject: str
    message_id: str | None
    received_at: str
    agreement_id: uuid.UUID | None
    reference: str | None
    answer_to: str | None
    sha256: str = Field(description="The raw mail: GET /mail/{mail_id}/raw.")
    filed_reference: str | None = Field(
        default=None, description="The ticket an agent filed it as (POST /mail/{id}/file)."
    )


class SetAsideMailPage(BaseModel):
    mail: list[SetAsideMail]
    next_cursor: str | None


class Produced(BaseModel):
    subject_id: uuid.UUID
    event: str
    reference: str | None = None


class CommandStatus(BaseModel):
    command_id: uuid.UUID
    status: Literal["accepted", "applied", "refused"]
    command_type: str
    service: str | None = Field(default=None, description="Who decided.")
    reason: str | None = None
    detail: str | None = None
    produced: list[Produced] = Field(default_factory=list)
    accepted_at: str | None = None
    decided_at: str | None = None


class Workload(BaseModel):
    assignee: str
    open: int
    at_risk: int
    breached: int


class Agreement(BaseModel):
    """An agreement as billing registered it: its terms (see the `RegisterAgreement` body)
    and its id."""

    model_config = {"extra": "allow"}
    agreement_id: uuid.UUID
    customer: str


class ClockSummary(BaseModel):
    timed: int
    met: int
    breached: int
    open: int
    met_ratio: float | None
    median_business_minutes: float | None
    p90_business_minutes: float | None


class Evaluation(BaseModel):
    """A month of an agreement, as providers review it (DOMAIN.md 6)."""

    agreement_id: uuid.UUID
    month: str
    tickets_opened: int
    tickets_by_priority: dict[str, int]
    tickets_closed: int
    response: ClockSummary
    resolution: ClockSummary


class Problem(BaseModel):
    """A refusal: `detail` says what is wrong."""

    detail: str


class FieldProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Unprocessable(BaseModel):
    """Which field is wrong, and why (as FastAPI's own validation errors)."""

    detail: list[FieldProblem]


Responses = dict[int | str, dict[str, Any]]


def problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


COMMON_RESPONSES: Responses = {
    401: problem("No bearer token, or one nobody was given."),
    422: {"model": Unprocessable, "description": "A field is wrong: `loc` names it."},
}
NOT_FOUND: Responses = {404: problem("No such ticket, agreement or command.")}
FORBIDDEN: Responses = {403: problem("The caller's role may not do this.")}
CONFLICT: Responses = {
    409: problem("The thing is in a state where this cannot happen (closed...).")
}
