"""A small customer portal: server-rendered pages (Jinja2, no build step, no script) where
a customer with a token submits a request, follows its conversation and replies.

The token is given once on a login form and kept in an HttpOnly, SameSite=Strict cookie
scoped to /portal (so another site cannot make the browser post with it). Every page works
through the same code as the JSON API: the same checks, the same commands, the same
isolation (a customer sees their organisation's tickets only)."""

from __future__ import annotations

import asyncio
import uuid
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError

from servicedesk_contracts import matrices
from servicedesk_gateway.auth import Caller, People
from servicedesk_gateway.http.common import (
    blob_response,
    command_or_404,
    read,
    scoped,
    ticket_or_404,
    view_of,
)
from servicedesk_gateway.http.tickets import TicketSubmission, answer, submit
from servicedesk_gateway.view.conversation import attachments_of, conversation
from servicedesk_gateway.view.queries import Sort, TicketFilter
from servicedesk_gateway.view.tickets import TicketView
from servicedesk_gateway.view.timeline import timeline

router = APIRouter(prefix="/portal", include_in_schema=False)
COOKIE = "sd_portal"
SHOWN = frozenset({"TicketOpened", "TicketStatusChanged", "AgentReplied", "CustomerReplied"})
"""What a customer follows of their ticket: the request, the answers and the status."""


@cache
def _pages() -> Environment:
    return Environment(
        loader=PackageLoader("servicedesk_gateway", "templates/portal"),
        autoescape=select_autoescape(default=True),
    )


def _page(name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    html = _pages().get_template(name).render(**values)
    return HTMLResponse(html, status_code=status_code)


async def _customer(request: Request) -> Caller | None:
    """The customer the portal cookie names (checked in a thread: a first argon2 check
    of a people-file token takes ~30 ms)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    people: People = request.app.state.people
    who = await asyncio.to_thread(people.lookup, token)
    if who is None or not who.is_customer:
        return None
    request.state.who = who  # the actor of what the pages send, the scope of what they show
    return who


def _to_login() -> Response:
    return RedirectResponse("/portal", status_code=status.HTTP_303_SEE_OTHER)


@router.get("")
async def home(request: Request) -> Response:
    who = await _customer(request)
    if who is None:
        return _page("login.html")
    where = scoped(who, TicketFilter())
    page = await read(view_of(request).tickets, where, Sort("received", True), None, 100)
    agreements = await read(view_of(request).agreements_of, who.organisation or "")
    if who.agreement_id is not None:
        agreements = [a for a in agreements if a["agreement_id"] == str(who.agreement_id)]
    return _page(
        "home.html",
        who=who,
        tickets=page.tickets,
        agreements=agreements,
        words=matrices.MATRICES,
    )


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form(max_length=512)]) -> Response:
    people: People = request.app.state.people
    who = await asyncio.to_thread(people.lookup, token.strip())
    if who is None or not who.is_customer:
        return _page("login.html", 401, problem="That token is not a customer's token.")
    response = _to_login()
    response.set_cookie(
        COOKIE,
        token.strip(),
        httponly=True,
        samesite="strict",
        path="/portal",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = _to_login()
    response.delete_cookie(COOKIE, path="/portal")
    return response


@router.post("/requests")
async def new_request(
    request: Request,
    agreement_id: Annotated[uuid.UUID, Form()],
    reporter_email: Annotated[str, Form(max_length=320)],
    subject: Annotated[str, Form(max_length=300)],
    body: Annotated[str, Form(max_length=20_000)],
    category: Annotated[str, Form(max_length=60)] = "incident",
    impact: Annotated[str, Form(max_length=60)] = "",
    urgency: Annotated[str, Form(max_length=60)] = "",
) -> Response:
    who = await _customer(request)
    if who is None:
        return _to_login()
    try:
        submission = TicketSubmission(
            agreement_id=agreement_id,
            reporter_email=reporter_email,
            reporter_name=who.name,
            organisation=who.organisation or "",
            channel="portal",
            subject=subject,
            body=body,
            category=category,
            impact=impact or "unknown",
            urgency=urgency or "unknown",
        )
    except ValidationError as invalid:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in invalid.errors())
        return _page("problem.html", 422, who=who, problem=problems)
    try:
        accepted = await submit(request, who, submission)
    except HTTPException as refused:
        return _page("problem.html", refused.status_code, who=who, problem=str(refused.detail))
    target = f"/portal/requests/{accepted.command_id}"
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


@router.get("/requests/{command_id}")
async def request_page(request: Request, command_id: uuid.UUID) -> Response:
    """A request just sent: 'registering' (the page looks again shortly) until intake has
    opened the ticket, then the ticket; or why it was refused."""
    who = await _customer(request)
    if who is None:
        return _to_login()
    try:
        found = await command_or_404(request, command_id)
    except HTTPException:
        return _page("problem.html", 404, who=who, problem="No such request.")
    if found["status"] == "refused":
        return _page("problem.html", 422, who=who, problem=found.get("detail") or "refused")
    opened = [p["reference"] for p in found.get("produced", []) if p.get("reference")]
    # The outcome may arrive before the view has the ticket: wait for both.
    if opened and await read(view_of(request).ticket, opened[0]) is not None:
        return RedirectResponse(f"/portal/tickets/{opened[0]}", status.HTTP_303_SEE_OTHER)
    return _page("pending.html", who=who)


async def _own_ticket(
    request: Request, key: str
) -> tuple[Caller, TicketView, list[tuple[str, dict[str, Any]]]] | Response:
    """The logged-in customer, their ticket and its facts; or the page to show instead
    (the login, or "no such request" for one that is not theirs)."""
    who = await _customer(request)
    if who is None:
        return _to_login()
    try:
        ticket = await ticket_or_404(request, key)
    except HTTPException:
        return _page("problem.html", 404, who=who, problem=f"No request {key}.")
    return who, ticket, await read(view_of(request).ticket_events, ticket)


@router.get("/tickets/{key}")
async def ticket_page(request: Request, key: str) -> Response:
    found = await _own_ticket(request, key)
    if isinstance(found, Response):
        return found
    who, ticket, facts = found
    entries = [entry for entry in timeline(facts, None) if entry["event"] in SHOWN]
    files = {
        message["event_id"]: message["attachments"]
        for message in conversation(facts, for_customer=True)
        if message["attachments"]
    }
    sent = request.query_params.get("sent") == "1"
    return _page(
        "ticket.html", who=who, ticket=ticket, entries=entries, files=files, request_sent=sent
    )


@router.get("/tickets/{key}/attachments/{sha256}")
async def attachment(request: Request, key: str, sha256: str) -> Response:
    """A file of the customer's own conversation (the portal's cookie, not a bearer)."""
    own = await _own_ticket(request, key)
    if isinstance(own, Response):
        return own
    who, _, facts = own
    found = attachments_of(conversation(facts, for_customer=True)).get(sha256)
    if found is None:
        return _page("problem.html", 404, who=who, problem="No such file on this request.")
    return await blob_response(request, sha256, found["content_type"], found["filename"])


@router.post("/tickets/{key}/replies")
async def reply(
    request: Request, key: str, body: Annotated[str, Form(min_length=1, max_length=20_000)]
) -> Response:
    who = await _customer(request)
    if who is None:
        return _to_login()
    try:
        await answer(request, who, key, body, channel="portal")
    except HTTPException as refused:
        return _page("problem.html", refused.status_code, who=who, problem=str(refused.detail))
    return RedirectResponse(f"/portal/tickets/{key}?sent=1", status.HTTP_303_SEE_OTHER)
