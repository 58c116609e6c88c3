"""notifier's handlers: send, then record the receipt.

Delivery is at-least-once: the mail is sent before its receipt is committed with the
consumed position, so a crash in between sends it again (with the same Message-ID).
"""

from __future__ import annotations

import smtplib

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_notifier.domain import (
    Delivery,
    Notification,
    sla_breach_alert,
    sla_warning_alert,
    ticket_confirmation,
)
from servicedesk_notifier.smtp import SmtpMailer
from servicedesk_runtime.consumer import Handler, handles
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import NOTIFICATIONS_FAILED, NOTIFICATIONS_SENT
from servicedesk_runtime.store import UnitOfWork

log = get_logger(__name__)


class Notifier:
    def __init__(self, mailer: SmtpMailer, alert_email: str) -> None:
        self.mailer = mailer
        self.alert_email = alert_email

    def handlers(self) -> dict[str, Handler]:
        return dict(
            [
                handles(m.TicketOpened, self.confirm_ticket),
                handles(m.SlaBreached, self.alert_breach),
                handles(m.SlaWarning, self.warn_before_breach),
            ]
        )

    def confirm_ticket(self, opened: m.TicketOpened, uow: UnitOfWork) -> None:
        self._deliver(opened, ticket_confirmation(opened), uow)

    def alert_breach(self, breached: m.SlaBreached, uow: UnitOfWork) -> None:
        self._deliver(breached, sla_breach_alert(breached, self.alert_email), uow)

    def warn_before_breach(self, warning: m.SlaWarning, uow: UnitOfWork) -> None:
        self._deliver(warning, sla_warning_alert(warning, self.alert_email), uow)

    def _deliver(self, cause: Message, notification: Notification, uow: UnitOfWork) -> None:
        if uow.get(Delivery.create_id(cause.event_id, notification.kind), Delivery):
            return
        delivery_id = Delivery.create_id(cause.event_id, notification.kind)
        error: str | None = None
        try:
            self.mailer.send(notification, delivery_id)
            NOTIFICATIONS_SENT.labels(notification.kind).inc()
        except (OSError, smtplib.SMTPException) as failure:
            error = f"{type(failure).__name__}: {failure}"
            NOTIFICATIONS_FAILED.labels(notification.kind).inc()
            log.warning("notification_failed", kind=notification.kind, error=error)
        uow.add(
            Delivery(
                caused_by=cause.event_id,
                kind=notification.kind,
                recipient=notification.recipient,
                subject_line=notification.subject_line,
                error=error,
            )
        )
