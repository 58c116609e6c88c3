"""A ticket's conversation from its events (pure): the request, then every reply and note
in the order they happened, each with author, channel, time and attachments."""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]

_KINDS = {
    "TicketOpened": "request",
    "CustomerReplied": "customer_reply",
    "AgentReplied": "agent_reply",
    "InternalNoteAdded": "internal_note",
}
CUSTOMER_HIDDEN = frozenset({"internal_note"})
"""Never shown to customers."""


def conversation(facts: list[tuple[str, dict[str, Any]]], for_customer: bool) -> list[Message]:
    """`facts`: (event type, message JSON) in time order, as the timeline reads them."""
    messages = [_message(kind, message) for kind, message in facts if kind in _KINDS]
    if for_customer:
        messages = [message for message in messages if message["kind"] not in CUSTOMER_HIDDEN]
    return messages


def attachments_of(messages: list[Message]) -> dict[str, dict[str, Any]]:
    """Every attachment in these messages by its content hash."""
    return {a["sha256"]: a for message in messages for a in message["attachments"]}


def _message(kind: str, message: dict[str, Any]) -> Message:
    data = message.get("data", {})
    at = {
        "TicketOpened": data.get("received_at"),
        "CustomerReplied": data.get("replied_at"),
        "AgentReplied": data.get("replied_at"),
        "InternalNoteAdded": data.get("added_at"),
    }[kind] or message.get("occurred_at")
    return {
        "kind": _KINDS[kind],
        "event_id": message.get("event_id"),
        "at": at,
        "author": _author(kind, data),
        "channel": _channel(kind, data),
        "body": data.get("body", ""),
        "attachments": data.get("attachments", []),
        "message_id": data.get("message_id"),
    }


def _author(kind: str, data: dict[str, Any]) -> str:
    if kind == "TicketOpened":
        name, email = data.get("reporter_name"), data.get("reporter_email")
        return f"{name} <{email}>" if name and name != email else str(email)
    if kind == "CustomerReplied" and data.get("author_name"):
        return f"{data['author_name']} <{data.get('author_email')}>"
    return str(data.get("author_email") or data.get("agent") or data.get("author") or "")


def _channel(kind: str, data: dict[str, Any]) -> str | None:
    """How the customer's words came in (an agent's reply or note came through the desk)."""
    return data.get("channel") if kind in {"TicketOpened", "CustomerReplied"} else None
