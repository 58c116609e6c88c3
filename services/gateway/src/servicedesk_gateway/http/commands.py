"""What became of a command."""

import uuid

from fastapi import APIRouter, HTTPException, Request, status

from servicedesk_gateway.http import models
from servicedesk_gateway.http.common import AnyCaller, read, view_of
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
    decided = await read(view_of(request).command, command_id)
    accepted = await read(request.app.state.find_accepted, command_id)
    found = accepted if decided is None else {**(accepted or {}), **decided}
    if found is None or (who.is_customer and found.get("organisation") != who.organisation):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no command {command_id}")
    return models.CommandStatus(**found)
