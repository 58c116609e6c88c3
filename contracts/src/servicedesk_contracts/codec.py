"""Turning raw Kafka values into message models, with errors that say what is wrong."""

from __future__ import annotations

import json
import re
from itertools import accumulate
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


MAX_JSON_DEPTH = 64
"""Deeper JSON is refused before parsing. Ours nests six levels at most (an agreement's
terms, `contracts/examples`). Python's parser recurses once per level: a text nested near
the interpreter's limit raises RecursionError, and leaves whatever runs meanwhile without
stack (a garbage collection's finalizers then fail)."""

_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
"""A JSON string, or an unterminated one to the end: one pass over any text, never a
second try from a later quote."""
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = [{ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.get(b, 0) for b in range(256)]


class TooDeep(ValueError):
    """JSON nested deeper than a parser may go safely."""


def load_json(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` for text from outside: a text whose arrays and objects nest deeper than
    `max_depth` raises `TooDeep` without being parsed. Anything else is as `json.loads`."""
    text = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if _nesting_depth(text, max_depth) > max_depth:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    return json.loads(raw)


def _nesting_depth(text: bytes, bound: int) -> int:
    """How deep arrays and objects nest in `text`; brackets inside strings do not count.
    A text with few brackets is not scanned: its depth is at most their number."""
    brackets = text.count(b"[") + text.count(b"{")
    if brackets <= bound:
        return brackets
    structure = _STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, structure)), default=0)


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
    too large, not UTF-8, not JSON, nested too deep, an integer too long to convert, not
    an object."""
    if raw is None:
        raise InvalidMessage("empty", "message has no value")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(
            "too_large", f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES} bytes"
        )
    try:
        document: Any = load_json(raw)
    except TooDeep as error:
        raise InvalidMessage("invalid_json", str(error)) from error
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
