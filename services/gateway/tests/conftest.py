from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servicedesk_gateway.view.store import GatewayView
from servicedesk_runtime.database import Database, DatabaseUrl


@pytest.fixture
def view(tmp_path: Path) -> Iterator[GatewayView]:
    """The gateway's view on a SQLite file of its own (the embedded run's engine)."""
    database = Database(DatabaseUrl.parse(f"sqlite:///{tmp_path}/gateway.db", "gateway"))
    yield GatewayView(database)
    database.close()
