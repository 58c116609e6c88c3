"""Writes the JSON Schema of every message into `contracts/schemas/`.

Run `python -m servicedesk_contracts.schemas` after changing a model; a test fails while
the committed schemas differ from the models.

A schema says what a producer must send. pydantic leaves every field with a default out
of `required`, and `event_type` has one (its only value): yet `decode` routes on it, so a
message without it is refused (`unknown event_type None`). The schemas therefore require
it. `schema_version` may be left out of version 1 only (`decode` reads a missing one as
1), so the schema of a later version requires it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from servicedesk_contracts.envelope import Message
from servicedesk_contracts.messages import ALL_MESSAGES

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_URL = "https://servicedesk.dev/schemas/"
"""Where the schemas would be published; `$id` is this plus the file name."""


def schema_name(model: type[Message]) -> str:
    """The file name (and last part of `$id`) of a message type's schema."""
    return f"{model.TYPE}.v{model.VERSION}.json"


def producer_must_send(model: type[Message]) -> list[str]:
    """Fields with a default that `decode` still needs from the producer."""
    return ["event_type"] if model.VERSION == 1 else ["event_type", "schema_version"]


def message_schema(model: type[Message]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one message type and version."""
    generated: dict[str, Any] = model.model_json_schema(mode="validation")
    properties: dict[str, Any] = generated["properties"]
    required = set(generated.get("required", [])) | set(producer_must_send(model))
    for name in producer_must_send(model):
        properties[name].pop("default", None)  # sent, not filled in
    generated["required"] = [name for name in properties if name in required]
    return {"$schema": DIALECT, "$id": BASE_URL + schema_name(model), **generated}


def schema_files() -> dict[str, str]:
    """File name -> JSON text, one per message type and version."""
    return {
        schema_name(model): json.dumps(message_schema(model), indent=2) + "\n"
        for model in ALL_MESSAGES
    }


def main(target: Path = SCHEMA_DIR) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name, text in schema_files().items():
        (target / name).write_text(text)
    sys.stdout.write(f"wrote {len(ALL_MESSAGES)} schemas to {target}\n")


if __name__ == "__main__":
    main()
