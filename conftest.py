"""Fixtures every test tier shares."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

# `tests.real_parts` (which PostgreSQL and broker a run uses) must import when only a
# service's tests are collected (`pytest services/intake`), not only from the repository root.
ROOT = str(Path(__file__).parent)
if ROOT not in sys.path:
    sys.path.append(ROOT)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """PostgreSQL for the tests (tests/real_parts.py chooses which). In CI (CI=true) a
    missing database fails the run."""
    from tests.real_parts import database_for_the_run

    with database_for_the_run() as url:
        try:
            with psycopg.connect(url, connect_timeout=5) as connection:
                connection.execute("SELECT 1")
        except psycopg.OperationalError as error:
            if os.environ.get("CI"):
                pytest.fail(f"PostgreSQL is required in CI and unreachable at {url}: {error}")
            pytest.skip(f"no PostgreSQL at {url}")
        yield url


@pytest.fixture(scope="session")
def real_command() -> Callable[[str, str], str]:
    """`real_command(name, debian_package)`: the path of a command a real-parts test runs.
    Without it the test is skipped on a developer's machine and fails in CI (CI=true), where
    `.ci/run` installs the package."""

    def find(name: str, package: str) -> str:
        path = shutil.which(name)
        if path is None:
            what = f"{name} (Debian: apt-get install {package})"
            if os.environ.get("CI"):
                pytest.fail(f"{what} is required in CI")
            pytest.skip(f"needs {what}")
        return path

    return find


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each engine a service runs on: a SQLite file (the
    embedded run) and a PostgreSQL schema of its own (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    schema = f"t{uuid.uuid4().hex[:12]}"
    yield f"{base}?schema={schema}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pytest_report_header() -> list[str]:
    """Which real parts this run uses, said once at its start."""
    from tests.real_parts import describe

    return [
        describe(),
        "tools: "
        + ", ".join(
            f"{name} {'found' if shutil.which(name) else 'missing'}"
            for name in ("chromium", "chromedriver", "prometheus", "promtool", "node", "npm")
        ),
    ]
