"""Writes the JSON Schema of every message into `contracts/schemas/`.

Run `python -m servicedesk_contracts.schemas` after changing a model; a test fails while
the committed schemas differ from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from servicedesk_contracts.messages import ALL_MESSAGES

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def schema_files() -> dict[str, str]:
    """File name -> JSON text, one per message type and version."""
    files: dict[str, str] = {}
    for model in ALL_MESSAGES:
        schema: dict[str, Any] = model.model_json_schema(mode="validation")
        schema["$id"] = f"servicedesk/{model.TYPE}.v{model.VERSION}.json"
        files[f"{model.TYPE}.v{model.VERSION}.json"] = json.dumps(schema, indent=2) + "\n"
    return files


def main(target: Path = SCHEMA_DIR) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name, text in schema_files().items():
        (target / name).write_text(text)
    sys.stdout.write(f"wrote {len(ALL_MESSAGES)} schemas to {target}\n")


if __name__ == "__main__":
    main()
