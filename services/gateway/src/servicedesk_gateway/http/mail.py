"""Mail that opened or changed no ticket: set aside (sent by machines, unmatched senders,
refused people), kept and visible to agents, with the raw message."""

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel

from servicedesk_contracts import messages as m
from servicedesk_contracts import topics
from servicedesk_gateway.http import models
from servicedesk_gateway.http.common import (
    Accepted,
    AgentCaller,
    AnyCaller,
    accepted,
    blob_response,
    read,
    send,
    unprocessable_query,
    view_of,
)
from servicedesk_gateway.http.models import COMMON_RESPONSES, CONFLICT, FORBIDDEN, NOT_FOUND

router = APIRouter(responses=COMMON_RESPONSES)


@router.get("/mail/set-aside", tags=["mail"], responses=FORBIDDEN)
async def set_aside_mail(
    request: Request,
    _: AgentCaller,
    reason: m.SetAsideReason | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> models.SetAsideMailPage:
    """Mail set aside, newest first: out-of-office replies, bounces, lists, runaway
    senders, senders no agreement knows (`unmatched`), refused people."""
    found = await read(view_of(request).set_aside_mail, limit + 1, _cursor(cursor), reason)
    page, more = found[:limit], len(found) > limit
    next_cursor = f"{page[-1][0]}.{page[-1][1]['mail_id']}" if more else None
    mail = [models.SetAsideMail(**doc) for _, doc in page]
    return models.SetAsideMailPage(mail=mail, next_cursor=next_cursor)


@router.get(
    "/mail/{mail_id}/raw",
    tags=["mail"],
    responses={**NOT_FOUND, **FORBIDDEN},
    response_class=Response,
)
async def raw_mail(request: Request, mail_id: uuid.UUID, _: AgentCaller) -> Response:
    """The set-aside mail exactly as it arrived (message/rfc822)."""
    found = await read(view_of(request).mail_set_aside, mail_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no set-aside mail {mail_id}")
    return await blob_response(request, found["sha256"], "message/rfc822", f"{mail_id}.eml")


@router.get("/notifications", tags=["mail"], responses=FORBIDDEN)
async def notifications(
    request: Request,
    _: AgentCaller,
    outcome: Literal["failed", "sent"] = "failed",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[models.Delivery]:
    """The desk's mail by its latest outcome, newest first: by default those that failed
    (the server refused them, or was away past the retry bounds), to resend."""
    found = await read(view_of(request).deliveries, outcome, limit)
    return [models.Delivery(**delivery) for delivery in found]


@router.post(
    "/notifications/{notification_id}/resend",
    status_code=202,
    tags=["mail"],
    responses={**NOT_FOUND, **FORBIDDEN, **CONFLICT},
)
async def resend(request: Request, notification_id: uuid.UUID, who: AgentCaller) -> Accepted:
    """Sends a failed notification again, with the same Message-ID (409 unless it failed)."""
    found = await read(view_of(request).delivery, notification_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no notification {notification_id}")
    if found["outcome"] != "failed":
        raise HTTPException(status.HTTP_409_CONFLICT, f"notification {notification_id} was sent")
    data = m.ResendNotificationData(requested_by=who.name)
    sent = await send(
        request, topics.NOTIFIER_COMMANDS, m.ResendNotification, notification_id, data
    )
    return accepted(notification_id, sent, "/notifications?outcome=sent")


@router.get("/contacts", tags=["mail"])
async def contacts(
    request: Request, who: AnyCaller, organisation: str | None = None
) -> list[models.Contact]:
    """People registered on their first request, by address; a customer sees those of
    their own organisation."""
    if who.is_customer:
        organisation = who.organisation
    found = await read(view_of(request).contacts, organisation)
    return [models.Contact(**contact) for contact in found]


class Filing(BaseModel):
    agreement_id: uuid.UUID


@router.post(
    "/mail/{mail_id}/file",
    status_code=202,
    tags=["mail"],
    responses={**NOT_FOUND, **FORBIDDEN, **CONFLICT},
)
async def file_mail(
    request: Request, mail_id: uuid.UUID, body: Filing, who: AgentCaller
) -> Accepted:
    """Opens a set-aside mail's ticket on the agreement named (an unmatched sender's, or
    mail wrongly taken for a machine's); its clock starts when the mail reached the desk.
    `Location` is the ticket."""
    found = await read(view_of(request).mail_set_aside, mail_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no set-aside mail {mail_id}")
    if found.get("filed_reference"):
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"mail {mail_id} is {found['filed_reference']} already"
        )
    data = m.FileMailData(agreement_id=body.agreement_id, filed_by=who.name)
    sent = await send(request, topics.INBOUND, m.FileMail, mail_id, data)
    ticket_id = m.ticket_id_for_request(mail_id)
    return accepted(ticket_id, sent, f"/tickets/{ticket_id}")


def _cursor(cursor: str | None) -> tuple[int, str] | None:
    if cursor is None:
        return None
    micros, _, mail_id = cursor.partition(".")
    try:
        return int(micros), str(uuid.UUID(mail_id))
    except ValueError as garbled:
        raise unprocessable_query("cursor", "not a cursor of this list", "bad_cursor") from garbled
