"""What became of a command."""

import uuid

from fastapi import APIRouter, Request

from servicedesk_gateway.http import models
from servicedesk_gateway.http.common import AnyCaller, command_or_404
from servicedesk_gateway.http.models import COMMON_RESPONSES, NOT_FOUND

router = APIRouter(responses=COMMON_RESPONSES)


@router.get("/commands/{command_id}", tags=["commands"], responses=NOT_FOUND)
async def get_command(
    request: Request, command_id: uuid.UUID, who: AnyCaller
) -> models.CommandStatus:
    """What became of a command: `accepted` (stored, not decided yet), `applied` (with
    what it produced: ids, and a ticket's reference) or `refused` (with the reason and
    detail the service gave; the command is also on the dead-letter topic). A customer
    reads the commands of their own organisation."""
    return models.CommandStatus(**await command_or_404(request, command_id))
