"""The dead-letter workbench: read what was refused, and send a message back to its source
topic once (as it was, or fixed), with an audit record of who did it.

A dead letter is a record of `servicedesk.dead-letter.v1`: the refused message's key and
value (a value over 256 KiB is cut, and a header says so), with why and where from in its
headers. A replay publishes first the audit record (`DeadLetterReplayed`, on
`servicedesk.dead-letter-replays.v1`, keyed by the dead letter's id), then the message, to
its source topic with its original key. A dead letter with an audit record is not replayed
again. Should the process die between the two, the audit record names what was meant to be
sent, and sending it again changes nothing (every consumer skips an event_id it applied).
A message a service read and refused for a domain reason counts as decided: it is replayed
only under a new event_id (see `servicedesk_runtime.refusals`).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from servicedesk_contracts import InvalidMessage, decode, topics
from servicedesk_contracts.codec import parse_json
from servicedesk_contracts.messages import (
    DeadLetterReplayed,
    DeadLetterReplayedData,
    dead_letter_id,
)
from servicedesk_runtime.ends import StoredRecord, read_whole_topic
from servicedesk_runtime.kafka import new_producer
from servicedesk_runtime.refusals import decided_when_refused

REPLAY_HEADER = "replayed_from_dead_letter"


class ReplayRefused(Exception):
    """Why a dead letter is not sent back (already replayed, no such dead letter, a fixed
    message that would be refused again)."""


@dataclass(frozen=True)
class DeadLetter:
    record: StoredRecord

    @property
    def ref(self) -> str:
        """How an operator names it: partition:offset on the dead-letter topic."""
        return f"{self.record.partition}:{self.record.offset}"

    @property
    def id(self) -> uuid.UUID:
        return dead_letter_id(self.record.partition, self.record.offset)

    def header(self, name: str) -> str:
        return self.record.header(name) or ""

    @property
    def reason(self) -> str:
        return self.header("error_reason")

    @property
    def source_topic(self) -> str:
        return self.header("source_topic")

    @property
    def event_id(self) -> str | None:
        return _event_id(self.record.value)

    def summary(self) -> dict[str, Any]:
        """What `list` shows of it."""
        return {
            "ref": self.ref,
            "reason": self.reason,
            "service": self.header("source_service"),
            "source": f"{self.source_topic}@{self.header('source_partition')}:"
            f"{self.header('source_offset')}",
            "key": _text(self.record.key),
            "event_id": self.event_id,
            "detail": self.header("error_detail")[:200],
        }

    def details(self) -> dict[str, Any]:
        """What `show` prints: every header, and the value as text."""
        return {
            "ref": self.ref,
            "id": str(self.id),
            "timestamp_ms": self.record.timestamp_ms,
            "key": _text(self.record.key),
            "headers": {name: self.header(name) for name in sorted(self.record.headers)},
            "value": _text(self.record.value),
        }


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


def _event_id(raw: bytes | None) -> str | None:
    try:
        value = parse_json(raw).get("event_id")
    except InvalidMessage:
        return None
    return value if isinstance(value, str) else None


async def dead_letters(bootstrap: str) -> list[DeadLetter]:
    return [DeadLetter(r) for r in await read_whole_topic(bootstrap, topics.DEAD_LETTER)]


async def replays(bootstrap: str) -> dict[uuid.UUID, DeadLetterReplayed]:
    """The audit records, by dead letter id."""
    found: dict[uuid.UUID, DeadLetterReplayed] = {}
    for record in await read_whole_topic(bootstrap, topics.DEAD_LETTER_REPLAYS):
        try:
            message = decode(record.value)
        except InvalidMessage:
            continue  # not ours: an audit record is only what decodes as one
        if isinstance(message, DeadLetterReplayed):
            found.setdefault(message.subject_id, message)
    return found


async def replay(
    bootstrap: str, ref: str, by: str, fixed: bytes | None = None
) -> DeadLetterReplayed:
    """Sends dead letter `ref` back to its source topic once: its own value, or `fixed`."""
    letter = await _find(bootstrap, ref)
    done = (await replays(bootstrap)).get(letter.id)
    if done is not None:
        raise ReplayRefused(
            f"dead letter {ref} was replayed already, by {done.data.replayed_by} at "
            f"{done.occurred_at.isoformat()}"
        )
    value = fixed if fixed is not None else letter.record.value
    if value is None:
        raise ReplayRefused(f"dead letter {ref} has no value: give a fixed message (--file)")
    if letter.source_topic not in topics.ALL:
        raise ReplayRefused(f"dead letter {ref} came from {letter.source_topic!r}: not ours")
    _check_decodes(value, ref)
    _check_not_decided(letter, value)
    audit = DeadLetterReplayed.create(
        producer="operator",
        subject_id=letter.id,
        data=DeadLetterReplayedData(
            dead_letter_partition=letter.record.partition,
            dead_letter_offset=letter.record.offset,
            source_topic=letter.source_topic,
            source_partition=_int(letter.header("source_partition")),
            source_offset=_int(letter.header("source_offset")),
            reason=letter.reason or "unknown",
            replayed_by=by,
            fixed=fixed is not None,
            value_sha256=hashlib.sha256(value).hexdigest(),
            replayed_event_id=_uuid(_event_id(value)),
        ),
    )
    assert isinstance(audit, DeadLetterReplayed)
    await _publish(bootstrap, letter, audit, value)
    return audit


def _check_decodes(value: bytes, ref: str) -> None:
    """A message the services would refuse again for its form is not sent back (a domain
    refusal, e.g. an unknown agreement, can only be found out by sending it)."""
    try:
        decode(value)
    except InvalidMessage as invalid:
        raise ReplayRefused(
            f"dead letter {ref}: the message would be refused again ({invalid.reason}: "
            f"{invalid.detail[:300]})"
        ) from invalid


def _check_not_decided(letter: DeadLetter, value: bytes) -> None:
    """A message a service read and refused (a domain reason) counts as decided: sent
    again with the same event_id it would be skipped as a duplicate, and nothing would
    happen. Said here, rather than replayed into silence."""
    event_id = _event_id(value)
    if event_id is None or event_id != letter.event_id:
        return
    if decided_when_refused(letter.reason):
        raise ReplayRefused(
            f"dead letter {letter.ref}: {letter.header('source_service') or 'the service'} "
            f"read it and refused it ({letter.reason}), so its event_id {event_id} counts as "
            "decided and would be skipped: send it fixed with a new event_id (--file)"
        )


async def _find(bootstrap: str, ref: str) -> DeadLetter:
    for letter in await dead_letters(bootstrap):
        if letter.ref == ref:
            return letter
    raise ReplayRefused(f"no dead letter {ref} (name one as partition:offset, from `list`)")


async def _publish(
    bootstrap: str, letter: DeadLetter, audit: DeadLetterReplayed, value: bytes
) -> None:
    producer = new_producer(bootstrap, "operator")
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.DEAD_LETTER_REPLAYS,
            key=str(letter.id).encode(),
            value=audit.to_json(),
            headers=[("event_type", audit.event_type.encode())],
        )
        await producer.send_and_wait(
            letter.source_topic,
            key=letter.record.key,
            value=value,
            headers=[(REPLAY_HEADER, letter.ref.encode())],
        )
    finally:
        await producer.stop()


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _uuid(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None
