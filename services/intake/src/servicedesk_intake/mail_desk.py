"""Intake's mail handling: a stored mail is filed on its ticket, opens one, or is set aside.

Runs as the handler of `ReceiveMail`, which intake's relay publishes for every mail the
listener stored; so it runs once per mail in effect (a second delivery of the command finds
the mail decided). Steps, each of which may end it:

1. a machine's mail (bounce, out-of-office, list, our own mail coming back) is set aside,
   never answered;
2. a runaway sender beyond the hourly limit is set aside;
3. a mail naming a ticket (the reference in the subject, or a Message-ID it answers) is a
   reply on that ticket; a reply to a closed ticket follows the agreement's policy;
4. otherwise it opens a ticket on the agreement of its sender (a contact, else the
   domain, else the default agreement), unless that agreement refuses it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from servicedesk_contracts import messages as m
from servicedesk_contracts.messages import ticket_id_for_request
from servicedesk_intake.domain import CLOSED, ReferenceSequence, Ticket
from servicedesk_intake.inbox import (
    Contact,
    InboundMail,
    Pointer,
    SenderHour,
    contact_key,
    domain_key,
    is_ours,
    message_key,
    reference_in_our_id,
    reference_key,
)
from servicedesk_intake.mail import ParsedMail, parse
from servicedesk_runtime.agreements import keep_terms, known_terms
from servicedesk_runtime.blobs import BlobNotFound, BlobStore
from servicedesk_runtime.consumer import Handler, Rejected, handles
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import MAIL_ADDRESSES_MOVED, MAILS_DECIDED, TICKETS_OPENED
from servicedesk_runtime.snapshots import snapshot_when_committed
from servicedesk_runtime.store import UnitOfWork

log = get_logger(__name__)


@dataclass(frozen=True)
class MailPolicy:
    """The desk's own mail settings (an agreement's are in its `MailTerms`)."""

    our_domain: str
    default_agreement: uuid.UUID | None = None
    per_sender_per_hour: int = 30


class _SetAside(Exception):
    def __init__(self, reason: str, detail: str, **facts: Any) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.facts = facts


class MailDesk:
    def __init__(self, blobs: BlobStore, policy: MailPolicy) -> None:
        self.blobs = blobs
        self.policy = policy

    def handlers(self) -> dict[str, Handler]:
        return dict(
            [
                handles(m.ReceiveMail, self.receive_mail),
                handles(m.FileMail, self.file_mail),
                handles(m.AgreementRegistered, self.learn_agreement),
            ]
        )

    def learn_agreement(self, registered: m.AgreementRegistered, uow: UnitOfWork) -> None:
        """Keeps the terms, and points the agreement's mail domains and contacts at it (a
        domain two agreements list goes to the one registered last)."""
        keep_terms(uow, registered)
        mail = registered.data.mail
        if mail is None:
            return
        keys = [domain_key(d) for d in mail.email_domains] + [contact_key(c) for c in mail.contacts]
        for key in keys:
            claimed = uow.get(Pointer.create_id(key), Pointer)
            if claimed is not None and claimed.target != registered.subject_id:
                # Said loudly: mail from there goes to this agreement from now on.
                log.warning(
                    "mail_address_moved",
                    key=key,
                    from_agreement=str(claimed.target),
                    to_agreement=str(registered.subject_id),
                )
                uow.after_commit(MAIL_ADDRESSES_MOVED.inc)
            _point(uow, key, registered.subject_id, registered.data.customer)

    def receive_mail(self, command: m.ReceiveMail, uow: UnitOfWork) -> None:
        mail = uow.get(command.subject_id, InboundMail) or _received(command)
        if mail.decided:
            return  # the same mail again
        parsed = self._read(mail)
        try:
            self._file(mail, parsed, command.data, uow)
        except _SetAside as aside:
            mail.set_aside(aside.reason, aside.detail, _facts(mail, parsed, aside.facts))
        except ValidationError as refused:
            # What the mail says does not fit a ticket (an address the contract refuses...):
            # it is kept and shown, never left undecided or dead-lettered.
            detail = f"the mail does not make a valid request: {_first_problem(refused)}"
            mail.set_aside("unreadable", detail, _facts(mail, parsed, {}))
        uow.add(mail)
        uow.after_commit(MAILS_DECIDED.labels(mail.outcome_label).inc)

    def _read(self, mail: InboundMail) -> ParsedMail | None:
        try:
            return parse(self.blobs.get(mail.sha256))
        except BlobNotFound:
            return None
        except Exception:  # a parser bug must not leave a mail undecided: kept as unreadable
            log.exception("mail_unparsable", mail_id=str(mail.id))
            return None

    def _file(
        self, mail: InboundMail, parsed: ParsedMail | None, data: m.ReceiveMailData, uow: UnitOfWork
    ) -> None:
        if parsed is None or parsed.sender_email is None:
            why = "its raw record is missing" if parsed is None else "it has no From address"
            raise _SetAside("unreadable", f"the mail cannot be read: {why}")
        self._refuse_machines(parsed, data)
        self._limit_rate(parsed.sender_email, data.received_at, uow)
        ticket = self._ticket_named(parsed, uow)
        if ticket is not None and self._replies_on(ticket, data.received_at, uow):
            self._reply(mail, ticket, parsed, uow)
            return
        self._open(mail, parsed, uow, follows=ticket)

    def _refuse_machines(self, parsed: ParsedMail, data: m.ReceiveMailData) -> None:
        if parsed.automatic is not None:
            raise _SetAside("automatic", f"sent by a machine: {parsed.automatic}")
        if data.source == "smtp" and data.envelope_from in {"", "<>"}:
            raise _SetAside("automatic", "a bounce (empty envelope sender)")
        if is_ours(parsed.message_id, self.policy.our_domain):
            raise _SetAside("automatic", "our own mail came back")

    def _limit_rate(self, sender: str, at: datetime, uow: UnitOfWork) -> None:
        hour = at.strftime("%Y-%m-%dT%H")
        window = uow.get_or_create(SenderHour, sender=sender, hour=hour)
        window.count_one()
        uow.add(window)  # counted even when set aside: a loop keeps counting
        if window.count > self.policy.per_sender_per_hour:
            limit = self.policy.per_sender_per_hour
            raise _SetAside("rate_limited", f"{sender} sent more than {limit} mails in an hour")

    def _ticket_named(self, parsed: ParsedMail, uow: UnitOfWork) -> Ticket | None:
        """The ticket a mail answers: by the reference in its subject, else by a Message-ID
        it answers (one of ours carries the reference; a customer's is indexed)."""
        keys = [reference_key(parsed.reference)] if parsed.reference else []
        keys += self._thread_keys(parsed)
        for key in keys:
            ticket = _ticket_at(uow, key)
            if ticket is not None:
                self._require_a_party(ticket, parsed, uow)
                return ticket
        return None

    def _thread_keys(self, parsed: ParsedMail) -> list[str]:
        """Index keys of the Message-IDs a mail answers."""
        keys = []
        for related in parsed.related_ids:
            ours = reference_in_our_id(related, self.policy.our_domain)
            keys.append(reference_key(ours) if ours else message_key(related))
        return keys

    def _require_a_party(self, ticket: Ticket, parsed: ParsedMail, uow: UnitOfWork) -> None:
        """References are sequential, so anyone can guess one: a mail goes on a ticket only
        from its reporter, someone of its customer (a contact or the mail domain), or in
        reply to a mail of the ticket's thread (a colleague the reporter copied in).
        Anyone else's is set aside, visibly, and not answered."""
        sender = str(parsed.sender_email)
        if sender == ticket.request.get("reporter_email"):
            return
        if self._known_agreement_of(sender, uow) == ticket.agreement_id:
            return
        if any(
            (found := _ticket_at(uow, key)) is not None and found.id == ticket.id
            for key in self._thread_keys(parsed)
        ):
            return
        raise _SetAside(
            "not_on_ticket",
            f"{sender} is not a party to {ticket.reference} (not its reporter, not of its "
            "customer, and not answering its mail)",
            agreement_id=ticket.agreement_id,
        )

    def _replies_on(self, ticket: Ticket, at: datetime, uow: UnitOfWork) -> bool:
        """Whether a mail goes on this ticket, or (closed, by the agreement's policy) opens
        a new ticket that follows it up."""
        if ticket.status != CLOSED:
            return True
        terms = known_terms(uow, ticket.agreement_id)
        mail = terms.mail if terms is not None else None
        if mail is None or mail.closed_ticket_replies == "reopen":
            return True
        if mail.closed_ticket_replies == "new_linked" or ticket.closed_at is None:
            return False
        return at - ticket.closed_at <= timedelta(days=mail.reopen_within_days)

    def _reply(
        self, mail: InboundMail, ticket: Ticket, parsed: ParsedMail, uow: UnitOfWork
    ) -> None:
        ticket.add_customer_reply(
            author_email=str(parsed.sender_email),
            body=parsed.text or "(no text)",
            replied_at=mail.received_at,
            channel="email",
            message_id=parsed.message_id,
            attachments=self._keep_attachments(parsed),
        )
        uow.add(ticket)
        self._index_message(parsed, ticket, uow)
        mail.file(ticket_id=ticket.id, reference=ticket.reference, as_="reply")

    def _open(
        self, mail: InboundMail, parsed: ParsedMail, uow: UnitOfWork, follows: Ticket | None
    ) -> None:
        """Opens a ticket for the mail: on the agreement of the closed ticket it follows up,
        else on its sender's."""
        sender = str(parsed.sender_email)
        agreement_id = follows.agreement_id if follows else self._agreement_of(sender, uow)
        terms = known_terms(uow, agreement_id)
        if terms is None or terms.mail is None:
            raise _SetAside(
                "unmatched",
                f"agreement {agreement_id} has no mail terms (impact, urgency) known to intake",
                agreement_id=agreement_id,
            )
        if terms.channels is not None and "email" not in terms.channels:
            raise _SetAside(
                "channel_not_allowed",
                f"{terms.customer}'s agreement takes no requests by e-mail",
                agreement_id=agreement_id,
                answer_to=sender,
                language=terms.mail.language,
            )
        if terms.mail.support_contacts_only and sender not in terms.mail.contacts:
            raise _SetAside(
                "not_a_support_contact",
                f"{sender} is not a support contact of {terms.customer}",
                agreement_id=agreement_id,
                answer_to=sender,
                allowed_contacts=terms.mail.contacts,
                language=terms.mail.language,
            )
        ticket = self._open_on(agreement_id, terms, mail, parsed, uow)
        if follows is not None:
            link_both(follows, "followed_up_by", ticket, sender, mail.received_at)
            uow.add(follows)

    def _open_on(
        self,
        agreement_id: uuid.UUID,
        terms: m.AgreementTerms,
        mail: InboundMail,
        parsed: ParsedMail,
        uow: UnitOfWork,
        filed_by: str | None = None,
    ) -> Ticket:
        """Opens the mail's ticket on this agreement, triaged as its mail terms say, its
        clock started when the mail reached us."""
        assert terms.mail is not None
        sender = str(parsed.sender_email)
        request = m.TicketRequest(
            agreement_id=agreement_id,
            reporter_email=sender,
            reporter_name=(parsed.sender_name or sender)[:200],
            organisation=terms.customer,
            channel="email",
            subject=parsed.bare_subject[:300],
            body=parsed.text or "(no text)",
            category=terms.mail.category,
            impact=terms.mail.impact,
            urgency=terms.mail.urgency,
            message_id=parsed.message_id,
            attachments=[m.Attachment(**a) for a in self._keep_attachments(parsed)],
            language=terms.mail.language,
        )
        ticket = open_ticket(uow, request, mail.received_at, mail.id)
        self._index_message(parsed, ticket, uow)
        mail.file(ticket_id=ticket.id, reference=ticket.reference, as_="new_ticket", by=filed_by)
        return ticket

    def file_mail(self, command: m.FileMail, uow: UnitOfWork) -> None:
        """An agent files a set-aside mail (unmatched, or wrongly taken for a machine's) as
        a ticket on the agreement they name; its clock starts when the mail reached us."""
        mail = uow.get(command.subject_id, InboundMail)
        if mail is None:
            raise Rejected("unknown_mail", f"no mail {command.subject_id}")
        if mail.outcome != "set_aside":
            raise Rejected("already_filed", f"mail {mail.id} is on a ticket already")
        agreement_id = command.data.agreement_id
        terms = known_terms(uow, agreement_id)
        if terms is None or terms.mail is None:
            detail = f"agreement {agreement_id} has no mail terms (impact, urgency) known to intake"
            raise Rejected("no_mail_terms", detail)
        parsed = self._read(mail)
        if parsed is None or parsed.sender_email is None:
            raise Rejected("unreadable", f"mail {mail.id} cannot be read as a request")
        self._open_on(agreement_id, terms, mail, parsed, uow, filed_by=command.data.filed_by)
        uow.add(mail)
        uow.after_commit(MAILS_DECIDED.labels("filed_by_agent").inc)

    def _agreement_of(self, sender: str, uow: UnitOfWork) -> uuid.UUID:
        known = self._known_agreement_of(sender, uow)
        if known is not None:
            return known
        if self.policy.default_agreement is None:
            domain = sender.rsplit("@", 1)[-1]
            raise _SetAside("unmatched", f"no agreement knows {sender} or {domain}")
        return self.policy.default_agreement

    def _known_agreement_of(self, sender: str, uow: UnitOfWork) -> uuid.UUID | None:
        """The agreement a sender belongs to: as a contact, else by mail domain."""
        domain = sender.rsplit("@", 1)[-1]
        for key in (contact_key(sender), domain_key(domain)):
            pointer = uow.get(Pointer.create_id(key), Pointer)
            if pointer is not None:
                return pointer.target
        return None

    def _keep_attachments(self, parsed: ParsedMail) -> list[dict[str, Any]]:
        """Stores each attachment's content as a blob; returns what the events record."""
        return [
            {
                "filename": file.filename,
                "content_type": file.content_type,
                "size": len(file.content),
                "sha256": self.blobs.put(file.content),
            }
            for file in parsed.attachments
        ]

    def _index_message(self, parsed: ParsedMail, ticket: Ticket, uow: UnitOfWork) -> None:
        if parsed.message_id:
            _point(uow, message_key(parsed.message_id), ticket.id, ticket.reference)


def open_ticket(
    uow: UnitOfWork, request: m.TicketRequest, received_at: datetime, request_id: uuid.UUID
) -> Ticket:
    """Opens a ticket with the next reference, findable by that reference from then on."""
    ticket = Ticket(
        ticket_id=ticket_id_for_request(request_id),
        reference=next_reference(uow),
        request=request.model_dump(mode="json"),
        received_at=received_at,
        request_id=request_id,
    )
    uow.add(ticket)
    # A reference is issued once, so its pointer is new: no need to ask for one.
    uow.add(Pointer(key=reference_key(ticket.reference), target=ticket.id, label=ticket.reference))
    _register_contact(uow, request, ticket.reference, received_at)
    uow.after_commit(TICKETS_OPENED.labels(request.channel).inc)
    return ticket


def next_reference(uow: UnitOfWork) -> str:
    """The next ticket reference. Two replicas that take the same number conflict on the
    sequence's version when they commit, and the loser applies its batch again."""
    sequence = uow.get(ReferenceSequence.ID, ReferenceSequence) or ReferenceSequence()
    reference = sequence.next_reference()
    uow.add(sequence)
    if sequence.due_for_snapshot:
        snapshot_when_committed(uow, sequence)
    return reference


def opening_reads(request: m.TicketRequest) -> list[uuid.UUID]:
    """What `open_ticket` asks the store for besides the new reference's pointer."""
    return [
        ReferenceSequence.ID,
        Contact.create_id(request.reporter_email),
        Pointer.create_id(contact_key(request.reporter_email)),
    ]


def link_both(ticket: Ticket, kind: str, other: Ticket, by: str, at: datetime) -> None:
    """Links two tickets: `ticket` `kind` `other`, and the inverse on `other`."""
    ticket.link(kind, other.id, other.reference, by, at)
    other.link(m.LINK_INVERSE[kind], ticket.id, ticket.reference, by, at)


def _register_contact(
    uow: UnitOfWork, request: m.TicketRequest, reference: str, at: datetime
) -> None:
    """The reporter becomes a contact of the customer on their first request."""
    if uow.get(Contact.create_id(request.reporter_email), Contact) is not None:
        return
    # Their later mail finds the agreement even from a domain it does not list.
    _point(uow, contact_key(request.reporter_email), request.agreement_id, request.organisation)
    uow.add(
        Contact(
            email=request.reporter_email,
            name=request.reporter_name,
            organisation=request.organisation,
            agreement_id=request.agreement_id,
            channel=request.channel,
            first_reference=reference,
            registered_at=at,
        )
    )


def _first_problem(refused: ValidationError) -> str:
    problem = refused.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}"[:500]


def _ticket_at(uow: UnitOfWork, key: str) -> Ticket | None:
    pointer = uow.get(Pointer.create_id(key), Pointer)
    return uow.get(pointer.target, Ticket) if pointer is not None else None


def _point(uow: UnitOfWork, key: str, target: uuid.UUID, label: str) -> None:
    pointer = uow.get(Pointer.create_id(key), Pointer)
    if pointer is None:
        uow.add(Pointer(key=key, target=target, label=label))
    elif pointer.target != target:
        pointer.move(target=target, label=label)
        uow.add(pointer)


def _received(command: m.ReceiveMail) -> InboundMail:
    """A mail published by another system than our listener: recorded as received now."""
    data = command.data
    return InboundMail(
        message_id=data.message_id,
        sha256=data.sha256,
        size=data.size,
        source=data.source,
        envelope_from=data.envelope_from,
        envelope_to=data.envelope_to,
        received_at=data.received_at,
    )


def _facts(mail: InboundMail, parsed: ParsedMail | None, given: dict[str, Any]) -> dict[str, Any]:
    """The fields of `MailSetAside` besides reason and detail, JSON-ready."""
    facts = {
        "sha256": mail.sha256,
        "sender": (parsed.sender_email or "") if parsed else "",
        "subject": parsed.subject[:300] if parsed else "",
        "message_id": mail.message_id,
        "received_at": mail.received_at.isoformat(),
        "reference": parsed.reference if parsed else None,
        **given,
    }
    return m.MailSetAsideData.model_validate(
        {**facts, "mail_id": mail.id, "reason": "unreadable", "detail": "-"}
    ).model_dump(mode="json", exclude={"mail_id", "reason", "detail"})
