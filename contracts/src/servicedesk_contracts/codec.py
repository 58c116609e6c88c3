"""Turning raw Kafka values into message models, with errors that say what is wrong."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from servicedesk_contracts.envelope import Message
from servicedesk_contracts.messages import ALL_MESSAGES

REGISTRY: dict[tuple[str, int], type[Message]] = {
    (cls.TYPE, cls.VERSION): cls for cls in ALL_MESSAGES
}
NEWEST: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in sorted(ALL_MESSAGES, key=lambda cls: cls.VERSION)  # the last one wins
}
MAX_MESSAGE_BYTES = 1024 * 1024
"""Larger values are refused before parsing: no message of ours comes near it (a body is
at most 20,000 characters), and parsing 100 MB of hostile JSON costs memory and time."""


class InvalidMessage(ValueError):
    """A message that cannot be accepted. `reason` is a short, closed-set label for metrics
    and dead-letter headers; the text says exactly what is wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def decode(raw: bytes | None) -> Message:
    """Parses one Kafka value into its message model, or raises `InvalidMessage`."""
    document = parse_json(raw)
    event_type = document.get("event_type")
    version = document.get("schema_version", 1)
    model = model_for(event_type, version)
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise InvalidMessage("validation_failed", _describe(error)) from error


def parse_json(raw: bytes | None) -> dict[str, Any]:
    """The JSON object in a Kafka value, or `InvalidMessage` for anything else: no value,
    too large, not UTF-8, not JSON, nested too deeply, an integer too long to convert, not
    an object."""
    if raw is None:
        raise InvalidMessage("empty", "message has no value")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(
            "too_large", f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES} bytes"
        )
    try:
        document: Any = json.loads(raw)
    except RecursionError as error:
        raise InvalidMessage("invalid_json", "JSON nested too deeply") from error
    except ValueError as error:  # bad UTF-8, bad JSON, an integer of thousands of digits
        raise InvalidMessage("invalid_json", f"not valid JSON: {str(error)[:200]}") from error
    if not isinstance(document, dict):
        raise InvalidMessage("invalid_json", "message is not a JSON object")
    return document


def model_for(event_type: object, version: object) -> type[Message]:
    """The model that reads a message of this type and version. A newer version of a known
    type is read with the fields this code knows (fields are only ever added); an unknown
    type raises `InvalidMessage` with reason `unknown_type`."""
    if not isinstance(event_type, str) or type(version) is not int or version < 1:
        raise InvalidMessage(
            "unknown_type", f"unknown event_type {event_type!r} version {version!r}"
        )
    model = REGISTRY.get((event_type, version))
    newest = NEWEST.get(event_type)
    if model is None and newest is not None and version > newest.VERSION:
        model = newest
    if model is None:
        raise InvalidMessage(
            "unknown_type", f"unknown event_type {event_type!r} version {version!r}"
        )
    return model


def _describe(error: ValidationError) -> str:
    """One line per problem, naming the field: `data.reporter_email: value is not...`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in problem['loc']) or '(message)'}: {problem['msg']}"
        for problem in error.errors()
    )
