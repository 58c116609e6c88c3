"""notifier's handlers: record that a delivery is due, never send.

A handler runs inside a batch that may be applied again (a handler error elsewhere in the
batch, a failed commit, a crash before the commit), so it only records `Delivery.Requested`,
committed with the consumed Kafka position. The dispatcher (`dispatch.py`) sends the mail
after that commit and records the outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_notifier.domain import (
    CONFIRMATION,
    SLA_BREACH,
    SLA_WARNING,
    Delivery,
    DeliveryRefused,
    Notification,
    TicketFacts,
    agent_reply,
    assignment_notice,
    closed_notice,
    mail_refusal,
    sla_breach_alert,
    sla_warning_alert,
    ticket_confirmation,
)
from servicedesk_runtime.agreements import keep_terms, known_terms
from servicedesk_runtime.consumer import Handler, Rejected, handles
from servicedesk_runtime.store import UnitOfWork


class Notifier:
    def __init__(self, alert_email: str) -> None:
        self.alert_email = alert_email

    def handlers(self) -> dict[str, Handler]:
        return dict(
            [
                handles(m.TicketOpened, self.confirm_ticket, reads=confirmation_reads),
                handles(m.AgentReplied, self.mail_reply),
                handles(m.TicketStatusChanged, self.tell_closed),
                handles(m.MailSetAside, self.answer_refused_mail),
                handles(m.SlaBreached, self.alert_breach, reads=alert_reads(SLA_BREACH)),
                handles(m.SlaWarning, self.warn_before_breach, reads=alert_reads(SLA_WARNING)),
                handles(m.TicketAssigned, self.tell_assignee),
                handles(m.AgreementRegistered, self.learn_agreement),
                handles(m.ResendNotification, self.resend),
            ]
        )

    def confirm_ticket(self, opened: m.TicketOpened, uow: UnitOfWork) -> None:
        data = opened.data
        uow.get_or_create(
            TicketFacts,
            reference=data.reference,
            subject=data.subject,
            customer=data.organisation,
            agreement_id=data.agreement_id,
        )
        _request(opened, ticket_confirmation(opened), uow)

    def mail_reply(self, replied: m.AgentReplied, uow: UnitOfWork) -> None:
        _request_if(replied, agent_reply(replied), uow)

    def tell_closed(self, changed: m.TicketStatusChanged, uow: UnitOfWork) -> None:
        _request_if(changed, closed_notice(changed), uow)

    def answer_refused_mail(self, set_aside: m.MailSetAside, uow: UnitOfWork) -> None:
        _request_if(set_aside, mail_refusal(set_aside), uow)

    def alert_breach(self, breached: m.SlaBreached, uow: UnitOfWork) -> None:
        facts = self._facts(breached.data.reference, uow)
        recipient = self._on_call(facts, uow)
        about = facts.about if facts else None
        _request(breached, sla_breach_alert(breached, recipient, about), uow)

    def warn_before_breach(self, warning: m.SlaWarning, uow: UnitOfWork) -> None:
        facts = self._facts(warning.data.reference, uow)
        recipient = self._on_call(facts, uow)
        about = facts.about if facts else None
        _request(warning, sla_warning_alert(warning, recipient, about), uow)

    def tell_assignee(self, assigned: m.TicketAssigned, uow: UnitOfWork) -> None:
        _request_if(assigned, assignment_notice(assigned), uow)

    def learn_agreement(self, registered: m.AgreementRegistered, uow: UnitOfWork) -> None:
        keep_terms(uow, registered)

    def resend(self, command: m.ResendNotification, uow: UnitOfWork) -> None:
        delivery = uow.get(command.subject_id, Delivery)
        if delivery is None:
            raise Rejected("unknown_notification", f"no notification {command.subject_id}")
        try:
            delivery.request_resend(command.data.requested_by)
        except DeliveryRefused as refused:
            raise Rejected(refused.reason, str(refused)) from refused
        uow.add(delivery)

    def _facts(self, reference: str, uow: UnitOfWork) -> TicketFacts | None:
        return uow.get(TicketFacts.create_id(reference), TicketFacts)

    def _on_call(self, facts: TicketFacts | None, uow: UnitOfWork) -> str:
        """The agreement's on-call address, else the desk's ALERT_EMAIL (also when the
        alert came before the ticket's opening reached the notifier)."""
        terms = known_terms(uow, facts.agreement_id) if facts else None
        if terms is not None and terms.mail is not None and terms.mail.on_call_email:
            return terms.mail.on_call_email
        return self.alert_email


def confirmation_reads(opened: m.TicketOpened) -> list[uuid.UUID]:
    """What `confirm_ticket` asks the store: the ticket's facts and its confirmation."""
    facts = TicketFacts.create_id(opened.data.reference)
    return [facts, Delivery.create_id(opened.event_id, CONFIRMATION)]


def alert_reads(kind: str) -> Callable[[m.SlaBreached | m.SlaWarning], list[uuid.UUID]]:
    """What an alert's handler asks the store first: the ticket's facts and the alert
    (the agreement's on-call address is read once the facts name the agreement)."""

    def reads(alert: m.SlaBreached | m.SlaWarning) -> list[uuid.UUID]:
        facts = TicketFacts.create_id(alert.data.reference)
        return [facts, Delivery.create_id(alert.event_id, kind)]

    return reads


def _request_if(cause: Message, notification: Notification | None, uow: UnitOfWork) -> None:
    if notification is not None:
        _request(cause, notification, uow)


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
        reference=notification.reference,
        headers=notification.headers,
    )
