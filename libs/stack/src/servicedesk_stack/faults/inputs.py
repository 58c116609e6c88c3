"""What the fault suite sends on the inbound topic: requests as another system sends
them, commands to billing, and hostile messages of every kind."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SHORT_AGREEMENT = uuid.UUID("00000000-0000-4000-8000-0000000000f1")
"""24x7 with targets of seconds: its clocks warn and breach during the run."""
HOURS_AGREEMENT = uuid.UUID("00000000-0000-4000-8000-0000000000f2")
"""Business hours on Dutch working days: its clocks run for days."""


def submit_ticket(
    request_id: uuid.UUID, agreement_id: uuid.UUID, n: int, **data: Any
) -> dict[str, Any]:
    return {
        "event_id": str(request_id),
        "event_type": "SubmitTicket",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "fault-suite",
        "subject_id": str(request_id),
        "data": {
            "agreement_id": str(agreement_id),
            "reporter_email": f"user{n}@example.com",
            "reporter_name": f"User {n}",
            "organisation": "Fault Suite Ltd",
            "channel": "api",
            "subject": f"Fault suite request {n}",
            "body": "Something is wrong",
            "category": "incident",
            "impact": ("high", "medium", "low")[n % 3],
            "urgency": "medium",
            **data,
        },
    }


def command(event_type: str, subject_id: uuid.UUID, data: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "occurred_at": datetime.now(UTC).isoformat(),
            "producer": "fault-suite",
            "subject_id": str(subject_id),
            "data": data,
        }
    ).encode()


@dataclass(frozen=True)
class Hostile:
    kind: str
    key: bytes
    value: bytes
    expect: str
    """"valid", "dead_letter" or "duplicate"."""
    request: uuid.UUID | None = None
    subject: str = ""


def _valid(n: int, **data: Any) -> dict[str, Any]:
    return submit_ticket(uuid.uuid4(), HOURS_AGREEMENT, n, **data)


def _without(path: str) -> Callable[[dict[str, Any]], Any]:
    def change(document: dict[str, Any]) -> None:
        if "." in path:
            del document["data"][path.split(".", 1)[1]]
        else:
            del document[path]

    return change


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def change(document: dict[str, Any]) -> None:
        if "." in path:
            document["data"][path.split(".", 1)[1]] = value
        else:
            document[path] = value

    return change


Change = Callable[[dict[str, Any]], Any]

DOCUMENT_VARIANTS: dict[str, dict[str, Change]] = {
    "missing_field": {
        f: _without(f)
        for f in ("event_id", "occurred_at", "event_type", "data.subject", "data.agreement_id")
    },
    "wrong_field": {
        "impact_int": _set("data.impact", 5),
        "agreement_not_uuid": _set("data.agreement_id", "not-a-uuid"),
        "occurred_at_epoch": _set("occurred_at", 1_764_300_000),
        "channel_unknown": _set("data.channel", "pigeon"),
        "email_invalid": _set("data.reporter_email", "not an address"),
        "event_id_not_uuid": _set("event_id", "not-a-uuid"),
        "data_string": _set("data", "a string"),
    },
    "lone_surrogate": {
        "email": _set("data.reporter_email", "us\ud800er@example.com"),
        "subject": _set("data.subject", "x\udc00"),
    },
    "line_break": {
        "subject_crlf_bcc": _set("data.subject", "Hello\r\nBcc: victim@example.com"),
        "subject_lf_header": _set("data.subject", "Hello\nX-Injected: yes"),
        "subject_u2028": _set("data.subject", "Hello\u2028there"),
        "email_trailing_lf": _set("data.reporter_email", "user@example.com\n"),
        "name_crlf_bcc": _set("data.reporter_name", "Eve\r\nBcc: victim@example.com"),
    },
    "unknown_type": {"": _set("event_type", "DeleteAllTickets")},
    "future_time": {
        "": _set("occurred_at", (datetime.now(UTC) + timedelta(days=30)).isoformat()),
    },
}
"""Hostile messages made from a valid request by one change."""


def _constant(raw: bytes) -> Callable[[random.Random], bytes]:
    return lambda _: raw


RAW_VARIANTS: dict[str, dict[str, Callable[[random.Random], bytes]]] = {
    "raw_bytes": {"": lambda rnd: rnd.randbytes(rnd.randint(1, 300))},
    "invalid_utf8": {"": lambda _: b'{"event_type": "SubmitTicket", "subject": "\xc3\x28\xff"}'},
    "non_object": {
        name: _constant(raw)
        for name, raw in {
            "array": b"[]",
            "string": b'"text"',
            "number": b"42",
            "null": b"null",
            "array_of_message": b'[{"event_type": "SubmitTicket"}]',
        }.items()
    },
    "deep_json": {
        "arrays": lambda _: b"[" * 5000 + b"]" * 5000,
        "objects": lambda _: b'{"a":' * 3000 + b"1" + b"}" * 3000,
    },
}
"""Hostile messages that are not a request at all."""


def _hostile_one(n: int, rnd: random.Random) -> Hostile:
    kinds = sorted([*DOCUMENT_VARIANTS, *RAW_VARIANTS, "huge_integer"])
    kind = kinds[n % len(kinds)]
    key = f"hostile-{n}".encode()
    if kind in RAW_VARIANTS:
        variant, make = rnd.choice(sorted(RAW_VARIANTS[kind].items()))
        return Hostile(f"{kind}:{variant}".rstrip(":"), key, make(rnd), "dead_letter")
    document = _valid(n, subject=f"Hostile request {n}")
    if kind == "huge_integer":
        value = _dumps(document).replace(
            b'"schema_version": 1', b'"schema_version": ' + b"7" * 5000
        )
        return Hostile(kind, key, value, "dead_letter", subject=f"Hostile request {n}")
    variant, change = rnd.choice(sorted(DOCUMENT_VARIANTS[kind].items()))
    change(document)
    data = document.get("data")
    return Hostile(
        f"{kind}:{variant}".rstrip(":"),
        key,
        _dumps(document),
        "dead_letter",
        request=_uuid_or_none(document.get("event_id")),
        subject=data.get("subject", "") if isinstance(data, dict) else "",
    )


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def hostile_batch(hostile: int, valid: int, big_bodies: int, rnd: random.Random) -> list[Hostile]:
    """`hostile` messages of every kind (a tenth of them duplicates of valid ones, a few
    over 1 MB) shuffled among `valid` good ones."""
    valids = []
    for n in range(valid):
        document = _valid(100_000 + n)
        request = uuid.UUID(document["event_id"])
        valids.append(Hostile("valid", str(request).encode(), _dumps(document), "valid", request))
    batch = list(valids)
    for n in range(hostile):
        if n < big_bodies:
            value = _dumps(_valid(n, body="x" * 1_100_000))
            batch.append(Hostile("big_body", f"hostile-{n}".encode(), value, "dead_letter"))
        elif n % 10 == 0 and valids:
            original = rnd.choice(valids)
            batch.append(Hostile("duplicate", original.key, original.value, "duplicate"))
        else:
            batch.append(_hostile_one(n, rnd))
    rnd.shuffle(batch)
    # A duplicate is one only after its original: hold back those that come first.
    seen: set[bytes] = set()
    ordered: list[Hostile] = []
    held: list[Hostile] = []
    for h in batch:
        if h.expect == "duplicate" and h.key not in seen:
            held.append(h)
            continue
        seen.add(h.key)
        ordered.append(h)
    return ordered + held
