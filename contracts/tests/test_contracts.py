"""The contracts: committed schemas are current, old payloads still parse, bad input is
named precisely."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from servicedesk_contracts import InvalidMessage, decode, topics
from servicedesk_contracts import messages as m
from servicedesk_contracts.schemas import SCHEMA_DIR, schema_files

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_committed_schemas_equal_the_models() -> None:
    expected = schema_files()
    committed = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}
    stale = sorted(name for name in expected if committed.get(name) != expected[name])
    extra = sorted(set(committed) - set(expected))
    assert not stale, f"run `make schemas`: stale {stale}"
    assert not extra, f"schemas without a model: {extra}"


def test_every_message_has_a_golden_example_that_still_parses() -> None:
    for model in m.ALL_MESSAGES:
        path = EXAMPLES / f"{model.TYPE}.v{model.VERSION}.json"
        assert path.exists(), f"missing golden example {path.name}"
        message = decode(path.read_bytes())
        assert type(message) is model
        assert message.event_type == model.TYPE


def test_golden_examples_validate_against_the_committed_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for path in EXAMPLES.glob("*.json"):
        schema = json.loads((SCHEMA_DIR / path.name).read_text())
        jsonschema.validate(json.loads(path.read_text()), schema)


def test_unknown_fields_are_ignored_so_producers_can_add_optional_ones() -> None:
    document = json.loads((EXAMPLES / "TicketOpened.v1.json").read_text())
    document["a_field_from_the_future"] = 1
    document["data"]["another_new_field"] = {"x": 1}
    assert decode(json.dumps(document).encode()).event_type == "TicketOpened"


@pytest.mark.parametrize(
    ("raw", "reason", "names"),
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"[1, 2]", "invalid_json", "not a JSON object"),
        (b'{"event_type": "TicketExploded"}', "unknown_type", "TicketExploded"),
        (b'{"event_type": "TicketOpened", "schema_version": 0}', "unknown_type", "version 0"),
        (b'{"event_type": "TicketOpened", "schema_version": "2"}', "unknown_type", "'2'"),
        (b"[" * 100_000, "invalid_json", "nested deeper than 64 levels"),
        (b'{"schema_version": ' + b"9" * 5000 + b"}", "invalid_json", "4300 digits"),
        (b'{"event_type": "\xff"}', "invalid_json", "not valid JSON"),
        (b'{"body": "' + b"x" * (1024 * 1024) + b'"}', "too_large", "exceeds"),
    ],
)
def test_undecodable_messages_say_why(raw: bytes, reason: str, names: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode(raw)
    assert caught.value.reason == reason
    assert names in caught.value.detail


def test_a_newer_version_of_a_known_type_is_read_with_the_fields_we_know() -> None:
    document = json.loads((EXAMPLES / "TicketOpened.v1.json").read_text())
    document["schema_version"] = 7
    document["data"]["added_in_version_7"] = {"anything": [1, 2]}
    message = decode(json.dumps(document).encode())
    assert isinstance(message, m.TicketOpened)
    assert message.schema_version == 7
    assert message.data.reference == document["data"]["reference"]


def test_a_validation_error_names_the_field() -> None:
    document = json.loads((EXAMPLES / "SubmitTicket.v1.json").read_text())
    document["data"]["reporter_email"] = "not-an-address"
    with pytest.raises(InvalidMessage) as caught:
        decode(json.dumps(document).encode())
    assert caught.value.reason == "validation_failed"
    assert "data.reporter_email" in caught.value.detail


def test_custom_fields_are_typed() -> None:
    assert m.CustomField(name="software version", type="version", value="4.2.1").value == "4.2.1"
    with pytest.raises(ValidationError, match="not a valid version"):
        m.CustomField(name="software version", type="version", value="four")
    with pytest.raises(ValidationError, match="not a valid integer"):
        m.CustomField(name="seats", type="integer", value="12")


def test_occurred_at_must_carry_a_time_zone_and_is_kept_in_utc() -> None:
    document = json.loads((EXAMPLES / "TicketOpened.v1.json").read_text())
    document["occurred_at"] = "2026-06-05T10:00:00+02:00"
    assert (
        decode(json.dumps(document).encode()).occurred_at.isoformat() == "2026-06-05T08:00:00+00:00"
    )
    document["occurred_at"] = "2026-06-05T10:00:00"
    with pytest.raises(InvalidMessage, match="occurred_at"):
        decode(json.dumps(document).encode())


def test_agreement_targets_must_cover_every_priority_of_the_matrix() -> None:
    document = json.loads((EXAMPLES / "AgreementRegistered.v1.json").read_text())
    del document["data"]["targets"]["D"]
    with pytest.raises(InvalidMessage, match=r"lack priorities \['D'\]"):
        decode(json.dumps(document).encode())


def test_kafka_key_and_headers_carry_subject_and_type() -> None:
    subject = uuid.uuid4()
    message = m.IssueStatement.create(producer="t", subject_id=subject, data={"month": "2026-11"})
    assert message.kafka_key() == str(subject).encode()
    assert ("event_type", b"IssueStatement") in message.kafka_headers()


def test_ticket_ids_derive_from_the_request_so_a_resent_request_collides() -> None:
    request = uuid.uuid4()
    assert m.ticket_id_for_request(request) == m.ticket_id_for_request(request)
    assert m.ticket_id_for_request(request) != m.ticket_id_for_request(uuid.uuid4())


def test_topic_names_are_unique_and_versioned() -> None:
    assert len(set(topics.ALL)) == len(topics.ALL)
    assert all(name.startswith("servicedesk.") and name.endswith(".v1") for name in topics.ALL)
