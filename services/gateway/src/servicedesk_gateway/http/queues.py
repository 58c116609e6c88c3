"""The queues agents work from, and their workload."""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from servicedesk_gateway.http import models
from servicedesk_gateway.http.common import AgentCaller, page_of, read, view_of
from servicedesk_gateway.http.models import COMMON_RESPONSES, FORBIDDEN
from servicedesk_gateway.view.queries import Sort, TicketFilter

router = APIRouter(responses=COMMON_RESPONSES)
NEXT_DEADLINE_FIRST = Sort("due", descending=False)
Cursor = Annotated[str | None, Query(max_length=500)]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/queues/mine", tags=["queues"], responses=FORBIDDEN)
async def my_queue(
    request: Request, who: AgentCaller, cursor: Cursor = None, limit: Limit = 50
) -> models.TicketPage:
    """The caller's open tickets, the next deadline first."""
    where = TicketFilter(assignee=who.name, open_only=True)
    return await page_of(request, where, NEXT_DEADLINE_FIRST, cursor, limit)


@router.get("/queues/unassigned", tags=["queues"], responses=FORBIDDEN)
async def unassigned_queue(
    request: Request,
    who: AgentCaller,
    group: Annotated[str | None, Query(max_length=60)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> models.TicketPage:
    """Open tickets nobody has taken, in `group` (by default every group), the next
    deadline first."""
    where = TicketFilter(unassigned=True, group=group, open_only=True)
    return await page_of(request, where, NEXT_DEADLINE_FIRST, cursor, limit)


@router.get("/queues/breaching-next", tags=["queues"], responses=FORBIDDEN)
async def breaching_next(
    request: Request, _: AgentCaller, cursor: Cursor = None, limit: Limit = 50
) -> models.TicketPage:
    """Every open ticket with a clock running towards a deadline, the nearest first."""
    where = TicketFilter(open_only=True, due_only=True)
    return await page_of(request, where, NEXT_DEADLINE_FIRST, cursor, limit)


@router.get("/workload", tags=["queues"], responses=FORBIDDEN)
async def workload(request: Request, _: AgentCaller) -> list[models.Workload]:
    """Per agent: open tickets assigned, how many at risk, how many breached."""
    return [models.Workload(**row) for row in await read(view_of(request).workload)]
