"""Received mail and the indexes that thread it (pure: no I/O).

A mail is an `InboundMail` from the moment the listener stored it (before it answered
250): received, then filed on a ticket or set aside, exactly once. The indexes are small
aggregates with derived ids, so a lookup is one read by id and two replicas writing the
same entry collide instead of disagreeing.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate, event

from servicedesk_contracts.messages import derived_id

_OUR_ID = re.compile(r"^<[^<>@\s]*\.(SD-\d{6,})@([^<>@\s]+)>$", re.IGNORECASE)


def mail_id_for(message_id: str | None, sha256: str) -> uuid.UUID:
    """One mail per Message-ID (the same mail delivered twice is one mail); a mail without
    one is known by its content."""
    return derived_id("mail", message_id) if message_id else derived_id("mail-content", sha256)


def reference_in_our_id(message_id: str, our_domain: str) -> str | None:
    """The ticket reference in a Message-ID we made (`<delivery.SD-000123@our.domain>`)."""
    found = _OUR_ID.match(message_id)
    if found is None or found.group(2).lower() != our_domain.lower():
        return None
    return found.group(1).upper()


def is_ours(message_id: str | None, our_domain: str) -> bool:
    return bool(message_id) and str(message_id).lower().endswith(f"@{our_domain.lower()}>")


class InboundMail(Aggregate):
    Received: ClassVar[type[Any]]
    Filed: ClassVar[type[Any]]
    SetAside: ClassVar[type[Any]]

    @staticmethod
    def create_id(message_id: str | None, sha256: str, **_: Any) -> uuid.UUID:
        return mail_id_for(message_id, sha256)

    @event("Received")
    def __init__(
        self,
        message_id: str | None,
        sha256: str,
        size: int,
        source: str,
        envelope_from: str,
        envelope_to: list[str],
        received_at: datetime,
    ) -> None:
        self.message_id = message_id
        self.sha256 = sha256
        self.received_at = received_at
        self.outcome: str | None = None
        self.set_aside_reason: str | None = None

    @property
    def decided(self) -> bool:
        return self.outcome is not None

    @property
    def outcome_label(self) -> str:
        """new_ticket, reply, or why it was set aside."""
        return self.set_aside_reason or self.outcome or "undecided"

    @event("Filed")
    def file(self, ticket_id: uuid.UUID, reference: str, as_: str, by: str | None = None) -> None:
        """On a ticket: `as_` is "new_ticket" or "reply"; `by` the agent who filed a
        set-aside mail (None: intake did)."""
        self.outcome = as_
        self.set_aside_reason = None

    @event("SetAside")
    def set_aside(self, reason: str, detail: str, facts: dict[str, Any]) -> None:
        """Kept and visible, but no ticket opened or changed (`facts`: the MailSetAside
        message's other fields)."""
        self.outcome = "set_aside"
        self.set_aside_reason = reason


class Pointer(Aggregate):
    """An index entry: `key` -> a ticket (a reference, a Message-ID) or an agreement (a mail
    domain, a contact). Its id is derived from the key, so a lookup is a read by id."""

    @staticmethod
    def create_id(key: str, **_: Any) -> uuid.UUID:
        return derived_id("pointer", key)

    @event("Set")
    def __init__(self, key: str, target: uuid.UUID, label: str) -> None:
        self.target = target
        self.label = label

    @event("Moved")
    def move(self, target: uuid.UUID, label: str) -> None:
        self.target = target
        self.label = label


def reference_key(reference: str) -> str:
    return f"reference:{reference.upper()}"


def message_key(message_id: str) -> str:
    return f"message-id:{message_id}"


def domain_key(domain: str) -> str:
    return f"mail-domain:{domain.lower()}"


def contact_key(email: str) -> str:
    return f"contact:{email.lower()}"


class SenderHour(Aggregate):
    """How many mails one sender sent in one hour: a runaway sender (a loop with a machine
    that does not say it is one) is set aside beyond the limit."""

    @staticmethod
    def create_id(sender: str, hour: str) -> uuid.UUID:
        return derived_id("sender-hour", sender.lower(), hour)

    @event("Started")
    def __init__(self, sender: str, hour: str) -> None:
        self.count = 0

    @event("Counted")
    def count_one(self) -> None:
        self.count += 1


class Contact(Aggregate):
    """A person of a customer who has asked the desk something: registered on their first
    request, by any channel."""

    Registered: ClassVar[type[Any]]

    @staticmethod
    def create_id(email: str, **_: Any) -> uuid.UUID:
        return derived_id("contact", email.lower())

    @event("Registered")
    def __init__(
        self,
        email: str,
        name: str,
        organisation: str,
        agreement_id: uuid.UUID,
        channel: str,
        first_reference: str,
        registered_at: datetime,
    ) -> None:
        self.email = email
        self.agreement_id = agreement_id
