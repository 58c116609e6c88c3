"""What became of a command."""

import uuid
from typing import Any

from fastapi import (
    APIRouter,
    HTTPException,
    Request,
    status,
)

from servicedesk_gateway.http.common import (
    AnyCaller,
    read,
    view_of,
)

router = APIRouter()


@router.get("/commands/{command_id}", tags=["commands"])
async def get_command(request: Request, command_id: uuid.UUID, _: AnyCaller) -> dict[str, Any]:
    """What became of a command: `accepted` (stored, not decided yet), `applied` (with
    what it produced: ids, and a ticket's reference) or `refused` (with the reason and
    detail the service gave; the command is also on the dead-letter topic)."""
    decided = await read(view_of(request).command, command_id)
    if decided is not None:
        return decided
    accepted = await read(request.app.state.find_accepted, command_id)
    if accepted is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no command {command_id}")
    result: dict[str, Any] = accepted
    return result
