"""notifier's stored deliveries -> notification receipts."""

from __future__ import annotations

from typing import Any

from servicedesk_contracts import Message, topics
from servicedesk_contracts import messages as m
from servicedesk_notifier.domain import Delivery
from servicedesk_runtime.relay import message_for

PRODUCER = "notifier"


def translate(event: Any) -> tuple[str, Message] | None:
    if not isinstance(event, Delivery.Sent):
        return None
    receipt = m.NotificationSent if event.error is None else m.NotificationFailed
    return topics.NOTIFICATIONS, message_for(
        event, receipt, PRODUCER, notification_id=event.originator_id
    )
