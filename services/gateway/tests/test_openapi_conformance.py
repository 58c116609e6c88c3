"""schemathesis against the gateway's own OpenAPI document: generated requests (valid and
invalid) to every route, as an admin, must never give a server error, invalid ones must be
refused, and every answer must match the document (status codes, content types, bodies)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from services.gateway.tests.view_messages import NOW, opened, started, triaged

from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_gateway.auth import parse_tokens
from servicedesk_gateway.http import create_http_app
from servicedesk_gateway.view.store import GatewayView
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_stack.demo import provider_r_medium

ADMIN = {"Authorization": "Bearer b-token"}


def _app(folder: Path) -> object:
    database = Database(DatabaseUrl.parse(f"sqlite:///{folder}/gateway.db", "gateway"))
    view = GatewayView(database)
    agreement = uuid.UUID("00000000-0000-4000-8000-00000000000a")
    view.apply(
        m.AgreementRegistered.create(
            producer="billing", subject_id=agreement, data=provider_r_medium()
        )
    )
    ticket = opened(1, agreement_id=agreement)
    view.apply(ticket, triaged(ticket, "B", "R-ABCD"), started(ticket, timedelta(hours=4)))

    async def publish(topic: str, message: Message) -> None:
        return None

    app = create_http_app(
        view.queries, publish, parse_tokens("a-token:agent:mette,b-token:admin:lars"), lambda: NOW
    )
    app.state.view_ready = lambda: True
    return app


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> object:
    return _app(tmp_path_factory.mktemp("gateway"))


def operations() -> list[str]:
    """Every operation of the document (read once at collection, from a throwaway app)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        loaded = schemathesis.openapi.from_asgi("/openapi.json", _app(Path(folder)))
        return sorted(op.ok().label for op in loaded.get_all_operations())


@pytest.mark.parametrize("label", operations())
def test_every_answer_matches_the_document_and_none_is_a_server_error(
    app: object, label: str
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    (operation,) = [op.ok() for op in schema.get_all_operations() if op.ok().label == label]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    def call(case: Any) -> None:
        # Not "positive data acceptance": the API refuses with 422 what passes the JSON
        # Schema but not the domain (an e-mail address, a calendar that never opens, a
        # cursor it never handed out); that is a refusal naming the field, not a bug.
        case.call_and_validate(headers=ADMIN, excluded_checks=[positive_data_acceptance])

    call()
