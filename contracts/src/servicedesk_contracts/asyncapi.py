"""The AsyncAPI 3.0 document of every topic and message, for integrators.

Built with FastStream from the message models: a `KafkaBroker` that is never connected gets
one publisher per (topic, message type), and FastStream's AsyncAPI factory turns them into
channels, operations, messages and the models' JSON Schemas. FastStream writes one channel
per publisher and knows nothing of our Kafka record (key, headers), so `build` then joins
the publishers of a topic into one channel (address = the topic) listing its messages, and
gives each message what a producer must know: its description, the `event_type` and
`schema_version` headers, and the key (the subject id). A topic has one operation: `receive`
on a command topic (the servicedesk is sent commands there), `send` on the others.

Run `python -m servicedesk_contracts.asyncapi` (`make asyncapi`) after changing a model or
a topic; a test fails while the committed `contracts/asyncapi.yaml` differs from `build()`.
The gateway serves the same document at `/asyncapi.yaml` and `/asyncapi.json`.
"""

from __future__ import annotations

import inspect
import json
import sys
import warnings
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from servicedesk_contracts import messages as m
from servicedesk_contracts import topics
from servicedesk_contracts.envelope import EVENT_TYPE_HEADER, SCHEMA_VERSION_HEADER, Message
from servicedesk_contracts.schemas import producer_must_send

TARGET = Path(__file__).resolve().parents[2] / "asyncapi.yaml"
TITLE = "servicedesk messages"
VERSION = "1"
ABOUT = (
    "Every topic and message of the servicedesk, for integrators. Every message is JSON in "
    "the envelope every type shares (`event_id`, `event_type`, `schema_version`, "
    "`occurred_at`, `producer`, `subject_id`, ...). The Kafka key is `subject_id`, so one "
    "subject's messages stay in order; the headers `event_type` and `schema_version` repeat "
    "the envelope's, for routing without parsing. `event_id` is the idempotency key: a "
    "consumer must change nothing when it sees one twice. Fields are only ever added as "
    "optional; consumers ignore fields they do not know."
)
BINDING_VERSION = "0.4.0"
"""The Kafka bindings' version FastStream writes (channel bindings); messages use it too."""

INBOUND_COMMANDS: Final = (
    m.SubmitTicket,
    m.ChangeTicketStatus,
    m.ChangeTicketPriority,
    m.ReplyAsAgent,
    m.AddCustomerReply,
    m.AddInternalNote,
    m.AssignTicket,
    m.LinkTickets,
    m.SplitTicket,
    m.StartTimer,
    m.StopTimer,
    m.LogTime,
    m.FileMail,
    m.ReceiveMail,
)
TICKET_EVENTS: Final = (
    m.TicketOpened,
    m.TicketStatusChanged,
    m.TicketPriorityChangeRequested,
    m.AgentReplied,
    m.CustomerReplied,
    m.InternalNoteAdded,
    m.TicketAssigned,
    m.TicketLinked,
    m.TimeLogged,
    m.ContactRegistered,
    m.MailFiled,
    m.MailSetAside,
)
SLA_EVENTS: Final = (
    m.SlaClockStarted,
    m.SlaClockPaused,
    m.SlaClockResumed,
    m.SlaClockRetargeted,
    m.SlaWarning,
    m.SlaClockStopped,
    m.SlaBreached,
)

CHANNELS: Final[dict[str, tuple[str, tuple[type[Message], ...]]]] = {
    topics.INBOUND: (
        "Commands to intake: ticket requests from other systems and the gateway's ticket "
        "commands; intake's own `ReceiveMail` for each mail it received.",
        INBOUND_COMMANDS,
    ),
    topics.BILLING_COMMANDS: (
        "Commands to billing: register, change or cancel an agreement, top up a bundle, "
        "issue a statement.",
        (
            m.RegisterAgreement,
            m.RegisterPlanAgreement,
            m.CancelAgreement,
            m.TopUpBundle,
            m.IssueStatement,
        ),
    ),
    topics.NOTIFIER_COMMANDS: (
        "Commands to the notifier: resend a delivery that failed.",
        (m.ResendNotification,),
    ),
    topics.TICKETS: (
        "Intake's events: what happened to tickets, mails and contacts.",
        TICKET_EVENTS,
    ),
    topics.TRIAGE: ("Triage's decisions: each ticket's priority.", (m.TicketTriaged,)),
    topics.SLA: ("The sla-timer's clocks: started, paused, warned, stopped, breached.", SLA_EVENTS),
    topics.AGREEMENTS: (
        "Billing's agreements: the full terms, each time they are registered or change.",
        (m.AgreementRegistered,),
    ),
    topics.BILLING: ("Billing's issued statements.", (m.StatementIssued,)),
    topics.NOTIFICATIONS: (
        "The notifier's receipts: each mail sent or failed.",
        (m.NotificationSent, m.NotificationFailed),
    ),
    topics.COMMAND_OUTCOMES: (
        "Each command's outcome, from the service that decided it.",
        (m.CommandDecided,),
    ),
    topics.DEAD_LETTER_REPLAYS: (
        "Which dead letters operators sent back to their source topic: the audit record is "
        "published before the message itself, and a dead letter is replayed once.",
        (m.DeadLetterReplayed,),
    ),
    topics.DEAD_LETTER: (
        "Messages a service could not accept, as they arrived (any bytes, not necessarily "
        "JSON), with why and where from in their headers.",
        (),
    ),
}
"""Topic -> (description, the message types published on it). A command topic's types are
the commands its service handles (any other type there is dead-lettered)."""

DEAD_LETTER_HEADERS: Final = {
    "error_reason": "Why: a short label (`validation_failed`, `unknown_type`...).",
    "error_detail": "What exactly is wrong (at most 4000 characters).",
    "source_service": "The service that refused it.",
    "source_topic": "The topic it was read from.",
    "source_partition": "Its partition there (decimal).",
    "source_offset": "Its offset there (decimal).",
    "causation_id": "For a refused command: its `event_id` (`GET /commands/{id}` finds it).",
    "value_truncated_from_bytes": "Present when the value was cut to 256 KiB: its size.",
}
DEAD_LETTER_REQUIRED: Final = tuple(list(DEAD_LETTER_HEADERS)[:6])
DEAD_LETTER_MESSAGE = "DeadLetter"


def topic_of(model: type[Message]) -> str:
    """The topic messages of this type are published on."""
    return next(topic for topic, (_, types) in CHANNELS.items() if model in types)


def _description(model: type[Message]) -> str:
    """The model's own docstring, else its data's (never one inherited from a base)."""
    data = model.model_fields["data"].annotation
    for owner in (model, data):
        doc = vars(owner).get("__doc__") if isinstance(owner, type) else None
        if doc:
            return inspect.cleandoc(doc)
    return f"`{model.TYPE}` version {model.VERSION}."


def broker() -> KafkaBroker:
    """A KafkaBroker (never connected) with one publisher per (topic, message type)."""
    kafka = KafkaBroker(
        "kafka:29092",
        description="The servicedesk's Kafka cluster (docker-compose: kafka:29092 between "
        "containers, localhost:9092 from the host).",
    )
    for topic, (description, types) in CHANNELS.items():
        for model in types:
            kafka.publisher(
                topic, title=f"{topic}:{model.__name__}", description=description, schema=model
            )
        if not types:
            kafka.publisher(topic, title=f"{topic}:{DEAD_LETTER_MESSAGE}", description=description)
    return kafka


def build() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document, as JSON-compatible data."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # two models of one name would overwrite each other
        spec = AsyncAPI(
            broker(),
            title=TITLE,
            version=VERSION,
            description=ABOUT,
            schema_version="3.0.0",
        ).to_specification()
    document: dict[str, Any] = json.loads(spec.to_json())
    return _one_channel_per_topic(document)


def _one_channel_per_topic(document: dict[str, Any]) -> dict[str, Any]:
    """FastStream's channel per publisher -> one channel per topic with its messages, and one
    operation per topic (`receive` on a command topic, else `send`); each message gets its
    key, headers and description."""
    components = document["components"]
    old_messages: dict[str, Any] = components["messages"]
    schemas: dict[str, Any] = components["schemas"]
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    new_messages: dict[str, Any] = {}
    for topic, (description, types) in CHANNELS.items():
        names = [model.__name__ for model in types] or [DEAD_LETTER_MESSAGE]
        for name in names:
            message = old_messages.pop(f"{topic}:{name}:Message")
            model = next((t for t in types if t.__name__ == name), None)
            new_messages[name] = (
                _message(model, message, schemas) if model else _dead_letter(message, schemas)
            )
        channels[topic] = {
            "address": topic,
            "description": description,
            "servers": [{"$ref": "#/servers/development"}],
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
            "bindings": {
                "kafka": {
                    "topic": topic,
                    "partitions": topics.PARTITIONS,
                    "bindingVersion": BINDING_VERSION,
                }
            },
        }
        # The servicedesk receives on a command topic (other systems send there too) and
        # sends on every other one.
        action = "receive" if topic in topics.COMMANDS else "send"
        operations[f"{action}:{topic}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{topic}"},
            "summary": f"Commands to the servicedesk on {topic}."
            if action == "receive"
            else f"The servicedesk publishes on {topic}.",
            "messages": [{"$ref": f"#/channels/{topic}/messages/{name}"} for name in names],
        }
    assert not old_messages, f"messages of no topic: {sorted(old_messages)}"
    document["channels"] = channels
    document["operations"] = operations
    components["messages"] = new_messages
    components["schemas"] = dict(sorted(schemas.items()))
    return document


def _message(model: type[Message], message: dict[str, Any], schemas: dict[str, Any]) -> Any:
    payload = schemas[model.__name__]
    required = set(payload.get("required", [])) | set(producer_must_send(model))
    for name in producer_must_send(model):  # sent by the producer, not filled in
        payload["properties"][name].pop("default", None)
    payload["required"] = [name for name in payload["properties"] if name in required]
    return {
        "name": model.TYPE,
        "title": model.TYPE,
        "summary": f"`{model.TYPE}` version {model.VERSION}, on {topic_of(model)}.",
        "description": _description(model),
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {
                EVENT_TYPE_HEADER: {
                    "type": "string",
                    "const": model.TYPE,
                    "description": "The envelope's `event_type`.",
                },
                SCHEMA_VERSION_HEADER: {
                    "type": "string",
                    "const": str(model.VERSION),
                    "description": "The envelope's `schema_version`, in decimal.",
                },
            },
            "description": "The servicedesk's producers send both; for other producers they "
            "are optional (a consumer reads the type from the envelope then).",
        },
        "correlationId": {
            "description": "The request this message is part of.",
            "location": "$message.payload#/correlation_id",
        },
        "payload": message["payload"],
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "format": "uuid",
                    "description": "The message's `subject_id` (UTF-8).",
                },
                "bindingVersion": BINDING_VERSION,
            }
        },
    }


def _dead_letter(message: dict[str, Any], schemas: dict[str, Any]) -> Any:
    payload_ref: str = message["payload"]["$ref"]
    schemas.pop(payload_ref.rsplit("/", 1)[-1], None)  # FastStream's empty payload
    return {
        "name": DEAD_LETTER_MESSAGE,
        "title": DEAD_LETTER_MESSAGE,
        "summary": "A message that could not be accepted.",
        "description": "The value as it arrived (its head, when larger than 256 KiB) and its "
        "original key; the original headers are not kept.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": {
                name: {"type": "string", "description": text}
                for name, text in DEAD_LETTER_HEADERS.items()
            },
            "required": list(DEAD_LETTER_REQUIRED),
        },
        "payload": {"description": "Any bytes: not necessarily JSON, nor UTF-8."},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The original key, if any."},
                "bindingVersion": BINDING_VERSION,
            }
        },
    }


@cache
def document_yaml() -> str:
    """The document as YAML: what `contracts/asyncapi.yaml` holds."""
    text: str = yaml.safe_dump(build(), sort_keys=False, allow_unicode=True, width=100)
    return text


@cache
def document_json() -> str:
    """The document as JSON."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(target: Path = TARGET) -> None:
    target.write_text(document_yaml())
    channels = len(CHANNELS)
    sys.stdout.write(f"wrote AsyncAPI 3.0.0 ({channels} channels) to {target}\n")


if __name__ == "__main__":
    main()
