"""notifier's stored deliveries -> notification receipts."""

from __future__ import annotations

from typing import Any

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_notifier.domain import Delivery
from servicedesk_runtime.relay import message_for

PRODUCER = "notifier"


def translate(event: Any) -> tuple[str, Message] | None:
    if isinstance(event, Delivery.Failed):
        receipt: type[Message] = m.NotificationFailed
    elif isinstance(event, Delivery.Dispatched):
        receipt = m.NotificationSent
    elif isinstance(event, Delivery.Sent):
        # Stored before deliveries were dispatched after commit (a new broker gets them
        # again): sent, or failed when it carries an error.
        receipt = m.NotificationFailed if event.error is not None else m.NotificationSent
    else:
        return None  # a request stays inside the notifier
    return topics.NOTIFICATIONS, message_for(
        event, receipt, PRODUCER, notification_id=event.originator_id
    )
