"""notifier's handlers: record that a delivery is due, never send.

A handler runs inside a batch that may be applied again (a handler error elsewhere in the
batch, a failed commit, a crash before the commit), so it only records `Delivery.Requested`,
committed with the consumed Kafka position. The dispatcher (`dispatch.py`) sends the mail
after that commit and records the outcome.
"""

from __future__ import annotations

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_notifier.domain import (
    Delivery,
    Notification,
    assignment_notice,
    sla_breach_alert,
    sla_warning_alert,
    ticket_confirmation,
)
from servicedesk_runtime.consumer import Handler, handles
from servicedesk_runtime.store import UnitOfWork


class Notifier:
    def __init__(self, alert_email: str) -> None:
        self.alert_email = alert_email

    def handlers(self) -> dict[str, Handler]:
        return dict(
            [
                handles(m.TicketOpened, self.confirm_ticket),
                handles(m.SlaBreached, self.alert_breach),
                handles(m.SlaWarning, self.warn_before_breach),
                handles(m.TicketAssigned, self.tell_assignee),
            ]
        )

    def confirm_ticket(self, opened: m.TicketOpened, uow: UnitOfWork) -> None:
        _request(opened, ticket_confirmation(opened), uow)

    def alert_breach(self, breached: m.SlaBreached, uow: UnitOfWork) -> None:
        _request(breached, sla_breach_alert(breached, self.alert_email), uow)

    def warn_before_breach(self, warning: m.SlaWarning, uow: UnitOfWork) -> None:
        _request(warning, sla_warning_alert(warning, self.alert_email), uow)

    def tell_assignee(self, assigned: m.TicketAssigned, uow: UnitOfWork) -> None:
        notice = assignment_notice(assigned)
        if notice is not None:
            _request(assigned, notice, uow)


def _request(cause: Message, notification: Notification, uow: UnitOfWork) -> None:
    """One delivery per cause and kind (its id is derived from both): the same event again
    finds it requested already and changes nothing."""
    uow.get_or_create(
        Delivery,
        caused_by=cause.event_id,
        kind=notification.kind,
        recipient=notification.recipient,
        subject_line=notification.subject_line,
        body=notification.body,
    )
