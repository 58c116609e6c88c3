"""An integrator in another language needs only the committed JSON Schema: a Node.js
script (kafkajs, from npm) reads `SubmitTicket.v1.json`, builds the message around a data
object and publishes it on the inbound topic, keyed by its id, without headers; the
ticket opens and the gateway shows it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from tests.conftest import StackFactory
from tests.desk import phone_call, running_desk
from tests.kafka_tools import read_topic

from servicedesk_contracts import topics
from servicedesk_contracts.messages import ticket_id_for_request
from servicedesk_contracts.schemas import SCHEMA_DIR
from servicedesk_runtime.tansu import EmbeddedBroker
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
AGENT = {"Authorization": "Bearer agent-token"}
SCRIPT = Path(__file__).parent / "foreign_producer" / "publish.cjs"


def unavailable(reason: str) -> NoReturn:
    """A missing tool skips the test on a developer's machine and fails it in CI."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_producer(
    tmp_path_factory: pytest.TempPathFactory, real_command: Callable[[str, str], str]
) -> list[str]:
    """The command that runs the script, with kafkajs installed beside it (once a session)."""
    node, npm = real_command("node", "nodejs"), real_command("npm", "npm")
    directory = tmp_path_factory.mktemp("node-producer")
    (directory / "package.json").write_text('{"private": true}\n')  # install here, not above
    try:
        installed = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "kafkajs@2"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        unavailable("npm install kafkajs@2 took over 300 s")
    if installed.returncode != 0:
        unavailable(f"npm install kafkajs@2 failed: {installed.stderr[-2000:]}")
    shutil.copy(SCRIPT, directory / SCRIPT.name)
    return [node, str(directory / SCRIPT.name)]


def publish_from_node(
    command: list[str], schema: Path, data: dict[str, Any], bootstrap: str, tmp_path: Path
) -> dict[str, Any]:
    """Runs the script; returns the message it says it sent."""
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    ran = subprocess.run(
        [*command, str(schema), str(data_file), bootstrap, topics.INBOUND],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, f"the Node.js producer failed:\n{ran.stderr}"
    sent: dict[str, Any] = json.loads(ran.stdout.strip().splitlines()[-1])
    return sent


def test_a_ticket_submitted_from_node_with_only_the_schema_opens(
    make_stack: StackFactory, broker: EmbeddedBroker, node_producer: list[str], tmp_path: Path
) -> None:
    _, gateway = running_desk(make_stack)
    schema_file = SCHEMA_DIR / "SubmitTicket.v1.json"
    schema = json.loads(schema_file.read_text())
    subject = f"Node says the backups fail ({uuid.uuid4().hex[:6]})"

    sent = publish_from_node(
        node_producer,
        schema_file,
        phone_call(channel="api", subject=subject),
        broker.bootstrap,
        tmp_path,
    )

    assert set(sent) == set(schema["required"])  # no field beyond what the schema requires
    (record,) = [r for r in read_topic(broker.bootstrap, topics.INBOUND) if r.json() == sent]
    assert record.key == sent["subject_id"].encode()
    assert record.headers == {}
    ticket_id = ticket_id_for_request(uuid.UUID(sent["event_id"]))

    def ticket() -> dict[str, Any] | None:
        answer = httpx.get(f"{gateway}/tickets/{ticket_id}", headers=AGENT)
        return answer.json() if answer.status_code == 200 else None

    try:
        view = wait_for(ticket, 60, "the ticket from Node.js at the gateway")
    except AssertionError as timed_out:
        dead = [r.json() for r in read_topic(broker.bootstrap, topics.DEAD_LETTER)]
        raise AssertionError(f"{timed_out}; dead letters: {dead}") from None
    assert view["subject"] == subject
    assert view["reference"].startswith("SD-")
    assert view["priority"] == "P1"  # Z Premium: impact high x urgency high
    assert view["received_at"] == view["sla"]["response"]["started_at"]
