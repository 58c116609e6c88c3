"""The envelope every servicedesk message travels in, and its Kafka encoding.

A message is self-describing JSON: who produced it, when, why (correlation / causation),
which subject it is about (ticket or agreement id, also the Kafka key so one subject's
messages stay in order) and its data. `event_id` is the idempotency key: a consumer that
sees an `event_id` twice must change nothing the second time.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

EVENT_TYPE_HEADER = "event_type"
SCHEMA_VERSION_HEADER = "schema_version"


class Data(BaseModel):
    """Base of every message's data: unknown fields are ignored so producers may add
    optional fields without breaking older consumers."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Envelope(BaseModel):
    """Fields every message carries, whatever its type."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str
    schema_version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    subject_id: uuid.UUID

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class Message(Envelope):
    """A concrete message: subclasses fix `event_type`, `schema_version` and `data`."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    data: Data

    def kafka_key(self) -> bytes:
        return str(self.subject_id).encode()

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        return [
            (EVENT_TYPE_HEADER, self.event_type.encode()),
            (SCHEMA_VERSION_HEADER, str(self.schema_version).encode()),
        ]

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def create(
        cls,
        *,
        producer: str,
        subject_id: uuid.UUID,
        data: Any,
        occurred_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> Any:
        """Builds a message of this type; ids and time default to fresh ones."""
        fields: dict[str, Any] = {
            "event_type": cls.TYPE,
            "schema_version": cls.VERSION,
            "producer": producer,
            "subject_id": subject_id,
            "data": data,
            "correlation_id": correlation_id,
            "causation_id": causation_id,
        }
        if occurred_at is not None:
            fields["occurred_at"] = occurred_at
        if event_id is not None:
            fields["event_id"] = event_id
        return cls(**fields)
