"""`make up`, the README's first command, as a user runs it: the embedded desk starts, says
where it is, registers the demo agreements, answers `servicedesk status`, and stops
cleanly on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from servicedesk_runtime.tansu import free_port
from servicedesk_stack.demo import DEMO_AGREEMENTS
from servicedesk_stack.operator.cli import app
from servicedesk_stack.stack import SERVICES
from servicedesk_stack.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_the_embedded_desk_starts_seeds_reports_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    gateway_port = free_port()
    command = [
        sys.executable, "-m", "servicedesk_stack", "--demo", "--data-dir", str(tmp_path),
        "--kafka-port", str(free_port()), "--smtp-port", str(free_port()),
        "--mail-port", str(free_port()), "--gateway-port", str(gateway_port),
    ]  # fmt: skip
    log = tmp_path / "up.log"
    output = log.open("w")
    desk = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True)

    def said() -> str:
        return log.read_text()

    try:
        wait_for(lambda: "servicedesk is up" in said() or desk.poll() is not None, 120, "up")
        assert desk.poll() is None, said()
        endpoints = json.loads((tmp_path / "endpoints.json").read_text())
        assert set(endpoints) == set(SERVICES)
        assert endpoints["gateway"] == f"http://127.0.0.1:{gateway_port}"

        def agreements() -> set[str]:
            answer = httpx.get(
                f"http://127.0.0.1:{gateway_port}/agreements",
                headers={"Authorization": "Bearer agent-token"},
                timeout=10,
            )
            return {a["agreement_id"] for a in answer.json()}

        demo = {str(agreement_id) for agreement_id in DEMO_AGREEMENTS}
        wait_for(lambda: demo <= agreements(), 60, "the demo agreements")
        status = CliRunner().invoke(app, ["status", "--data-dir", str(tmp_path)])
        assert status.exit_code == 0, status.output  # every service ready
    finally:
        desk.send_signal(signal.SIGINT)
        code = desk.wait(90)
        output.close()
    assert code == 0, said()
