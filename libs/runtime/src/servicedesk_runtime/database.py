"""One database URL, two uses: the eventsourcing event store, and the few plain tables a
service keeps beside it (outbox positions, the SLA due-time index).

The same code runs on a SQLite file (the embedded default) and on PostgreSQL, where each
service lives in its own schema (`?schema=` in the URL, or the service's name).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlparse

import psycopg
from psycopg_pool import ConnectionPool


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...
    def fetchone(self) -> tuple[Any, ...] | None: ...

    @property
    def rowcount(self) -> int: ...


# A table of snapshots next to the events (`<service>_snapshots`): aggregates that grow for
# as long as a service runs are loaded from their latest one (servicedesk_runtime.snapshots
# takes them; nothing is snapshotted unless asked). It costs a lookup in that table when
# an aggregate is read whole, which the aggregate cache keeps rare.
_SNAPSHOTS = {"IS_SNAPSHOTTING_ENABLED": "y"}


@dataclass(frozen=True)
class DatabaseUrl:
    kind: str  # "sqlite" or "postgres"
    sqlite_path: str = ""
    host: str = ""
    port: int = 5432
    dbname: str = ""
    user: str = ""
    password: str = ""
    schema: str = ""

    @classmethod
    def parse(cls, url: str, service: str) -> DatabaseUrl:
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            path = unquote(parsed.path)
            # sqlite:///relative/path.db -> "relative/path.db"; sqlite:////abs -> "/abs"
            path = path[1:] if path.startswith("/") else path
            if not path:
                raise ValueError(f"DATABASE_URL {url!r} names no SQLite file")
            return cls(kind="sqlite", sqlite_path=path)
        if parsed.scheme in ("postgres", "postgresql"):
            query = parse_qs(parsed.query)
            return cls(
                kind="postgres",
                host=parsed.hostname or "127.0.0.1",
                port=parsed.port or 5432,
                dbname=(parsed.path or "/").lstrip("/") or "postgres",
                user=unquote(parsed.username or "postgres"),
                password=unquote(parsed.password or ""),
                schema=query.get("schema", [service.replace("-", "_")])[0],
            )
        raise ValueError(
            f"DATABASE_URL {url!r}: scheme must be sqlite:// or postgresql://, "
            f"not {parsed.scheme!r}"
        )

    def conninfo(self) -> str | None:
        """A psycopg connection string (PostgreSQL), None for SQLite."""
        if self.kind != "postgres":
            return None
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=self.user,
            password=self.password or None,
        )

    def eventsourcing_env(self) -> dict[str, str]:
        """Environment for an eventsourcing Application storing in this database."""
        if self.kind == "sqlite":
            return {
                **_SNAPSHOTS,
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.sqlite_path,
                "SQLITE_LOCK_TIMEOUT": "30",
                # Records several positions in one transaction (recorders.py).
                "PROCESS_RECORDER_TOPIC": (
                    "servicedesk_runtime.recorders:PositionsSQLiteProcessRecorder"
                ),
            }
        return {
            **_SNAPSHOTS,
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SCHEMA": self.schema,
            "POSTGRES_POOL_SIZE": "4",
            "POSTGRES_MAX_OVERFLOW": "4",
            "POSTGRES_CONNECT_TIMEOUT": "10",
            # Inserts a batch's events as binary column arrays (recorders.py says why), and
            # records several positions in one transaction.
            "PROCESS_RECORDER_TOPIC": (
                "servicedesk_runtime.recorders:ColumnarPostgresProcessRecorder"
            ),
        }


class Database:
    """Plain-SQL access for a service's own small tables. SQL is written with `?`
    placeholders and runs unchanged on both engines."""

    def __init__(self, url: DatabaseUrl) -> None:
        self.url = url
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] | None = None
        self._lock = threading.Lock()
        if url.kind == "sqlite":
            Path(url.sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        else:
            self._pool = ConnectionPool(
                conninfo=url.conninfo() or "",
                min_size=1,
                max_size=4,
                open=True,
            )
            with self.transaction() as cursor:
                cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{url.schema}"')

    @property
    def is_postgres(self) -> bool:
        return self.url.kind == "postgres"

    def table(self, name: str) -> str:
        """A table name qualified with the service's schema on PostgreSQL."""
        return f'"{self.url.schema}".{name}' if self.is_postgres else name

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A cursor inside one transaction: committed on success, rolled back on error."""
        opened = self.begin()
        try:
            yield opened.cursor
        except BaseException:
            opened.rollback()
            raise
        opened.commit()

    @contextmanager
    def reading(self) -> Iterator[Cursor]:
        """A cursor for reads only. On SQLite it takes no write lock, so a query does not
        wait for a batch being applied (WAL: it sees the last committed state)."""
        opened = self.begin(write=False)
        try:
            yield opened.cursor
        finally:
            opened.rollback()

    def begin(self, write: bool = True) -> OpenTransaction:
        """A transaction left open for the caller to commit or roll back (once), possibly
        from another thread: a projection applies a batch in one worker thread and commits
        it from the next. On SQLite a writing transaction holds the file's write lock from
        here on (`BEGIN IMMEDIATE`): end it soon."""
        if self._pool is not None:
            connection = self._pool.getconn()
            return OpenTransaction(
                _PsycopgCursor(connection.cursor()),
                finish=lambda commit: self._finish_psycopg(connection, commit),
            )
        lite = sqlite3.connect(
            self.url.sqlite_path, timeout=30, isolation_level=None, check_same_thread=False
        )
        try:
            lite.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
            lite.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except BaseException:
            lite.close()
            raise
        return OpenTransaction(lite.cursor(), finish=lambda commit: _finish_sqlite(lite, commit))

    def _finish_psycopg(self, connection: psycopg.Connection[Any], commit: bool) -> None:
        assert self._pool is not None
        try:
            if commit:
                connection.commit()
            else:
                connection.rollback()
        finally:
            self._pool.putconn(connection)  # the pool checks and discards a broken one

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


class OpenTransaction:
    """One open transaction: `cursor` to work, then `commit()` or `rollback()` once."""

    def __init__(self, cursor: Cursor, finish: Callable[[bool], None]) -> None:
        self.cursor = cursor
        self._finish: Callable[[bool], None] | None = finish

    def commit(self) -> None:
        self._end(commit=True)

    def rollback(self) -> None:
        """Ends the transaction without its changes; safe to call after it ended."""
        if self._finish is not None:
            self._end(commit=False)

    def _end(self, commit: bool) -> None:
        if self._finish is None:
            raise RuntimeError("this transaction has ended already")
        finish, self._finish = self._finish, None
        finish(commit)


def _finish_sqlite(lite: sqlite3.Connection, commit: bool) -> None:
    try:
        lite.execute("COMMIT" if commit else "ROLLBACK")
    finally:
        lite.close()


class _PsycopgCursor:
    """Adapts `?` placeholders to psycopg's `%s`."""

    def __init__(self, cursor: psycopg.Cursor[tuple[Any, ...]]) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        return self._cursor.executemany(sql.replace("?", "%s"), rows)  # type: ignore[arg-type]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount
