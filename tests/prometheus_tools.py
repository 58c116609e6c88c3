"""A real Prometheus (Debian's) scraping a running stack, for the tests of what operators
see: it loads the project's alert rules and answers PromQL over its HTTP API."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from servicedesk_runtime.tansu import free_port
from servicedesk_stack.stack import SERVICES, Stack
from servicedesk_stack.waiting import wait_for

RULES = Path(__file__).resolve().parents[1] / "infra" / "prometheus" / "alerts.yml"


class Prometheus:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def _data(self, path: str, params: dict[str, Any]) -> Any:
        response = self.http.get(path, params=params)
        body = response.json()
        assert body.get("status") == "success", f"{params}: {body}"
        return body["data"]

    def instant(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """The result vector of `expr` (at `at`, Unix seconds, or now)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self._data("/api/v1/query", params)
        assert data["resultType"] in ("vector", "scalar"), data
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def over_time(self, expr: str, start: float, end: float, step: str) -> list[dict[str, Any]]:
        """The result matrix of `expr` from `start` to `end`."""
        params = {"query": expr, "start": start, "end": end, "step": step}
        data = self._data("/api/v1/query_range", params)
        return list(data["result"])

    def firing(self) -> set[tuple[str, frozenset[tuple[str, str]]]]:
        """Firing alerts: (name, labels other than the rule's severity)."""
        alerts = self._data("/api/v1/alerts", {})["alerts"]
        return {
            (
                alert["labels"]["alertname"],
                frozenset(
                    (k, v) for k, v in alert["labels"].items() if k not in ("alertname", "severity")
                ),
            )
            for alert in alerts
            if alert["state"] == "firing"
        }


@contextmanager
def scraping(stack: Stack, folder: Path, prometheus: str) -> Iterator[Prometheus]:
    """Prometheus scraping every service of `stack` each second, with the alert rules."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": service,
                "static_configs": [{"targets": [f"127.0.0.1:{stack.config.port_of(service)}"]}],
            }
            for service in SERVICES
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client = Prometheus(f"http://127.0.0.1:{port}")

        def ready() -> bool:
            try:
                return client.http.get("/-/ready").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, "Prometheus to start")
        yield client
    finally:
        process.terminate()
        process.wait(30)
        log.close()
