"""Agreements, plans, statements and evaluations (admins change, agents read)."""

import uuid
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel

from servicedesk_contracts import calendars, plans, topics
from servicedesk_contracts import messages as m
from servicedesk_gateway.http import models
from servicedesk_gateway.http.common import (
    Accepted,
    AdminCaller,
    AnyCaller,
    accepted,
    agreement_or_404,
    read,
    sees_agreement,
    send,
    unprocessable,
    view_of,
)
from servicedesk_gateway.http.models import COMMON_RESPONSES, CONFLICT, FORBIDDEN, NOT_FOUND
from servicedesk_gateway.reports import evaluation
from servicedesk_gateway.statements import as_csv, as_html

router = APIRouter(responses=COMMON_RESPONSES)


class AgreementRequest(m.AgreementTerms):
    agreement_id: uuid.UUID | None = None


class StatementRequest(BaseModel):
    month: m.Month


@router.post("/agreements", status_code=202, tags=["agreements"], responses=FORBIDDEN)
async def register_agreement(request: Request, body: AgreementRequest, _: AdminCaller) -> Accepted:
    agreement_id = body.agreement_id or uuid.uuid4()
    terms = m.AgreementTerms.model_validate(body.model_dump(exclude={"agreement_id"}))
    sent = await send(request, topics.BILLING_COMMANDS, m.RegisterAgreement, agreement_id, terms)
    request.app.state.registering.add(agreement_id)
    return accepted(agreement_id, sent, f"/agreements/{agreement_id}")


class PlanAgreementRequest(m.PlanSelection):
    agreement_id: uuid.UUID | None = None


@router.get("/plans", tags=["agreements"])
async def list_plans(_: AnyCaller) -> list[plans.Plan]:
    """The plan catalogue (DOMAIN.md's providers) that agreements may name."""
    return list(plans.PLANS.values())


@router.post("/agreements/by-plan", status_code=202, tags=["agreements"], responses=FORBIDDEN)
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
        raise unprocessable(refused.field, refused.detail, refused.reason) from refused
    sent = await send(
        request, topics.BILLING_COMMANDS, m.RegisterPlanAgreement, agreement_id, selection
    )
    request.app.state.registering.add(agreement_id)
    return accepted(agreement_id, sent, f"/agreements/{agreement_id}")


@router.get("/agreements", tags=["agreements"], responses=FORBIDDEN)
async def list_agreements(request: Request, _: AnyCaller) -> list[models.Agreement]:
    """The agreements the caller may see (all, for the desk's own staff), by customer: what
    month-end runs go through."""
    docs = await read(view_of(request).all_agreements)
    who = request.state.who
    return [models.Agreement.model_validate(doc) for doc in docs if sees_agreement(who, doc)]


@router.get(
    "/agreements/{agreement_id}",
    tags=["agreements"],
    responses={**NOT_FOUND, 200: {"model": models.Agreement}},
)
async def get_agreement(request: Request, agreement_id: uuid.UUID, _: AnyCaller) -> dict[str, Any]:
    return await agreement_or_404(request, agreement_id)


async def _require_month_ended(request: Request, agreement_id: uuid.UUID, month: str) -> None:
    """Billing's rule, told at the door when the view knows the agreement's time zone (if
    it does not, billing refuses the command itself)."""
    agreement = await read(view_of(request).agreement, agreement_id)
    if agreement is None:
        return
    zone = agreement["calendar"]["timezone"]
    ends = calendars.month_end(month, zone)
    if request.app.state.now() < ends:
        detail = f"{month} has not ended in {zone}: it ends {ends.isoformat()}"
        raise unprocessable("month", detail, "month_not_ended")


@router.post(
    "/agreements/{agreement_id}/statements",
    status_code=202,
    tags=["billing"],
    responses={**FORBIDDEN, **CONFLICT},
)
async def issue_statement(
    request: Request, agreement_id: uuid.UUID, body: StatementRequest, _: AdminCaller
) -> Accepted:
    await _require_month_ended(request, agreement_id, body.month)
    if await read(view_of(request).statement, agreement_id, body.month) is not None:
        detail = f"the statement for {body.month} was issued already (issued once, never again)"
        raise HTTPException(status.HTTP_409_CONFLICT, detail)
    data = m.IssueStatementData(month=body.month)
    sent = await send(request, topics.BILLING_COMMANDS, m.IssueStatement, agreement_id, data)
    return accepted(agreement_id, sent, f"/agreements/{agreement_id}/statements/{body.month}")


@router.post(
    "/agreements/{agreement_id}/cancellation",
    status_code=202,
    tags=["agreements"],
    responses=FORBIDDEN,
)
async def cancel_agreement(
    request: Request, agreement_id: uuid.UUID, body: m.CancelAgreementData, _: AdminCaller
) -> Accepted:
    """Ends the agreement after `effective_on`; that month's fees are charged by the day."""
    sent = await send(request, topics.BILLING_COMMANDS, m.CancelAgreement, agreement_id, body)
    return accepted(agreement_id, sent, f"/agreements/{agreement_id}")


@router.post(
    "/agreements/{agreement_id}/top-ups", status_code=202, tags=["billing"], responses=FORBIDDEN
)
async def top_up_bundle(
    request: Request, agreement_id: uuid.UUID, body: m.TopUpBundleData, _: AdminCaller
) -> Accepted:
    """Adds prepaid minutes to a bundle; they show on the next statement."""
    sent = await send(request, topics.BILLING_COMMANDS, m.TopUpBundle, agreement_id, body)
    return accepted(agreement_id, sent, f"/agreements/{agreement_id}")


@router.get("/agreements/{agreement_id}/reports/{month}", tags=["billing"], responses=NOT_FOUND)
async def get_evaluation(
    request: Request, agreement_id: uuid.UUID, month: m.Month, _: AnyCaller
) -> models.Evaluation:
    """The month's evaluation: tickets opened, time to first response, targets met."""
    agreement = await agreement_or_404(request, agreement_id)
    return models.Evaluation(**await read(evaluation, view_of(request), agreement, month))


@router.get(
    "/agreements/{agreement_id}/statements/{month}",
    tags=["billing"],
    responses={
        **NOT_FOUND,
        **FORBIDDEN,
        200: {
            "model": m.StatementIssuedData,
            "content": {"text/csv": {}, "text/html": {}},
        },
    },
)
async def get_statement(
    request: Request,
    agreement_id: uuid.UUID,
    month: m.Month,
    who: AnyCaller,
    format: Literal["json", "csv", "html"] = "json",
) -> Any:
    """The issued statement as JSON, CSV (bookkeeping) or an HTML page to send. A customer
    reads their own agreement's, and only as its billing contact."""
    if who.is_customer:
        await agreement_or_404(request, agreement_id)  # their own, or 404 as for none
        if not who.billing_contact:
            detail = "only the billing contact reads statements"
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail)
    statement = await read(view_of(request).statement, agreement_id, month)
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
