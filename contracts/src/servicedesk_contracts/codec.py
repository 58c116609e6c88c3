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


class InvalidMessage(ValueError):
    """A message that cannot be accepted. `reason` is a short, closed-set label for metrics
    and dead-letter headers; the text says exactly what is wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def decode(raw: bytes | None) -> Message:
    """Parses one Kafka value into its message model, or raises `InvalidMessage`."""
    if raw is None:
        raise InvalidMessage("empty", "message has no value")
    try:
        document: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidMessage("invalid_json", f"not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise InvalidMessage("invalid_json", "message is not a JSON object")
    event_type = document.get("event_type")
    version = document.get("schema_version", 1)
    model = REGISTRY.get((str(event_type), version)) if isinstance(version, int) else None
    if model is None:
        raise InvalidMessage(
            "unknown_type", f"unknown event_type {event_type!r} version {version!r}"
        )
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise InvalidMessage("validation_failed", _describe(error)) from error


def _describe(error: ValidationError) -> str:
    """One line per problem, naming the field: `data.reporter_email: value is not...`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in problem['loc']) or '(message)'}: {problem['msg']}"
        for problem in error.errors()
    )
