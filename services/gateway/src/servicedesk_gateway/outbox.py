"""The gateway's outbox: a command accepted over HTTP is stored in the gateway's own event
store before the caller hears 202, and the shared `OutboxRelay` publishes it from there.
So a command outlives the broker it was first published to (the embedded broker keeps
messages in memory only): every new broker incarnation gets the stored commands again, with
their `event_id`s unchanged, and consumers drop the ones they have already applied."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, ClassVar

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from pydantic import PrivateAttr

from servicedesk_contracts import Message
from servicedesk_contracts.envelope import Data, Envelope
from servicedesk_runtime.store import ServiceStore


class AcceptedCommand(Aggregate):
    """One command accepted over HTTP (its id is the command's `event_id`): one small event
    holding the topic and the message's JSON, exactly as it will be published."""

    Accepted: ClassVar[type[Any]]

    @event("Accepted")
    def __init__(self, id: uuid.UUID, topic: str, message: str) -> None:
        self.topic = topic
        self.message = message


class StoredCommand(Message):
    """A stored command as it is published: the accepted JSON byte for byte. It is not
    validated again, so a stricter contract released in between cannot stall the relay;
    the consuming service decides (and dead-letters what it refuses)."""

    TYPE: ClassVar[str] = "StoredCommand"
    _json: bytes = PrivateAttr(default=b"")

    @classmethod
    def of(cls, raw: bytes) -> StoredCommand:
        envelope = Envelope.model_validate_json(raw)
        stored = cls(**envelope.model_dump(), data=Data())
        stored._json = raw
        return stored

    def to_json(self) -> bytes:
        return self._json


async def store_command(store: ServiceStore, topic: str, message: Message) -> None:
    """Commits the command (one transaction); returns only once it is stored."""
    accepted = AcceptedCommand(id=message.event_id, topic=topic, message=message.to_json().decode())
    # eventsourcing is synchronous: keep the event loop serving while it commits.
    await asyncio.to_thread(store.save, accepted)


def accepted_command(store: ServiceStore, command_id: uuid.UUID) -> dict[str, Any] | None:
    """A command this gateway stored (and publishes), before any service decided it."""
    try:
        accepted: Any = store.repository.get(command_id)
    except AggregateNotFoundError:
        return None
    if not isinstance(accepted, AcceptedCommand):
        return None
    envelope = json.loads(accepted.message)
    return {
        "command_id": str(command_id),
        "status": "accepted",
        "command_type": envelope["event_type"],
        "accepted_at": envelope["occurred_at"],
        "organisation": (envelope.get("actor") or {}).get("organisation"),
    }


def translate(domain_event: Any) -> tuple[str, Message] | None:
    """The relay's view of a stored event: the command to publish, on its topic."""
    if isinstance(domain_event, AcceptedCommand.Accepted):
        return domain_event.topic, StoredCommand.of(domain_event.message.encode())
    return None
