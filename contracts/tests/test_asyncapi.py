"""The AsyncAPI document: committed as the code builds it, valid AsyncAPI 3.0.0 (by the
official JSON Schema), one channel per topic, every message type on exactly one channel
with its key and headers, and every golden example valid against its message's payload."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator

from servicedesk_contracts import decode, topics
from servicedesk_contracts import messages as m
from servicedesk_contracts.asyncapi import TARGET, document_json, document_yaml, topic_of

DATA = Path(__file__).resolve().parent / "data" / "asyncapi-specs"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(TARGET.read_text())
    return loaded


def test_committed_document_equals_the_code() -> None:
    assert TARGET.read_text() == document_yaml(), "run `make asyncapi`"
    assert json.loads(document_json()) == yaml.safe_load(document_yaml())


def test_document_is_valid_asyncapi_3(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    schema = json.loads(gzip.decompress((DATA / "asyncapi-3.0.0.schema.json.gz").read_bytes()))
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:300]}"
        for error in Draft7Validator(schema).iter_errors(document)
    ]
    assert not errors


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    def resolves(ref: str) -> bool:
        node: Any = document
        for escaped in ref.removeprefix("#/").split("/"):
            part = escaped.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    found = refs(document)
    assert found
    assert [ref for ref in found if not ref.startswith("#/") or not resolves(ref)] == []


def test_one_channel_per_topic_each_with_one_operation(document: dict[str, Any]) -> None:
    channels = document["channels"]
    assert sorted(channel["address"] for channel in channels.values()) == sorted(topics.ALL)
    for key, channel in channels.items():
        assert key == channel["address"] == channel["bindings"]["kafka"]["topic"]
        assert channel["bindings"]["kafka"]["partitions"] == topics.PARTITIONS
        assert channel["messages"], key
    operations = document["operations"].values()
    assert sorted(op["channel"]["$ref"] for op in operations) == sorted(
        f"#/channels/{topic}" for topic in topics.ALL
    )
    actions = {op["channel"]["$ref"].removeprefix("#/channels/"): op["action"] for op in operations}
    assert actions == {
        topic: "receive" if topic in topics.COMMANDS else "send" for topic in topics.ALL
    }


def test_every_message_type_is_on_exactly_one_channel(document: dict[str, Any]) -> None:
    on_channels = [
        (name, channel["address"])
        for channel in document["channels"].values()
        for name in channel["messages"]
    ]
    names = [name for name, _ in on_channels]
    assert len(names) == len(set(names))
    expected = {(model.TYPE, topic_of(model)) for model in m.ALL_MESSAGES}
    assert expected <= set(on_channels)
    assert set(on_channels) - expected == {("DeadLetter", topics.DEAD_LETTER)}
    assert {topic_of(model) for model in m.ALL_MESSAGES} == set(topics.ALL) - {topics.DEAD_LETTER}
    assert {m.CommandDecided} == {
        model for model in m.ALL_MESSAGES if topic_of(model) == topics.COMMAND_OUTCOMES
    }
    assert topic_of(m.SubmitTicket) == topics.INBOUND
    assert topic_of(m.TicketOpened) == topics.TICKETS


@pytest.mark.parametrize("model", m.ALL_MESSAGES, ids=lambda model: model.TYPE)
def test_each_message_names_its_key_headers_and_payload(
    document: dict[str, Any], model: type[m.Message]
) -> None:
    message = document["components"]["messages"][model.TYPE]
    assert message["name"] == model.TYPE
    assert message["description"]
    assert message["contentType"] == "application/json"
    headers = message["headers"]
    assert headers["properties"]["event_type"]["const"] == model.TYPE
    assert headers["properties"]["schema_version"]["const"] == str(model.VERSION)
    assert "required" not in headers  # optional for other producers (README)
    assert message["bindings"]["kafka"]["key"]["format"] == "uuid"  # the subject id
    payload = document["components"]["schemas"][model.__name__]
    assert message["payload"] == {"$ref": f"#/components/schemas/{model.__name__}"}
    assert payload["properties"]["event_type"]["const"] == model.TYPE
    assert {"event_type", "event_id", "subject_id", "data"} <= set(payload["required"])


@pytest.mark.parametrize("model", m.ALL_MESSAGES, ids=lambda model: model.TYPE)
def test_golden_example_is_valid_under_its_payload(
    document: dict[str, Any], model: type[m.Message]
) -> None:
    example = json.loads((EXAMPLES / f"{model.TYPE}.v{model.VERSION}.json").read_text())
    schema = {
        "$ref": f"#/components/schemas/{model.__name__}",
        "components": document["components"],
    }
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        example
    )
    without_type = {name: value for name, value in example.items() if name != "event_type"}
    assert not Draft202012Validator(schema).is_valid(without_type)
    assert type(decode(json.dumps(example).encode())) is model
