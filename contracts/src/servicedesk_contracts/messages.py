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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, Field, field_validator, model_validator

from servicedesk_contracts.envelope import Data, Message

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

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value.lower()


Email = Annotated[str, AfterValidator(_email)]
Text = Annotated[str, Field(min_length=1, max_length=20_000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Month = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
WorkType = Annotated[str, Field(min_length=1, max_length=60)]
PriorityName = Annotated[str, Field(min_length=1, max_length=10)]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]
UtcDatetime = AwareDatetime


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
    subject: Annotated[str, Field(min_length=1, max_length=300)]
    body: Text
    category: Annotated[str, Field(min_length=1, max_length=60)]
    impact: Annotated[str, Field(min_length=1, max_length=60)]
    urgency: Annotated[str, Field(min_length=1, max_length=60)]
    requested_priority: str | None = None
    custom_fields: list[CustomField] = Field(default_factory=list)


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


class TicketStatusChangedData(Data):
    reference: str
    from_status: TicketStatus
    to_status: TicketStatus
    changed_by: Name
    reason: str = ""
    changed_at: UtcDatetime | None = None
    """When the change was made (the command's time); SLA pauses count from here."""


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


class ReplyAsAgent(Message):
    TYPE: ClassVar[str] = "ReplyAsAgent"
    event_type: Literal["ReplyAsAgent"] = "ReplyAsAgent"
    data: ReplyAsAgentData


class AgentRepliedData(Data):
    reference: str
    agent: Name
    body: Text
    replied_at: UtcDatetime


class AgentReplied(Message):
    TYPE: ClassVar[str] = "AgentReplied"
    event_type: Literal["AgentReplied"] = "AgentReplied"
    data: AgentRepliedData


class AddCustomerReplyData(Data):
    author_email: Email
    body: Text


class AddCustomerReply(Message):
    TYPE: ClassVar[str] = "AddCustomerReply"
    event_type: Literal["AddCustomerReply"] = "AddCustomerReply"
    data: AddCustomerReplyData


class CustomerRepliedData(Data):
    reference: str
    author_email: Email
    body: Text
    replied_at: UtcDatetime


class CustomerReplied(Message):
    TYPE: ClassVar[str] = "CustomerReplied"
    event_type: Literal["CustomerReplied"] = "CustomerReplied"
    data: CustomerRepliedData


class LogTimeData(Data):
    agent: Name
    started_at: UtcDatetime
    duration_minutes: Annotated[int, Field(gt=0, le=24 * 60)]
    work_type: WorkType = "support"
    billable: bool = True


class TimerData(Data):
    agent: Name
    work_type: WorkType = "support"
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


class SlaBreached(Message):
    TYPE: ClassVar[str] = "SlaBreached"
    event_type: Literal["SlaBreached"] = "SlaBreached"
    data: SlaBreachedData


# --- agreements and billing ----------------------------------------------------------------


class OpeningInterval(Data):
    """Local opening hours on one day. `closes` 00:00 means midnight at the end of the day
    (so 00:00-00:00 is the whole day)."""

    opens: time
    closes: time

    @property
    def closes_at_midnight(self) -> bool:
        return self.closes == time(0)

    @model_validator(mode="after")
    def _opens_before_closes(self) -> OpeningInterval:
        if not self.closes_at_midnight and self.closes <= self.opens:
            raise ValueError(f"opening interval closes ({self.closes}) before it opens")
        return self


class Calendar(Data):
    """Business hours: an IANA time zone, weekly opening intervals, public holidays of a
    country (the `holidays` package) and extra closed dates, once or every year (the Danish
    provider closes on 24 Dec, 31 Dec and 5 June); or always open (24x7)."""

    timezone: Annotated[str, Field(min_length=1)] = "UTC"
    always_open: bool = False
    weekly_hours: dict[Weekday, list[OpeningInterval]] = Field(default_factory=dict)
    holidays_country: str | None = None
    holidays_subdivision: str | None = None
    closed_dates: list[date] = Field(default_factory=list)
    closed_every_year: list[
        Annotated[str, Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")]
    ] = Field(default_factory=list)
    """Dates closed every year, as MM-DD."""

    @model_validator(mode="after")
    def _has_hours(self) -> Calendar:
        if not self.always_open and not any(self.weekly_hours.values()):
            raise ValueError("a calendar that is not always open needs weekly_hours")
        for day, intervals in self.weekly_hours.items():
            ordered = sorted(intervals, key=lambda i: i.opens)
            for before, after in itertools.pairwise(ordered):
                if before.closes_at_midnight or after.opens < before.closes:
                    raise ValueError(f"weekly_hours.{day}: opening intervals overlap")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown IANA time zone {value!r}") from error
        return value


PAUSED_BY_DEFAULT: tuple[TicketStatus, ...] = ("awaiting_reply",)
"""Waiting for the customer never counts against the provider (DOMAIN.md 4)."""


class Target(Data):
    """A response and an optional resolution target, each in business minutes or in working
    days (see the sla-timer's business_time for what a working day means). Minutes may be
    fractions (a test agreement may give 0.05 = 3 s)."""

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

    @model_validator(mode="after")
    def _targets_cover_matrix(self) -> AgreementTerms:
        expected = {"R-ABCD": {"A", "B", "C", "D"}, "Z-P1P4": {"P1", "P2", "P3", "P4"}}
        missing = expected[self.matrix] - set(self.targets)
        if missing:
            raise ValueError(f"targets lack priorities {sorted(missing)} of {self.matrix}")
        return self


class PlanSelection(Data):
    """An agreement as a customer signs it: a plan, extensions, and its own overrides."""

    customer: Name
    plan: Name
    extensions: list[str] = Field(default_factory=list)
    timezone: str | None = None
    """The customer's local time zone, where the plan's hours are local (provider Z)."""
    holidays_country: str | None = None
    holidays_subdivision: str | None = None
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
    kind: Literal["ticket_confirmation", "sla_breach", "sla_warning"]
    channel: Literal["email"] = "email"
    recipient: Email
    subject_line: str
    caused_by: uuid.UUID
    """event_id of the message this notification answers."""


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
)

_NAMESPACE = uuid.UUID("5d1e0b3a-6c1f-4a59-9f0e-2c4b7a8d9e10")


def ticket_id_for_request(request_event_id: uuid.UUID) -> uuid.UUID:
    """The ticket a `SubmitTicket` opens: derived from the request id so a request
    delivered twice opens one ticket, and the gateway can name the id before intake runs."""
    return uuid.uuid5(_NAMESPACE, f"ticket:{request_event_id}")


def derived_id(*parts: Any) -> uuid.UUID:
    """A deterministic id from its parts (e.g. ticket id and clock kind), so duplicate
    commands collide instead of doubling."""
    return uuid.uuid5(_NAMESPACE, ":".join(str(p) for p in parts))
