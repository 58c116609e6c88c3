"""Version 1 of every servicedesk message.

Commands are imperative (`SubmitTicket`), events past tense (`TicketOpened`). An event
carries what its consumers need (an agreement event carries the full terms), so no service
has to call another. Fields may only be added as optional; a change of meaning is a new
version.
"""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import date, time
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from servicedesk_contracts import calendars, matrices
from servicedesk_contracts.envelope import Data, Message, Rfc3339Datetime, reading_stored

# --- vocabulary --------------------------------------------------------------------------

Channel = Literal["email", "portal", "phone", "api"]
TicketStatus = Literal[
    "open",
    "in_progress",
    "awaiting_reply",
    "on_hold",
    "planned",
    "acceptance",
    "waiting_for_deploy",
    "closed",
]
ClockKind = Literal["response", "resolution"]
MatrixName = Literal["R-ABCD", "Z-P1P4"]
BillingModel = Literal["monthly_invoice", "prepaid_bundle", "retainer", "billed_per_use"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Language = Literal["en", "da", "nl"]
"""The languages mail to customers is written in (English, Danish, Dutch)."""

_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_EMAIL = re.compile(
    # RFC 5322's dot-atom local part @ a domain of non-empty labels and a top-level name:
    # no empty label (`x@nordlicht..de`), no leading or trailing dot or hyphen.
    rf"{_ATOM}(?:\.{_ATOM})*@(?:[^\W_](?:(?:[^\W_]|-){{0,61}}[^\W_])?\.)+[^\W\d_]{{2,63}}"
)
_LINE_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Control characters (Unicode Cc: CR, LF, TAB, NEL U+0085...) and the line and paragraph
separators U+2028 / U+2029: whatever can end a line of a mail header or a log line."""
_BREAKS = re.compile(rf"\s*{_LINE_BREAK.pattern}(?:\s|{_LINE_BREAK.pattern})*")


def _email(value: str, info: ValidationInfo) -> str:
    # fullmatch, not `$`: `$` would accept a trailing newline (and so a header injection).
    if reading_stored(info):
        return value.lower()
    if not _EMAIL.fullmatch(value) or _LINE_BREAK.search(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value.lower()


def _one_line(value: Any) -> Any:
    """Each run of line breaks and control characters (with the blanks around it) becomes
    one space, and the ends are stripped: these fields end up in mail headers."""
    if not isinstance(value, str):
        return value
    return _BREAKS.sub(" ", value).strip() if _LINE_BREAK.search(value) else value


OneLine = BeforeValidator(_one_line)
"""A single-line field (names, subjects, labels that reach mail headers): line breaks and
control characters are normalised to a space, never kept, never refused."""

Email = Annotated[str, AfterValidator(_email)]
"""An e-mail address: any whitespace or control character in it is refused."""
Text = Annotated[str, Field(min_length=1, max_length=20_000)]
"""Free text (bodies): line breaks are kept."""
Name = Annotated[str, OneLine, Field(min_length=1, max_length=200)]
Subject = Annotated[str, OneLine, Field(min_length=1, max_length=300)]
Label = Annotated[str, OneLine, Field(min_length=1, max_length=60)]
"""A short single-line term: category, impact, urgency, work type."""
Month = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
WorkType = Label
PriorityName = Annotated[str, Field(min_length=1, max_length=10)]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]
UtcDatetime = Rfc3339Datetime


MessageId = Annotated[str, OneLine, Field(min_length=3, max_length=998)]
"""An RFC 5322 Message-ID with its angle brackets: `<id@host>` (one header line at most)."""
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""A blob's content address: the SHA-256 of its bytes, lower-case hex."""


class Attachment(Data):
    """A file that came with a message, recorded by name, type, size and content hash; its
    content is kept in the blob store (`servicedesk_runtime.blobs`), never in events."""

    filename: Annotated[str, OneLine, Field(max_length=300)]
    content_type: Annotated[str, OneLine, Field(min_length=3, max_length=200)]
    size: Annotated[int, Field(ge=0)]
    sha256: Sha256


class CustomField(Data):
    """A typed custom field (e.g. the customer's software version): its value must match
    its declared type."""

    name: Name
    type: Literal["string", "integer", "decimal", "boolean", "date", "version"]
    value: str | int | Decimal | bool | date

    @model_validator(mode="after")
    def _value_matches_type(self) -> CustomField:
        value = self.value
        ok = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "decimal": isinstance(value, Decimal | int) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
            "date": isinstance(value, date),
            "version": isinstance(value, str) and re.fullmatch(r"\d+(\.\d+){0,3}", value),
        }[self.type]
        if not ok:
            raise ValueError(f"custom field {self.name!r}: {value!r} is not a valid {self.type}")
        return self


# --- ticket requests and lifecycle ---------------------------------------------------------


class TicketRequest(Data):
    agreement_id: uuid.UUID
    reporter_email: Email
    reporter_name: Name
    organisation: Name
    channel: Channel
    subject: Subject
    body: Text
    category: Label
    impact: Label
    urgency: Label
    requested_priority: str | None = None
    custom_fields: list[CustomField] = Field(default_factory=list)
    message_id: MessageId | None = None
    """The Message-ID of the mail that opened the ticket (replies refer to it)."""
    attachments: list[Attachment] = Field(default_factory=list)
    language: Language | None = None
    """The reporter's language for mail to them; None: the agreement's."""


class SubmitTicket(Message):
    """Request to open a ticket. `subject_id` is the request's own id; the ticket id is
    derived from `event_id` (see `ticket_id_for_request`), so a resent request collides."""

    TYPE: ClassVar[str] = "SubmitTicket"
    event_type: Literal["SubmitTicket"] = "SubmitTicket"
    data: TicketRequest


class TicketOpenedData(TicketRequest):
    reference: Annotated[str, Field(pattern=r"^SD-\d{6,}$")]
    received_at: UtcDatetime
    """When the request reached us: SLA clocks start here, not when a service got to it."""


class TicketOpened(Message):
    TYPE: ClassVar[str] = "TicketOpened"
    event_type: Literal["TicketOpened"] = "TicketOpened"
    data: TicketOpenedData


class ChangeTicketStatusData(Data):
    status: TicketStatus
    changed_by: Name
    reason: str = ""


class ChangeTicketStatus(Message):
    TYPE: ClassVar[str] = "ChangeTicketStatus"
    event_type: Literal["ChangeTicketStatus"] = "ChangeTicketStatus"
    data: ChangeTicketStatusData


class MailThread(Data):
    """What a mail to the reporter needs to be threaded in their mail program: intake owns
    the conversation, so it puts this on the events the notifier mails."""

    reporter_email: Email
    reporter_name: str
    subject: str
    """The ticket's subject (without the reference)."""
    in_reply_to: MessageId | None = None
    """The customer's last mail on the ticket."""
    references: list[MessageId] = Field(default_factory=list)
    language: Language = "en"


class TicketStatusChangedData(Data):
    reference: str
    from_status: TicketStatus
    to_status: TicketStatus
    changed_by: Name
    reason: str = ""
    changed_at: UtcDatetime | None = None
    """When the change was made (the command's time); SLA pauses count from here."""
    thread: MailThread | None = None
    """How to tell the reporter (the notifier mails them when their ticket is closed)."""


class TicketStatusChanged(Message):
    TYPE: ClassVar[str] = "TicketStatusChanged"
    event_type: Literal["TicketStatusChanged"] = "TicketStatusChanged"
    data: TicketStatusChangedData


class ChangeTicketPriorityData(Data):
    priority: PriorityName
    changed_by: Name
    by_customer: bool = False
    """A customer's override (allowed only where the agreement lets customers override)."""
    reason: Reason


class ChangeTicketPriority(Message):
    TYPE: ClassVar[str] = "ChangeTicketPriority"
    event_type: Literal["ChangeTicketPriority"] = "ChangeTicketPriority"
    data: ChangeTicketPriorityData


class TicketPriorityChangeRequestedData(ChangeTicketPriorityData):
    reference: str
    requested_at: UtcDatetime


class TicketPriorityChangeRequested(Message):
    """Intake passes a priority change to triage, which owns priorities and decides."""

    TYPE: ClassVar[str] = "TicketPriorityChangeRequested"
    event_type: Literal["TicketPriorityChangeRequested"] = "TicketPriorityChangeRequested"
    data: TicketPriorityChangeRequestedData


class ReplyAsAgentData(Data):
    agent: Name
    body: Text
    next_status: TicketStatus | None = None
    """The status the ticket goes to with this reply (e.g. `awaiting_reply`)."""


class ReplyAsAgent(Message):
    TYPE: ClassVar[str] = "ReplyAsAgent"
    event_type: Literal["ReplyAsAgent"] = "ReplyAsAgent"
    data: ReplyAsAgentData


class AgentRepliedData(Data):
    reference: str
    agent: Name
    body: Text
    replied_at: UtcDatetime
    thread: MailThread | None = None
    """Set on tickets opened from now on: the notifier mails the reply to the reporter."""


class AgentReplied(Message):
    TYPE: ClassVar[str] = "AgentReplied"
    event_type: Literal["AgentReplied"] = "AgentReplied"
    data: AgentRepliedData


class AssignTicketData(Data):
    """Assigns a ticket to an agent and/or a group; both None unassigns it. Taking a
    ticket away from an agent needs a reason."""

    assignee: Name | None = None
    group: Label | None = None
    assigned_by: Name
    reason: Annotated[str, Field(max_length=2000)] = ""
    assignee_email: Email | None = None
    """Where the assignee is told (the gateway fills it from its people directory)."""


class AssignTicket(Message):
    TYPE: ClassVar[str] = "AssignTicket"
    event_type: Literal["AssignTicket"] = "AssignTicket"
    data: AssignTicketData


class TicketAssignedData(Data):
    reference: str
    assignee: str | None
    group: str | None
    previous_assignee: str | None = None
    previous_group: str | None = None
    assigned_by: Name
    reason: str = ""
    assignee_email: Email | None = None
    assigned_at: UtcDatetime


class TicketAssigned(Message):
    TYPE: ClassVar[str] = "TicketAssigned"
    event_type: Literal["TicketAssigned"] = "TicketAssigned"
    data: TicketAssignedData


class AddCustomerReplyData(Data):
    author_email: Email
    body: Text
    author_name: Name | None = None
    """Who wrote it, when known (the person logged in to the portal)."""
    channel: Channel | None = None


class AddCustomerReply(Message):
    TYPE: ClassVar[str] = "AddCustomerReply"
    event_type: Literal["AddCustomerReply"] = "AddCustomerReply"
    data: AddCustomerReplyData


class CustomerRepliedData(Data):
    reference: str
    author_email: Email
    body: Text
    replied_at: UtcDatetime
    channel: Channel | None = None
    author_name: str | None = None
    message_id: MessageId | None = None
    attachments: list[Attachment] = Field(default_factory=list)


class CustomerReplied(Message):
    TYPE: ClassVar[str] = "CustomerReplied"
    event_type: Literal["CustomerReplied"] = "CustomerReplied"
    data: CustomerRepliedData


class AddInternalNoteData(Data):
    author: Name
    body: Text


class AddInternalNote(Message):
    """An agent's note on a ticket: never sent, never shown to customers."""

    TYPE: ClassVar[str] = "AddInternalNote"
    event_type: Literal["AddInternalNote"] = "AddInternalNote"
    data: AddInternalNoteData


class InternalNoteAddedData(AddInternalNoteData):
    reference: str
    added_at: UtcDatetime


class InternalNoteAdded(Message):
    TYPE: ClassVar[str] = "InternalNoteAdded"
    event_type: Literal["InternalNoteAdded"] = "InternalNoteAdded"
    data: InternalNoteAddedData


LinkKind = Literal[
    "relates_to",
    "blocks",
    "blocked_by",
    "duplicate_of",
    "has_duplicate",
    "split_from",
    "split_into",
    "follows_up",
    "followed_up_by",
]
"""How one ticket stands to another (DOMAIN.md 7: dependencies between tickets)."""
LINK_INVERSE: dict[str, str] = {
    "relates_to": "relates_to",
    "blocks": "blocked_by",
    "blocked_by": "blocks",
    "duplicate_of": "has_duplicate",
    "has_duplicate": "duplicate_of",
    "split_from": "split_into",
    "split_into": "split_from",
    "follows_up": "followed_up_by",
    "followed_up_by": "follows_up",
}
"""What a link says from the other ticket's side."""


LinkAsked = Literal["relates_to", "blocks", "blocked_by", "duplicate_of"]
"""The links an agent makes (the others follow from them, or from a split or follow-up)."""


class LinkTicketsData(Data):
    kind: LinkAsked
    other_ticket_id: uuid.UUID
    linked_by: Name


class LinkTickets(Message):
    """Links the ticket (`subject_id`) to another; the other gets the inverse link."""

    TYPE: ClassVar[str] = "LinkTickets"
    event_type: Literal["LinkTickets"] = "LinkTickets"
    data: LinkTicketsData


class TicketLinkedData(Data):
    reference: str
    kind: LinkKind
    other_ticket_id: uuid.UUID
    other_reference: str
    linked_by: Name
    linked_at: UtcDatetime


class TicketLinked(Message):
    """A link seen from one ticket (`subject_id`): each link is two of these, one per side."""

    TYPE: ClassVar[str] = "TicketLinked"
    event_type: Literal["TicketLinked"] = "TicketLinked"
    data: TicketLinkedData


class SplitTicketData(Data):
    """One subject of a request that raised several: it becomes a ticket of its own, with
    the original's reporter, agreement and receipt time (its SLA clocks start there)."""

    subject: Subject
    body: Text
    category: Label | None = None
    impact: Label | None = None
    urgency: Label | None = None
    """None: as the original ticket."""
    split_by: Name


class SplitTicket(Message):
    """`subject_id`: the original ticket. The new ticket's id is derived from `event_id`
    (`ticket_id_for_request`), like a submitted request's."""

    TYPE: ClassVar[str] = "SplitTicket"
    event_type: Literal["SplitTicket"] = "SplitTicket"
    data: SplitTicketData


class ContactRegisteredData(Data):
    """A person of a customer the desk had not heard from before, registered on their
    first request (DOMAIN.md 1)."""

    email: Email
    name: str
    organisation: str
    agreement_id: uuid.UUID
    channel: Channel
    first_reference: str
    registered_at: UtcDatetime


class ContactRegistered(Message):
    """`subject_id`: the contact (derived from the address)."""

    TYPE: ClassVar[str] = "ContactRegistered"
    event_type: Literal["ContactRegistered"] = "ContactRegistered"
    data: ContactRegisteredData


# --- mail in -----------------------------------------------------------------------------


class FileMailData(Data):
    agreement_id: uuid.UUID
    filed_by: Name


class FileMail(Message):
    """Command to intake (`subject_id`: a set-aside mail): open its ticket on this
    agreement (an unmatched sender's, or mail wrongly taken for a machine's)."""

    TYPE: ClassVar[str] = "FileMail"
    event_type: Literal["FileMail"] = "FileMail"
    data: FileMailData


class MailFiledData(Data):
    mail_id: uuid.UUID
    ticket_id: uuid.UUID
    reference: str
    filed_as: Literal["new_ticket", "reply"]
    filed_by: str | None = None
    """The agent who filed a set-aside mail; None when intake filed it on arrival."""


class MailFiled(Message):
    """Which ticket a received mail went to (`subject_id`: the mail)."""

    TYPE: ClassVar[str] = "MailFiled"
    event_type: Literal["MailFiled"] = "MailFiled"
    data: MailFiledData


class ReceiveMailData(Data):
    """A mail as it reached us, before anything was decided about it: its raw bytes are in
    the blob store under `sha256`."""

    source: Literal["smtp", "imap"]
    sha256: Sha256
    size: Annotated[int, Field(ge=0)]
    envelope_from: Annotated[str, OneLine, Field(max_length=998)] = ""
    """SMTP's MAIL FROM (empty for a bounce, `<>`); the IMAP mailbox for polled mail."""
    envelope_to: list[Annotated[str, OneLine, Field(max_length=998)]] = Field(default_factory=list)
    message_id: MessageId | None = None
    received_at: UtcDatetime
    """When the mail reached our listener (or the IMAP server): a new ticket's clock starts
    here."""


class ReceiveMail(Message):
    """Intake's own command to itself (`subject_id`: the mail): file this received mail on a
    ticket, open one, or set it aside. The listener stores the mail before it answers 250,
    and intake's relay publishes this from there."""

    TYPE: ClassVar[str] = "ReceiveMail"
    event_type: Literal["ReceiveMail"] = "ReceiveMail"
    data: ReceiveMailData


SetAsideReason = Literal[
    "automatic",
    "rate_limited",
    "unmatched",
    "not_a_support_contact",
    "channel_not_allowed",
    "not_on_ticket",
    "unreadable",
]


class MailSetAsideData(Data):
    """A mail that opened or changed no ticket, kept (with its raw record) and visible."""

    mail_id: uuid.UUID
    reason: SetAsideReason
    detail: str
    sha256: Sha256
    sender: str
    subject: str
    message_id: MessageId | None = None
    received_at: UtcDatetime
    agreement_id: uuid.UUID | None = None
    reference: str | None = None
    """The ticket the mail named, if any."""
    answer_to: Email | None = None
    """Who is told why (a refused person); None: nobody is answered (loops, bulk mail)."""
    allowed_contacts: list[Email] = Field(default_factory=list)
    language: Language = "en"


class MailSetAside(Message):
    TYPE: ClassVar[str] = "MailSetAside"
    event_type: Literal["MailSetAside"] = "MailSetAside"
    data: MailSetAsideData


class LogTimeData(Data):
    agent: Name
    started_at: UtcDatetime
    duration_minutes: Annotated[int, Field(gt=0, le=24 * 60)]
    work_type: Label = "support"
    billable: bool = True


class TimerData(Data):
    agent: Name
    work_type: Label = "support"
    billable: bool = True


class StartTimer(Message):
    """An agent starts a timer on a ticket (`subject_id`); one running timer per agent."""

    TYPE: ClassVar[str] = "StartTimer"
    event_type: Literal["StartTimer"] = "StartTimer"
    data: TimerData


class StopTimer(Message):
    """Stops the agent's running timer on the ticket: the time becomes a time entry."""

    TYPE: ClassVar[str] = "StopTimer"
    event_type: Literal["StopTimer"] = "StopTimer"
    data: TimerData


class LogTime(Message):
    TYPE: ClassVar[str] = "LogTime"
    event_type: Literal["LogTime"] = "LogTime"
    data: LogTimeData


class TimeLoggedData(LogTimeData):
    source: Literal["timesheet", "timer"] = "timesheet"
    entry_id: uuid.UUID
    reference: str
    agreement_id: uuid.UUID
    category: str


class TimeLogged(Message):
    TYPE: ClassVar[str] = "TimeLogged"
    event_type: Literal["TimeLogged"] = "TimeLogged"
    data: TimeLoggedData


# --- triage ------------------------------------------------------------------------------


class TicketTriagedData(Data):
    reference: str
    agreement_id: uuid.UUID
    category: str
    priority: str
    matrix: MatrixName
    impact: str
    urgency: str
    requested_priority: str | None = None
    reason: str
    decided_by: str = "triage"
    opened_at: UtcDatetime
    """When the request reached us, copied from the ticket: the SLA clocks start here."""


class TicketTriaged(Message):
    TYPE: ClassVar[str] = "TicketTriaged"
    event_type: Literal["TicketTriaged"] = "TicketTriaged"
    data: TicketTriagedData


# --- SLA ---------------------------------------------------------------------------------


class SlaClockStartedData(Data):
    clock_id: uuid.UUID
    reference: str
    kind: ClockKind
    priority: str
    target_minutes: Annotated[float, Field(gt=0)]
    """The target in business minutes on the agreement's calendar."""
    started_at: UtcDatetime
    due_at: UtcDatetime


class SlaClockStarted(Message):
    TYPE: ClassVar[str] = "SlaClockStarted"
    event_type: Literal["SlaClockStarted"] = "SlaClockStarted"
    data: SlaClockStartedData


class SlaClockPausedData(Data):
    clock_id: uuid.UUID
    reference: str
    kind: ClockKind
    priority: str
    paused_at: UtcDatetime
    spent_minutes: float
    """Business minutes counted so far."""


class SlaClockPaused(Message):
    TYPE: ClassVar[str] = "SlaClockPaused"
    event_type: Literal["SlaClockPaused"] = "SlaClockPaused"
    data: SlaClockPausedData


class SlaClockResumedData(Data):
    clock_id: uuid.UUID
    reference: str
    kind: ClockKind
    priority: str
    resumed_at: UtcDatetime
    due_at: UtcDatetime | None
    """None when the priority has no target of this kind (untimed)."""


class SlaClockResumed(Message):
    TYPE: ClassVar[str] = "SlaClockResumed"
    event_type: Literal["SlaClockResumed"] = "SlaClockResumed"
    data: SlaClockResumedData


class SlaClockRetargetedData(Data):
    clock_id: uuid.UUID
    reference: str
    kind: ClockKind
    priority: str
    target_minutes: float | None
    """None: the new priority has no target of this kind; the clock runs untimed."""
    spent_minutes: float
    retargeted_at: UtcDatetime
    due_at: UtcDatetime | None
    """None while the clock is paused: the deadline is set when it resumes."""


class SlaClockRetargeted(Message):
    TYPE: ClassVar[str] = "SlaClockRetargeted"
    event_type: Literal["SlaClockRetargeted"] = "SlaClockRetargeted"
    data: SlaClockRetargetedData


class SlaWarningData(Data):
    clock_id: uuid.UUID
    reference: str
    kind: ClockKind
    priority: str
    threshold: float
    """The fraction of the target used (e.g. 0.75)."""
    due_at: UtcDatetime
    warned_at: UtcDatetime
    """When the threshold was reached on the business clock."""
    noticed_at: UtcDatetime | None = None
    """When the sla-timer noticed it (later than `warned_at` for a backdated ticket)."""


class SlaWarning(Message):
    TYPE: ClassVar[str] = "SlaWarning"
    event_type: Literal["SlaWarning"] = "SlaWarning"
    data: SlaWarningData


class SlaClockStoppedData(Data):
    clock_id: uuid.UUID
    reference: str
    kind: ClockKind
    priority: str
    stopped_at: UtcDatetime
    due_at: UtcDatetime | None
    met: bool
    spent_minutes: float | None = None


class SlaClockStopped(Message):
    TYPE: ClassVar[str] = "SlaClockStopped"
    event_type: Literal["SlaClockStopped"] = "SlaClockStopped"
    data: SlaClockStoppedData


class SlaBreachedData(Data):
    clock_id: uuid.UUID
    reference: str
    kind: ClockKind
    priority: str
    due_at: UtcDatetime
    breached_at: UtcDatetime
    """When the target was breached: its deadline."""
    noticed_at: UtcDatetime | None = None
    """When the sla-timer noticed it (later than `breached_at` for a backdated ticket)."""


class SlaBreached(Message):
    TYPE: ClassVar[str] = "SlaBreached"
    event_type: Literal["SlaBreached"] = "SlaBreached"
    data: SlaBreachedData


# --- agreements and billing ----------------------------------------------------------------


LocalTime = Annotated[
    time,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$",
            "description": "A local time of day, HH:MM[:SS], without an offset.",
            "examples": ["08:30", "17:00:00"],
        }
    ),
]
"""A time of day on a calendar's local clock. Not JSON Schema's "time" format: that is an
RFC 3339 time, which requires an offset."""


class OpeningInterval(Data):
    """Local opening hours on one day, in the calendar's time zone (so without an offset of
    their own). `closes` 00:00 means midnight at the end of the day (so 00:00-00:00 is the
    whole day)."""

    opens: LocalTime
    closes: LocalTime

    @property
    def closes_at_midnight(self) -> bool:
        return self.closes == time(0)

    @field_validator("opens", "closes")
    @classmethod
    def _local(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("opening hours are local to the calendar's timezone: no offset")
        return value

    @model_validator(mode="after")
    def _opens_before_closes(self) -> OpeningInterval:
        if not self.closes_at_midnight and self.closes <= self.opens:
            raise ValueError(f"opening interval closes ({self.closes}) before it opens")
        return self


TimeZoneName = Annotated[str, Field(min_length=1), AfterValidator(calendars.known_zone)]
"""An IANA time zone name (Europe/Amsterdam)."""


def _holiday_country(value: str, info: ValidationInfo) -> str:
    return value.strip().upper() if reading_stored(info) else calendars.holiday_country(value)


HolidayCountry = Annotated[str, AfterValidator(_holiday_country)]
"""A country the `holidays` package knows; its code is kept upper case ("dk" becomes "DK")."""


def _month_day(value: str) -> str:
    month, day = (int(part) for part in value.split("-"))
    date(2024, month, day)  # a leap year: 02-29 exists, 02-30 does not (ValueError)
    return value


MonthDay = Annotated[
    str, Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"), AfterValidator(_month_day)
]


class Calendar(Data):
    """Business hours: an IANA time zone, weekly opening intervals, public holidays of a
    country (the `holidays` package) and extra closed dates, once or every year (the Danish
    provider closes on 24 Dec, 31 Dec and 5 June); or always open (24x7). Only calendars the
    sla-timer can compute with are accepted: see `servicedesk_contracts.calendars`."""

    model_config = ConfigDict(
        json_schema_extra={  # what `_has_hours` asks, so the schema tells producers
            "anyOf": [
                {"required": ["always_open"], "properties": {"always_open": {"const": True}}},
                {
                    "required": ["weekly_hours"],
                    "properties": {"weekly_hours": {"minProperties": 1}},
                },
            ]
        }
    )

    timezone: TimeZoneName = "UTC"
    always_open: bool = False
    weekly_hours: dict[Weekday, list[OpeningInterval]] = Field(default_factory=dict)
    holidays_country: HolidayCountry | None = None
    holidays_subdivision: str | None = None
    """A subdivision of `holidays_country` as the `holidays` package names it (case is
    normalised to its spelling: "by" becomes "BY")."""
    closed_dates: list[date] = Field(default_factory=list, max_length=2000)
    closed_every_year: list[MonthDay] = Field(default_factory=list)
    """Dates closed every year, as MM-DD."""

    @field_validator("weekly_hours")
    @classmethod
    def _has_hours(
        cls, weekly: dict[str, list[OpeningInterval]], info: ValidationInfo
    ) -> dict[str, list[OpeningInterval]]:
        if not info.data.get("always_open") and not any(weekly.values()):
            raise ValueError("a calendar that is not always open needs weekly_hours")
        for day, intervals in weekly.items():
            ordered = sorted(intervals, key=lambda i: i.opens)
            for before, after in itertools.pairwise(ordered):
                if before.closes_at_midnight or after.opens < before.closes:
                    raise ValueError(f"{day}: opening intervals overlap")
        return weekly

    @field_validator("holidays_subdivision")
    @classmethod
    def _subdivision_of_the_country(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or reading_stored(info):
            return value
        if "holidays_country" not in info.data:
            return value  # the country itself is wrong: that error says so
        country = info.data["holidays_country"]
        if country is None:
            raise ValueError("a holidays_subdivision needs a holidays_country")
        return calendars.holiday_subdivision(country, value)

    @property
    def open_weekdays(self) -> frozenset[int]:
        """Weekdays with opening hours (Monday is 0)."""
        return frozenset(WEEKDAYS.index(day) for day, hours in self.weekly_hours.items() if hours)

    @model_validator(mode="after")
    def _opens_at_all(self, info: ValidationInfo) -> Calendar:
        if self.always_open or reading_stored(info):
            return self
        run = calendars.longest_closed_run(
            self.open_weekdays,
            frozenset(self.closed_dates),
            frozenset(_month_day_pair(md) for md in self.closed_every_year),
            self.holidays_country,
            self.holidays_subdivision,
        )
        if run is not None:
            first, days = run
            raise ValueError(
                f"the calendar is closed for {days} days in a row from {first} (weekly_hours, "
                f"holidays, closed_dates, closed_every_year): it must open at least once in "
                f"any {calendars.HORIZON_DAYS} days"
            )
        return self


WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _month_day_pair(value: str) -> tuple[int, int]:
    month, day = value.split("-")
    return int(month), int(day)


PAUSED_BY_DEFAULT: tuple[TicketStatus, ...] = ("awaiting_reply",)
"""Waiting for the customer never counts against the provider (DOMAIN.md 4)."""


class Target(Data):
    """A response and an optional resolution target, each in business minutes or in working
    days (see the sla-timer's business_time for what a working day means). Minutes may be
    fractions (a test agreement may give 0.05 = 3 s)."""

    model_config = ConfigDict(
        json_schema_extra={  # what `_one_unit_each` asks, so the schema tells producers
            "oneOf": [
                {
                    "required": ["response_minutes"],
                    "properties": {"response_minutes": {"type": "number"}},
                },
                {
                    "required": ["response_working_days"],
                    "properties": {"response_working_days": {"type": "integer"}},
                },
            ],
            "not": {
                "required": ["resolution_minutes", "resolution_working_days"],
                "properties": {
                    "resolution_minutes": {"type": "number"},
                    "resolution_working_days": {"type": "integer"},
                },
            },
        }
    )

    response_minutes: Annotated[float, Field(gt=0)] | None = None
    response_working_days: Annotated[int, Field(gt=0, le=60)] | None = None
    resolution_minutes: Annotated[float, Field(gt=0)] | None = None
    resolution_working_days: Annotated[int, Field(gt=0, le=120)] | None = None

    @model_validator(mode="after")
    def _one_unit_each(self) -> Target:
        if (self.response_minutes is None) == (self.response_working_days is None):
            raise ValueError("give the response target as minutes or as working days")
        if self.resolution_minutes is not None and self.resolution_working_days is not None:
            raise ValueError("give the resolution target as minutes or as working days")
        return self


def _domain(value: str) -> str:
    domain = value.strip().lower().removeprefix("@")
    if not re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", domain):
        raise ValueError(f"{value!r} is not a mail domain (e.g. nordlicht.de)")
    return domain


MailDomain = Annotated[str, AfterValidator(_domain)]


class MailTerms(Data):
    """How the desk takes mail for one agreement (DOMAIN.md 1)."""

    email_domains: list[MailDomain] = Field(default_factory=list)
    """Mail from these domains belongs to this agreement's customer."""
    contacts: list[Email] = Field(default_factory=list)
    """Known people of the customer (with other domains too)."""
    support_contacts_only: bool = False
    """Only `contacts` may open tickets (provider V); others are answered with a refusal."""
    closed_ticket_replies: Literal["reopen", "new_linked", "new_after_days"] = "reopen"
    """A mail to a closed ticket: reopens it (provider E), opens a new ticket linked to it,
    or reopens within `reopen_within_days` of closing and opens a new one after."""
    reopen_within_days: Annotated[int, Field(ge=0, le=3650)] = 14
    category: Label = "incident"
    impact: Label
    urgency: Label
    """What a mailed request is triaged as until an agent says otherwise (words of the
    agreement's matrix)."""
    language: Language = "en"
    on_call_email: Email | None = None
    """Who gets this agreement's warnings and breaches (else the notifier's ALERT_EMAIL)."""

    @model_validator(mode="after")
    def _designated_contacts(self) -> MailTerms:
        if self.support_contacts_only and not self.contacts:
            raise ValueError("support_contacts_only needs at least one contact")
        return self


class BillingTerms(Data):
    model: BillingModel = "monthly_invoice"
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    hourly_rate_cents: Annotated[int, Field(ge=0)]
    minimum_minutes_per_request: Annotated[int, Field(ge=0, le=480)] = 15
    """Billed time per started request (ticket and month) is at least this."""
    vat_rate: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0.25")
    monthly_fee_cents: Annotated[int, Field(ge=0)] = 0
    """The plan's fee (provider R: Small 19500, Medium 54500, Large 99500)."""
    extension_fees: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    """Monthly fee per extension, quantity included (two integrations: 2 x 29500)."""
    included_minutes_per_month: Annotated[int, Field(ge=0)] = 0
    """Retainer: time bought for every month; beyond it is overage."""
    covered_categories: list[str] = Field(default_factory=list)
    """Time on these categories is covered by the fee and not billed again."""
    unbilled_work_types: list[str] = Field(default_factory=lambda: ["own_defect"])
    """Work never billed: repairing defects the provider caused."""
    hyper_care_until: date | None = None
    """Support is free up to and including this day (3 or 6 months from training)."""


class Trial(Data):
    """During an evaluation period a customer gets other (better) terms: provider Z gives
    trial customers Premium targets on Premium's calendar."""

    until: date
    """The last day of the trial, in the agreement's time zone."""
    calendar: Calendar
    targets: dict[str, Target]


class AgreementTerms(Data):
    customer: Name
    plan: Name
    extensions: list[str] = Field(default_factory=list)
    calendar: Calendar
    category_calendars: dict[str, Calendar] = Field(default_factory=dict)
    """Other hours for some categories (R Premium: incidents may be reported 06:00-23:00)."""
    matrix: MatrixName
    targets: dict[str, Target]
    """Response / resolution targets per priority."""
    category_targets: dict[str, dict[str, Target]] = Field(default_factory=dict)
    """Targets that differ for some categories (R Premium's incident targets)."""
    trial: Trial | None = None
    customer_may_override_priority: bool = False
    paused_statuses: list[TicketStatus] = Field(default_factory=lambda: list(PAUSED_BY_DEFAULT))
    warning_thresholds: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.75, 0.9]
    )
    """Fractions of a target at which a warning goes out before the breach."""
    billing: BillingTerms
    channels: list[Channel] | None = None
    """The channels requests may come in by (provider V Basic: portal and e-mail, no phone);
    None: every channel."""
    mail: MailTerms | None = None

    @field_validator("targets")
    @classmethod
    def _targets_cover_matrix(
        cls, targets: dict[str, Target], info: ValidationInfo
    ) -> dict[str, Target]:
        matrix = info.data.get("matrix")
        if matrix is not None:
            if not reading_stored(info):
                _only_priorities_of(matrix, targets)
            missing = MATRIX_PRIORITIES[matrix] - set(targets)
            if missing:
                raise ValueError(f"targets lack priorities {sorted(missing)} of {matrix}")
        return targets

    @field_validator("category_targets")
    @classmethod
    def _category_targets_in_matrix(
        cls, by_category: dict[str, dict[str, Target]], info: ValidationInfo
    ) -> dict[str, dict[str, Target]]:
        matrix = info.data.get("matrix")
        if matrix is not None and not reading_stored(info):
            for category, targets in by_category.items():
                _only_priorities_of(matrix, targets, f"{category}: ")
        return by_category

    @field_validator("trial")
    @classmethod
    def _trial_covers_matrix(cls, trial: Trial | None, info: ValidationInfo) -> Trial | None:
        matrix = info.data.get("matrix")
        if trial is not None and matrix is not None and not reading_stored(info):
            _only_priorities_of(matrix, trial.targets, "targets: ")
            missing = MATRIX_PRIORITIES[matrix] - set(trial.targets)
            if missing:
                raise ValueError(f"targets lack priorities {sorted(missing)} of {matrix}")
        return trial

    @field_validator("mail")
    @classmethod
    def _mail_words_of_matrix(
        cls, mail: MailTerms | None, info: ValidationInfo
    ) -> MailTerms | None:
        matrix = info.data.get("matrix")
        if mail is not None and matrix is not None and not reading_stored(info):
            problems = matrices.MATRICES[matrix].unknown_words(mail.impact, mail.urgency)
            if problems:
                raise ValueError("; ".join(problems.values()))
        return mail


MATRIX_PRIORITIES: dict[str, frozenset[str]] = {
    "R-ABCD": frozenset({"A", "B", "C", "D"}),
    "Z-P1P4": frozenset({"P1", "P2", "P3", "P4"}),
}
"""The priorities each matrix can give a ticket (triage's matrices, DOMAIN.md)."""


def _only_priorities_of(matrix: str, targets: dict[str, Target], where: str = "") -> None:
    """A target for a priority the matrix never gives would never be used: a typo (p1,
    "A " or P5) that leaves the meant priority without its target."""
    unknown = sorted(set(targets) - MATRIX_PRIORITIES[matrix])
    if unknown:
        raise ValueError(
            f"{where}{matrix} has no priority {', '.join(map(repr, unknown))}; "
            f"its priorities are {', '.join(sorted(MATRIX_PRIORITIES[matrix]))}"
        )


class PlanSelection(Data):
    """An agreement as a customer signs it: a plan, extensions, and its own overrides."""

    customer: Name
    plan: Name
    extensions: list[str] = Field(default_factory=list)
    timezone: TimeZoneName | None = None
    """The customer's local time zone, where the plan's hours are local (provider Z)."""
    holidays_country: HolidayCountry | None = None
    holidays_subdivision: str | None = None
    """Checked against the country given here, else the plan's (when the plan resolves)."""
    closed_dates: list[date] = Field(default_factory=list)
    targets: dict[str, Target] = Field(default_factory=dict)
    """Targets that replace the plan's, per priority."""
    trial_until: date | None = None
    extension_quantities: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    """How many of a per-unit extension (integrations); 1 when not given."""
    hyper_care_from: date | None = None
    """The first training day: support is free for `hyper_care_months` from it."""
    hyper_care_months: Literal[3, 6] = 3
    """3 for standard solutions, 6 for enterprise solutions (provider V)."""
    billing: BillingTerms
    channels: list[Channel] | None = None
    mail: MailTerms | None = None


class RegisterPlanAgreement(Message):
    """Command to billing: an agreement by plan name (see `servicedesk_contracts.plans`),
    resolved by billing into the full terms it then publishes. `subject_id` is the
    agreement id."""

    TYPE: ClassVar[str] = "RegisterPlanAgreement"
    event_type: Literal["RegisterPlanAgreement"] = "RegisterPlanAgreement"
    data: PlanSelection


class RegisterAgreement(Message):
    """Command to billing. `subject_id` is the agreement id."""

    TYPE: ClassVar[str] = "RegisterAgreement"
    event_type: Literal["RegisterAgreement"] = "RegisterAgreement"
    data: AgreementTerms


class AgreementRegistered(Message):
    TYPE: ClassVar[str] = "AgreementRegistered"
    event_type: Literal["AgreementRegistered"] = "AgreementRegistered"
    data: AgreementTerms


class CancelAgreementData(Data):
    effective_on: date
    """The last day of the agreement (its fees are prorated up to and including it)."""
    reason: str = ""


class CancelAgreement(Message):
    """Command to billing (`subject_id`: the agreement)."""

    TYPE: ClassVar[str] = "CancelAgreement"
    event_type: Literal["CancelAgreement"] = "CancelAgreement"
    data: CancelAgreementData


class TopUpBundleData(Data):
    minutes: Annotated[int, Field(gt=0, le=100_000 * 60)]
    note: str = ""


class TopUpBundle(Message):
    """Command to billing: hours bought for a prepaid bundle (`subject_id`: agreement)."""

    TYPE: ClassVar[str] = "TopUpBundle"
    event_type: Literal["TopUpBundle"] = "TopUpBundle"
    data: TopUpBundleData


class IssueStatementData(Data):
    month: Month


class IssueStatement(Message):
    TYPE: ClassVar[str] = "IssueStatement"
    event_type: Literal["IssueStatement"] = "IssueStatement"
    data: IssueStatementData


class StatementLine(Data):
    ticket_id: uuid.UUID
    reference: str
    minutes_logged: int
    minutes_billed: int
    rounding: str
    """How `minutes_billed` follows from `minutes_logged`, in words."""
    amount_cents: int
    month: Month | None = None
    """On an adjustment line: the (closed) month the time was worked in."""


class FeeLine(Data):
    description: str
    amount_cents: int


class PrepaidSummary(Data):
    balance_before_minutes: int
    topped_up_minutes: int
    used_minutes: int
    balance_after_minutes: int


class RetainerSummary(Data):
    included_minutes: int
    used_minutes: int
    overage_minutes: int


class StatementIssuedData(Data):
    statement_id: uuid.UUID
    agreement_id: uuid.UUID
    month: Month
    customer: str
    billing_model: BillingModel
    currency: str
    hourly_rate_cents: int
    lines: list[StatementLine]
    minutes_billed: int
    fee_lines: list[FeeLine] = Field(default_factory=list)
    adjustment_lines: list[StatementLine] = Field(default_factory=list)
    prepaid: PrepaidSummary | None = None
    retainer: RetainerSummary | None = None
    subtotal_cents: int
    vat_rate: Decimal
    vat_cents: int
    total_cents: int


class StatementIssued(Message):
    TYPE: ClassVar[str] = "StatementIssued"
    event_type: Literal["StatementIssued"] = "StatementIssued"
    data: StatementIssuedData


# --- notifications -------------------------------------------------------------------------


class NotificationData(Data):
    notification_id: uuid.UUID
    kind: Literal[
        "ticket_confirmation",
        "sla_breach",
        "sla_warning",
        "ticket_assigned",
        "agent_reply",
        "ticket_closed",
        "mail_refused",
    ]
    channel: Literal["email"] = "email"
    recipient: Email
    subject_line: str
    caused_by: uuid.UUID
    """event_id of the message this notification answers."""
    message_id: MessageId | None = None
    """The mail's Message-ID (the same on every send of this notification)."""


class NotificationSent(Message):
    TYPE: ClassVar[str] = "NotificationSent"
    event_type: Literal["NotificationSent"] = "NotificationSent"
    data: NotificationData


class NotificationFailedData(NotificationData):
    error: str


class NotificationFailed(Message):
    TYPE: ClassVar[str] = "NotificationFailed"
    event_type: Literal["NotificationFailed"] = "NotificationFailed"
    data: NotificationFailedData


class ResendNotificationData(Data):
    requested_by: Name


class ResendNotification(Message):
    """Command to the notifier (`subject_id`: the notification, as its receipts name it):
    send a failed delivery again, with the same Message-ID."""

    TYPE: ClassVar[str] = "ResendNotification"
    event_type: Literal["ResendNotification"] = "ResendNotification"
    data: ResendNotificationData


# --- command outcomes ----------------------------------------------------------------------


class ProducedEvent(Data):
    subject_id: uuid.UUID
    """The aggregate the command changed (a ticket, an agreement...)."""
    event: str
    """The stored event's name, e.g. `Ticket.Opened`."""
    reference: str | None = None
    """The ticket's reference, when the event names one."""


class CommandDecidedData(Data):
    command_id: uuid.UUID
    """The command's `event_id`, as the gateway answered it (`command_id`)."""
    command_type: str
    service: str
    """The service that decided."""
    outcome: Literal["applied", "refused"]
    reason: str | None = None
    """Why it was refused: a short label (`unknown_ticket`, `validation_failed`...)."""
    detail: str | None = None
    produced: list[ProducedEvent] = Field(default_factory=list)
    """What an applied command changed; empty for a command that changed nothing."""


class CommandDecided(Message):
    """Every command on a command topic is decided exactly once by the service it is
    addressed to: applied (with what it produced) or refused (with why; it is also on the
    dead-letter topic). The gateway answers `GET /commands/{id}` from these."""

    TYPE: ClassVar[str] = "CommandDecided"
    event_type: Literal["CommandDecided"] = "CommandDecided"
    data: CommandDecidedData


# --- operations ------------------------------------------------------------------------------


class DeadLetterReplayedData(Data):
    """A dead letter an operator sent back to its source topic (`servicedesk dead-letters
    replay`): which one, by whom, and what was sent (its SHA-256: the message as it was, or
    as the operator fixed it)."""

    dead_letter_partition: int = Field(ge=0)
    dead_letter_offset: int = Field(ge=0)
    source_topic: Label
    source_partition: int | None = None
    source_offset: int | None = None
    reason: str
    replayed_by: Label
    fixed: bool
    value_sha256: Sha256
    replayed_event_id: uuid.UUID | None = None
    """The event_id of the message sent back, when it has one (consumers skip it if they
    applied that event_id already)."""


class DeadLetterReplayed(Message):
    """The audit record of a replay (`subject_id`: derived from the dead letter's position,
    `dead_letter_id`), on the dead-letter replay topic: a dead letter is replayed once."""

    TYPE: ClassVar[str] = "DeadLetterReplayed"
    event_type: Literal["DeadLetterReplayed"] = "DeadLetterReplayed"
    data: DeadLetterReplayedData


ALL_MESSAGES: tuple[type[Message], ...] = (
    SubmitTicket,
    TicketOpened,
    ChangeTicketStatus,
    TicketStatusChanged,
    ChangeTicketPriority,
    TicketPriorityChangeRequested,
    ReplyAsAgent,
    AgentReplied,
    AddCustomerReply,
    CustomerReplied,
    AddInternalNote,
    InternalNoteAdded,
    ReceiveMail,
    MailSetAside,
    FileMail,
    MailFiled,
    LinkTickets,
    TicketLinked,
    SplitTicket,
    ContactRegistered,
    AssignTicket,
    TicketAssigned,
    StartTimer,
    StopTimer,
    LogTime,
    TimeLogged,
    TicketTriaged,
    SlaClockStarted,
    SlaClockPaused,
    SlaClockResumed,
    SlaClockRetargeted,
    SlaWarning,
    SlaClockStopped,
    SlaBreached,
    RegisterAgreement,
    RegisterPlanAgreement,
    AgreementRegistered,
    CancelAgreement,
    TopUpBundle,
    IssueStatement,
    StatementIssued,
    NotificationSent,
    NotificationFailed,
    ResendNotification,
    CommandDecided,
    DeadLetterReplayed,
)

_NAMESPACE = uuid.UUID("5d1e0b3a-6c1f-4a59-9f0e-2c4b7a8d9e10")


def dead_letter_id(partition: int, offset: int) -> uuid.UUID:
    """The id of the dead letter at (partition, offset) of the dead-letter topic."""
    return uuid.uuid5(_NAMESPACE, f"dead-letter:{partition}:{offset}")


def ticket_id_for_request(request_event_id: uuid.UUID) -> uuid.UUID:
    """The ticket a `SubmitTicket` opens: derived from the request id so a request
    delivered twice opens one ticket, and the gateway can name the id before intake runs."""
    return uuid.uuid5(_NAMESPACE, f"ticket:{request_event_id}")


def derived_id(*parts: Any) -> uuid.UUID:
    """A deterministic id from its parts (e.g. ticket id and clock kind), so duplicate
    commands collide instead of doubling."""
    return uuid.uuid5(_NAMESPACE, ":".join(str(p) for p in parts))
