"""notifier's stored deliveries -> notification receipts."""

from __future__ import annotations

from typing import Any

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_notifier.domain import Delivery
from servicedesk_runtime.relay import envelope_of

PRODUCER = "notifier"


def translate(event: Any) -> tuple[str, Message] | None:
    if not isinstance(event, Delivery.Sent):
        return None
    fields = {
        "notification_id": event.originator_id,
        "kind": event.kind,
        "recipient": event.recipient,
        "subject_line": event.subject_line,
        "caused_by": event.caused_by,
    }
    envelope = envelope_of(event, PRODUCER)
    if event.error is None:
        return topics.NOTIFICATIONS, m.NotificationSent(
            **envelope, data=m.NotificationData(**fields)
        )
    return topics.NOTIFICATIONS, m.NotificationFailed(
        **envelope, data=m.NotificationFailedData(**fields, error=event.error)
    )
