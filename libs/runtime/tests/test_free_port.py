"""Ports handed to servers in tests and `make up` must still be free when the server binds
them: they come from below the range Linux gives outgoing connections, never twice, and
never one that something listens on."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from servicedesk_runtime import tansu
from servicedesk_runtime.tansu import free_port


def test_ports_come_from_below_the_range_outgoing_connections_take() -> None:
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    lowest_outgoing = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 32768
    ports = [free_port() for _ in range(200)]
    assert max(ports) < lowest_outgoing
    assert len(set(ports)) == len(ports), "a port was handed out twice"


def test_a_port_something_listens_on_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        free = busy + 1 if busy < 65535 else busy - 1
        monkeypatch.setattr(tansu, "FREE_PORTS", range(min(busy, free), max(busy, free) + 1))
        monkeypatch.setattr(tansu, "_handed_out", set())
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", free))
            except OSError:
                pytest.skip(f"port {free} is busy too")
        assert free_port() == free
        with pytest.raises(RuntimeError, match="no free port between"):
            free_port()
