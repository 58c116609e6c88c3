"""Starts and stops the services as separate processes, as production runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from servicedesk_runtime.tansu import EmbeddedBroker, free_port
from servicedesk_stack.demo import DEMO_TOKENS

SERVICES = ("intake", "triage", "sla-timer", "billing", "notifier", "gateway")


def module_of(service: str) -> str:
    return f"servicedesk_{service.replace('-', '_')}"


@dataclass
class StackConfig:
    bootstrap: str
    data_dir: Path
    database_url: str = ""
    """Empty: a SQLite file per service in data_dir; else a PostgreSQL URL, one schema per
    service."""
    smtp_port: int = 8025
    """Where the notifier sends mail (the embedded run's catcher)."""
    mail_port: int | None = None
    """The desk's own SMTP listener (intake); None: none (tests that need no mail in)."""
    mail_from: str = "servicedesk@example.com"
    gateway_port: int = 8080
    gateway_tokens: str = DEMO_TOKENS
    people_file: Path | None = None
    """The gateway's people file (hashed tokens); None: only `gateway_tokens`."""
    alert_email: str = "oncall@example.com"
    schema_prefix: str = ""
    session_timeout_ms: int = 3000
    extra_env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def port_of(self, service: str) -> int:
        if service == "gateway":
            return self.gateway_port
        if service not in self.ports:
            self.ports[service] = free_port()
        return self.ports[service]

    def database_for(self, service: str) -> str:
        schema = f"{self.schema_prefix}{service.replace('-', '_')}"
        if not self.database_url:
            return f"sqlite:///{self.data_dir / 'data' / f'{schema}.db'}"
        separator = "&" if "?" in self.database_url else "?"
        return f"{self.database_url}{separator}schema={schema}"

    def env_for(self, service: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port_of(service)),
            "KAFKA_SESSION_TIMEOUT_MS": str(self.session_timeout_ms),
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp_port),
            "ALERT_EMAIL": self.alert_email,
            "MAIL_FROM": self.mail_from,
            "BLOB_DIR": str(self.data_dir / "data" / "blobs"),
            **(
                {"MAIL_PORT": str(self.mail_port)} if self.mail_port and service == "intake" else {}
            ),
            "GATEWAY_TOKENS": self.gateway_tokens,
            **({"GATEWAY_PEOPLE_FILE": str(self.people_file)} if self.people_file else {}),
            # Every service stores events, the gateway too (the commands it accepted).
            "DATABASE_URL": self.database_for(service),
            **self.extra_env,
        }


class Stack:
    """The six services as child processes."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        (config.data_dir / "logs").mkdir(parents=True, exist_ok=True)

    def start(self, services: tuple[str, ...] = SERVICES) -> None:
        for service in services:
            self.start_service(service)

    def log_path(self, service: str) -> Path:
        return self.config.data_dir / "logs" / f"{service}.log"

    def start_service(self, service: str) -> None:
        log = open(self.log_path(service), "ab")  # noqa: SIM115
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", module_of(service)],
            env=self.config.env_for(service),
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: Ctrl-C reaches the stack, which stops the services
            # in order (and the broker last), not everything at once.
            start_new_session=True,
        )

    def log_digest(self, lines: int = 60) -> str:
        """The last `lines` of each service's log, the published-event lines left out (they
        are most of a log and say least): what a failed test prints, so a failure on a
        machine nobody can log in to (CI) still shows what the services did."""
        parts = []
        for path in sorted((self.config.data_dir / "logs").glob("*.log")):
            kept = [
                line
                for line in path.read_text(errors="replace").splitlines()
                if '"event_published"' not in line and '"level": "debug"' not in line
            ]
            parts.append(f"----- {path.name}: last {lines} of {len(kept)} lines -----")
            parts.extend(line[:400] for line in kept[-lines:])
        return "\n".join(parts)

    def kill(self, service: str) -> None:
        """Kills a service without letting it clean up (a crash)."""
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop_service(self, service: str, timeout: float = 15) -> None:
        process = self.processes.pop(service, None)
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        for service in list(self.processes):
            self.stop_service(service)

    def health_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.config.port_of(service)}/health"

    def wait_ready(self, services: tuple[str, ...] = SERVICES, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        pending = list(services)
        while pending:
            service = pending[0]
            process = self.processes.get(service)
            if process is not None and process.poll() is not None:
                log = self.config.data_dir / "logs" / f"{service}.log"
                raise RuntimeError(
                    f"{service} exited with {process.returncode} ({last_words(log)}); see {log}"
                )
            try:
                if httpx.get(self.health_url(service), timeout=1).status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service} not ready after {timeout}s")
            time.sleep(0.2)


class Supervisor:
    """Restarts a service of the stack that exits while it should be running (a crash, a
    lost database, a replaced broker: services exit to recover), so one failure never
    stops the rest. One that keeps dying waits longer each time, up to `longest` seconds;
    one that stayed up for a minute starts from the shortest pause again."""

    def __init__(self, stack: Stack, shortest: float = 0.5, longest: float = 30) -> None:
        self.stack = stack
        self.shortest = shortest
        self.longest = longest
        self.restarts: dict[str, int] = {}
        self.pauses: dict[str, float] = {}
        """How long a service waits before its next restart."""
        self._due: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def check(self) -> list[str]:
        """Restarts what has exited and waited its pause; returns the services restarted."""
        now = time.monotonic()
        restarted = []
        for service, process in list(self.stack.processes.items()):
            if process.poll() is None:
                if now - self._started.get(service, now) > 60:
                    self.pauses.pop(service, None)
                continue
            if service not in self._due:
                pause = self.pauses.get(service, self.shortest)
                self._due[service] = now + pause
                self.pauses[service] = min(pause * 2, self.longest)
                print(
                    f"servicedesk: {service} exited with {process.returncode}; restarting in "
                    f"{pause:.1f}s (log: {self.stack.log_path(service)})",
                    file=sys.stderr,
                    flush=True,
                )
            if now >= self._due[service]:
                del self._due[service]
                self.stack.start_service(service)
                self._started[service] = now
                self.restarts[service] = self.restarts.get(service, 0) + 1
                restarted.append(service)
        return restarted


def embedded_broker(port: int, data_dir: Path) -> EmbeddedBroker:
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    return EmbeddedBroker(port=port, log_path=data_dir / "logs" / "tansu.log")


def last_words(log: Path, count: int = 3) -> str:
    """The last lines a service wrote before it exited: after a crash, the end of what it
    died of. A failure on CI then names its cause where only a one-line summary is read."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError as error:
        return f"no log: {error.strerror}"
    return " | ".join(line.strip()[:200] for line in lines[-count:]) or "its log is empty"
