"""The envelope every servicedesk message travels in, and its Kafka encoding.

A message is self-describing JSON: who produced it, when, why (correlation / causation),
which subject it is about (ticket or agreement id, also the Kafka key so one subject's
messages stay in order) and its data. `event_id` is the idempotency key: a consumer that
sees an `event_id` twice must change nothing the second time.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

EVENT_TYPE_HEADER = "event_type"
SCHEMA_VERSION_HEADER = "schema_version"

STORED: Final = {"stored": True}
"""Validation context for reading back what this system accepted and stored earlier (terms
and calendars in its event stores, events its relay publishes again). Acceptance rules
added since (a holiday country that must be known, targets only for the matrix's
priorities, an e-mail without a trailing newline) do not refuse it: what was accepted once
is read as it was, never made unreadable by a stricter validator. Rules that shape what
the code relies on still apply. `Model.model_validate(document, context=STORED)`."""


def reading_stored(info: ValidationInfo) -> bool:
    """True while validating under `STORED`: an acceptance rule lets the value through."""
    return bool(info.context and info.context.get("stored"))


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def _rfc3339(value: Any) -> Any:
    """Only an RFC 3339 string with an offset (or a datetime built in code): pydantic alone
    would read a number, or a string of digits, as epoch seconds."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an RFC 3339 date-time with an offset (e.g. 2026-06-04T13:00:00Z)"
        )
    return value


Rfc3339Datetime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
"""An instant as messages carry it: an RFC 3339 string with an offset, never a number."""


def _no_lone_surrogates(value: Any) -> Any:
    """Raises on a lone surrogate (e.g. the JSON escape "\\ud800") anywhere in `value`: it
    parses as a str but can never be encoded as UTF-8, so it would fail only when stored."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as error:
            raise ValueError(
                f"contains a lone surrogate ({value[error.start]!r} at {error.start}): "
                "not valid Unicode text"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_lone_surrogates(key)
            _no_lone_surrogates(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _no_lone_surrogates(item)
    return value


class _Strict(BaseModel):
    """Every string of every message must be valid Unicode (checked once, here, for every
    field of every model, so a new field cannot forget it). Nested models check their own
    fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _valid_unicode(cls, value: Any) -> Any:
        return _no_lone_surrogates(value)


class Data(_Strict):
    """Base of every message's data: unknown fields are ignored so producers may add
    optional fields without breaking older consumers."""


class Actor(_Strict):
    """The person a command came from, as the gateway knew them; it travels on to every
    event the command produced."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Annotated[str, Field(min_length=1, max_length=40)]
    organisation: Annotated[str, Field(max_length=200)] | None = None


class Envelope(_Strict):
    """Fields every message carries, whatever its type. `event_id` and `occurred_at` are
    required: a message without them would get a fresh id (the same bytes sent twice would
    then count twice) or the time it was read. Code building a new message uses
    `Message.create`, which supplies both."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int = 1
    occurred_at: Rfc3339Datetime
    producer: str
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    subject_id: uuid.UUID
    actor: Actor | None = None
    """Who did it, for what a person did through the gateway; None for the systems' own
    events (a clock that breached) and for requests from other systems."""

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
        actor: Actor | None = None,
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
            "actor": actor,
        }
        fields["occurred_at"] = occurred_at or datetime.now(UTC)
        fields["event_id"] = event_id or uuid.uuid4()
        return cls(**fields)
