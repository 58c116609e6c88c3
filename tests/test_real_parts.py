"""How the tests choose their broker and database (tests/real_parts.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.kafka_tools import publish_raw, read_topic
from tests.real_parts import (
    NamedBroker,
    broker_for_a_test,
    database_choice,
    describe,
    kafka_choice,
)

from servicedesk_contracts import topics
from servicedesk_runtime.kafka import ensure_topics
from servicedesk_runtime.tansu import EmbeddedBroker


def test_a_named_broker_or_database_wins_else_docker_else_the_local_parts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-docker.sock'}")
    monkeypatch.delenv("SERVICEDESK_TEST_KAFKA", raising=False)
    monkeypatch.delenv("SERVICEDESK_TEST_DATABASE_URL", raising=False)
    assert (kafka_choice(), database_choice()) == ("embedded", "local")
    assert "embedded Tansu broker" in describe()

    monkeypatch.setenv("SERVICEDESK_TEST_KAFKA", "kafka.example:9092")
    monkeypatch.setenv("SERVICEDESK_TEST_DATABASE_URL", "postgresql://db.example/test")
    assert (kafka_choice(), database_choice()) == ("named", "named")
    assert "kafka.example:9092" in describe()
    assert "postgresql://db.example/test" in describe()

    monkeypatch.delenv("SERVICEDESK_TEST_KAFKA")
    monkeypatch.setenv("DOCKER_HOST", "tcp://docker.example:2375")
    assert kafka_choice() == "testcontainers"
    assert "KRaft mode by testcontainers" in describe()


def test_a_named_broker_starts_each_test_with_empty_topics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with EmbeddedBroker() as shared:
        asyncio.run(ensure_topics(shared.bootstrap))
        publish_raw(shared.bootstrap, topics.INBOUND, [(b"k", b"left by an earlier test")])
        assert len(read_topic(shared.bootstrap, topics.INBOUND)) == 1
        monkeypatch.setenv("SERVICEDESK_TEST_KAFKA", shared.bootstrap)
        with broker_for_a_test() as broker:
            assert broker == NamedBroker(shared.bootstrap)
            assert read_topic(broker.bootstrap, topics.INBOUND) == []
            assert read_topic(broker.bootstrap, topics.DEAD_LETTER) == []  # there, and empty
