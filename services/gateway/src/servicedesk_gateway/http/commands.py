"""What became of a command."""

import uuid

from fastapi import (
    APIRouter,
    HTTPException,
    Request,
    status,
)

from servicedesk_gateway.http import models
from servicedesk_gateway.http.common import (
    AnyCaller,
    read,
    view_of,
)
from servicedesk_gateway.http.models import COMMON_RESPONSES, NOT_FOUND

router = APIRouter(responses=COMMON_RESPONSES)


@router.get("/commands/{command_id}", tags=["commands"], responses=NOT_FOUND)
async def get_command(
    request: Request, command_id: uuid.UUID, _: AnyCaller
) -> models.CommandStatus:
    """What became of a command: `accepted` (stored, not decided yet), `applied` (with
    what it produced: ids, and a ticket's reference) or `refused` (with the reason and
    detail the service gave; the command is also on the dead-letter topic)."""
    decided = await read(view_of(request).command, command_id)
    if decided is not None:
        return models.CommandStatus(**decided)
    accepted = await read(request.app.state.find_accepted, command_id)
    if accepted is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no command {command_id}")
    return models.CommandStatus(**accepted)
