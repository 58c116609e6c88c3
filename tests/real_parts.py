"""Which real Kafka-protocol broker and PostgreSQL the tests use, chosen once per run:

1. one named by an environment variable: SERVICEDESK_TEST_KAFKA (host:port) and
   SERVICEDESK_TEST_DATABASE_URL;
2. else, where a Docker engine answers, testcontainers: Kafka in KRaft mode with a random
   cluster id per test (the services' broker-incarnation check sees a new broker), and one
   PostgreSQL for the run;
3. else the embedded Tansu broker (a new one per test) and the local PostgreSQL.

A named broker is shared by the tests, so every servicedesk topic is deleted and created
empty before each test: no test reads another's events. Tests that restart or replace the
broker need the embedded one and skip otherwise (`require_embedded`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from servicedesk_contracts import topics
from servicedesk_runtime.kafka import connect_admin, ensure_topics
from servicedesk_runtime.tansu import EmbeddedBroker

KAFKA_VARIABLE = "SERVICEDESK_TEST_KAFKA"
DATABASE_VARIABLE = "SERVICEDESK_TEST_DATABASE_URL"
LOCAL_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
POSTGRES_IMAGE = "postgres:15"


class Broker(Protocol):
    @property
    def bootstrap(self) -> str: ...


@dataclass(frozen=True)
class NamedBroker:
    bootstrap: str


def docker_answers() -> bool:
    """Whether a Docker engine answers on DOCKER_HOST (or the default socket)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return True  # a TCP engine: testcontainers says so itself if it does not answer
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(1)
        try:
            probe.connect(host.removeprefix("unix://"))
        except OSError:
            return False
    return True


def kafka_choice() -> str:
    if os.environ.get(KAFKA_VARIABLE):
        return "named"
    return "testcontainers" if docker_answers() else "embedded"


def database_choice() -> str:
    if os.environ.get(DATABASE_VARIABLE):
        return "named"
    return "testcontainers" if docker_answers() else "local"


def describe() -> str:
    """The line the run prints at its start."""
    kafka = {
        "named": f"the broker at {os.environ.get(KAFKA_VARIABLE)} ({KAFKA_VARIABLE}), topics "
        "emptied before each test",
        "testcontainers": f"{KAFKA_IMAGE} in KRaft mode by testcontainers, one per test",
        "embedded": "the embedded Tansu broker, one per test",
    }[kafka_choice()]
    database = {
        "named": f"{os.environ.get(DATABASE_VARIABLE)} ({DATABASE_VARIABLE})",
        "testcontainers": f"{POSTGRES_IMAGE} by testcontainers, one for the run",
        "local": LOCAL_DATABASE,
    }[database_choice()]
    return f"real parts: Kafka = {kafka}; PostgreSQL = {database}"


@contextmanager
def broker_for_a_test(log_path: Path | None = None) -> Iterator[Broker]:
    """The broker a test uses; the embedded one logs to `log_path` when given."""
    choice = kafka_choice()
    if choice == "named":
        named = NamedBroker(os.environ[KAFKA_VARIABLE])
        asyncio.run(_empty_topics(named.bootstrap))
        yield named
    elif choice == "testcontainers":
        with _kafka_container() as bootstrap:
            yield NamedBroker(bootstrap)
    else:
        with EmbeddedBroker(log_path=log_path) as embedded:
            yield embedded


def require_embedded(broker: Broker) -> EmbeddedBroker:
    """The embedded broker, for a test that restarts or replaces it; skips otherwise."""
    if not isinstance(broker, EmbeddedBroker):
        pytest.skip("restarts the broker: needs the embedded one (unset SERVICEDESK_TEST_KAFKA)")
    return broker


async def _empty_topics(bootstrap: str) -> None:
    admin = await connect_admin(bootstrap)
    try:
        existing = set(await admin.list_topics())
        doomed = [name for name in topics.ALL if name in existing]
        if doomed:
            await admin.delete_topics(doomed)
        # Kafka deletes a topic in the background: create them again once they are gone.
        async with asyncio.timeout(60):
            while set(doomed) & set(await admin.list_topics()):  # noqa: ASYNC110  (the broker)
                await asyncio.sleep(0.2)
    finally:
        await admin.close()
    await ensure_topics(bootstrap)


@contextmanager
def _kafka_container() -> Iterator[str]:
    from testcontainers.community.kafka import KafkaContainer

    # A cluster id of 16 random bytes, base64url without padding, as Kafka's tools make it.
    cluster_id = _random_cluster_id()
    with KafkaContainer(KAFKA_IMAGE).with_kraft().with_cluster_id(cluster_id) as kafka:
        yield kafka.get_bootstrap_server()


def _random_cluster_id() -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@contextmanager
def database_for_the_run() -> Iterator[str]:
    choice = database_choice()
    if choice == "named":
        yield os.environ[DATABASE_VARIABLE]
    elif choice == "testcontainers":
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, driver=None) as postgres:
            yield postgres.get_connection_url()
    else:
        yield LOCAL_DATABASE
