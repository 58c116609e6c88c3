"""Fixtures for the cross-service tests: the real Tansu broker, real PostgreSQL, a real
SMTP sink and the services as separate processes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.real_parts import Broker, broker_for_a_test

from servicedesk_runtime.tansu import free_port
from servicedesk_stack.mail_sink import MailSink
from servicedesk_stack.stack import SERVICES, Stack, StackConfig


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A Kafka-protocol broker of this test's own (see real_parts: named, a container, or
    the embedded one, which logs beside the services: a failed test prints it too)."""
    (tmp_path / "logs").mkdir(exist_ok=True)
    with broker_for_a_test(tmp_path / "logs" / "tansu.log") as running:
        yield running


@pytest.fixture
def mail_sink() -> Iterator[MailSink]:
    with MailSink(free_port()) as sink:
        yield sink


StackFactory = Callable[..., Stack]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keeps each phase's report on the test, so a fixture can tell that the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def make_stack(
    broker: Broker, mail_sink: MailSink, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StackFactory]:
    """Builds stacks on this test's broker and mail sink; stops them all at the end and
    drops the PostgreSQL schemas they made. A failed test prints its services' logs."""
    stacks: list[Stack] = []
    schemas: list[tuple[str, str]] = []

    def make(database_url: str = "", **overrides: Any) -> Stack:
        prefix = f"t{uuid.uuid4().hex[:8]}_"
        config = StackConfig(
            bootstrap=broker.bootstrap,
            data_dir=tmp_path,
            database_url=database_url,
            smtp_port=mail_sink.port,
            gateway_port=free_port(),
            schema_prefix=prefix,
            **overrides,
        )
        if database_url:
            schemas.extend((database_url, f"{prefix}{s.replace('-', '_')}") for s in SERVICES)
        stack = Stack(config)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for stack in {stack.config.data_dir: stack for stack in stacks}.values():
            print(stack.log_digest())  # shown under "Captured stdout teardown"
    for url, schema in schemas:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def metric_value(port: int, name: str, **labels: str) -> float:
    """A sample's value from a service's /metrics (0 when absent)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
