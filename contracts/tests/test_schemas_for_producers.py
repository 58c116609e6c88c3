"""The JSON Schemas say what a producer in any language must send: a message carrying only
a schema's required fields is accepted by the decoder, and one without `event_type` is
refused by the schema as it is by the decoder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
from jsonschema import Draft202012Validator, ValidationError

from servicedesk_contracts import InvalidMessage, decode
from servicedesk_contracts import messages as m
from servicedesk_contracts.schemas import BASE_URL, SCHEMA_DIR, message_schema, schema_name

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODELS = {schema_name(model): model for model in m.ALL_MESSAGES}


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        json.loads((SCHEMA_DIR / name).read_text()),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def only_required(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """`value` (valid under `schema`) with every object cut down to the fields its schema
    requires, at every depth: what a producer that read only the schema would send. Where
    an object must have one of several fields (`oneOf` / `anyOf` of `required`), the first
    alternative the value meets is kept."""
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].removeprefix("#/$defs/")]
    if isinstance(value, dict) and "properties" in schema:
        names = list(schema.get("required", []))
        alternatives = schema.get("oneOf", schema.get("anyOf", []))
        met = [a for a in alternatives if Draft202012Validator(a).is_valid(value)]
        names += met[0].get("required", []) if met else []
        properties = schema["properties"]
        return {name: only_required(value[name], properties[name], root) for name in names}
    if "anyOf" in schema:  # an optional value: the branch of the value's JSON type
        branches = [b for b in schema["anyOf"] if _json_type(b, root) == _json_type_of(value)]
        return only_required(value, branches[0], root) if len(branches) == 1 else value
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        inner = schema["additionalProperties"]
        return {key: only_required(item, inner, root) for key, item in value.items()}
    if isinstance(value, list) and "items" in schema:
        return [only_required(item, schema["items"], root) for item in value]
    return value


def _json_type(schema: dict[str, Any], root: dict[str, Any]) -> str | None:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].removeprefix("#/$defs/")]
    return "object" if "properties" in schema else schema.get("type")


def _json_type_of(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", type(None): "null"}.get(
        type(value), "other"
    )


def minimal_instance(name: str) -> dict[str, Any]:
    schema = json.loads((SCHEMA_DIR / name).read_text())
    example = json.loads((EXAMPLES / name).read_text())
    minimal = only_required(example, schema, schema)
    assert isinstance(minimal, dict)
    return minimal


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_schema_is_draft_2020_12_with_an_absolute_id(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / name).read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"{BASE_URL}{name}"
    assert schema["$id"].startswith("https://")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_message_of_only_the_required_fields_is_valid_and_decoded(name: str) -> None:
    minimal = minimal_instance(name)
    assert {"event_type", "event_id", "occurred_at"} <= set(minimal)
    validator(name).validate(minimal)

    message = decode(json.dumps(minimal).encode())

    assert type(message) is MODELS[name]
    assert str(message.event_id) == minimal["event_id"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_message_without_event_type_fails_the_schema_as_it_fails_the_decoder(
    name: str,
) -> None:
    minimal = minimal_instance(name)
    del minimal["event_type"]

    with pytest.raises(ValidationError, match="'event_type' is a required property"):
        validator(name).validate(minimal)
    with pytest.raises(InvalidMessage, match="unknown event_type None") as refused:
        decode(json.dumps(minimal).encode())
    assert refused.value.reason == "unknown_type"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_schema_fixes_event_type_to_its_own_type(name: str) -> None:
    minimal = minimal_instance(name)
    minimal["event_type"] = "SomethingElse"
    with pytest.raises(ValidationError, match=f"'{MODELS[name].TYPE}' was expected"):
        validator(name).validate(minimal)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("targets", "A"), {"response_minutes": 60, "response_working_days": 1}),
        (("targets", "A"), {"resolution_minutes": 60}),
        (
            ("targets", "A"),
            {"response_minutes": 60, "resolution_minutes": 1, "resolution_working_days": 1},
        ),
        (("calendar",), {"timezone": "UTC"}),
    ],
)
def test_agreement_terms_the_decoder_refuses_fail_the_schema_too(
    path: tuple[str, ...], value: dict[str, Any]
) -> None:
    name = "RegisterAgreement.v1.json"
    minimal = minimal_instance(name)
    parent = minimal["data"]
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value

    assert not validator(name).is_valid(minimal)
    field = re.escape(".".join(("data", *path)))
    with pytest.raises(InvalidMessage, match=rf"^{field}: ") as refused:
        decode(json.dumps(minimal).encode())
    assert refused.value.reason == "validation_failed"


def test_a_later_version_requires_schema_version_which_decode_would_read_as_1() -> None:
    class SubmitTicketV2(m.SubmitTicket):
        VERSION: ClassVar[int] = 2

    assert "schema_version" not in message_schema(m.SubmitTicket)["required"]
    assert "schema_version" in message_schema(SubmitTicketV2)["required"]
    assert message_schema(SubmitTicketV2)["$id"] == f"{BASE_URL}SubmitTicket.v2.json"
