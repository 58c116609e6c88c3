"""Settings every service reads from its environment (pydantic-settings)."""

from __future__ import annotations

import sys
from typing import Self, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicedesk_runtime.consumer import FetchPacing


class ServiceSettings(BaseSettings):
    """Environment variables common to all services (documented in the README's table)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    database_url: str = Field(
        default="",
        description="sqlite:///path/file.db or postgresql://user:pw@host:port/db[?schema=x]; "
        "empty: var/data/<service>.db",
    )
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    http_host: str = "127.0.0.1"
    http_port: int = 0
    log_level: str = "INFO"
    kafka_session_timeout_ms: int = 6000
    kafka_fetch_wait_ms: int = Field(
        default=FetchPacing.busy_ms,
        ge=1,
        le=60_000,
        description="How long a consumer's fetch may wait at the broker while messages "
        "flow: on Tansu, latency at each hop (10 for the least, at more CPU); on Kafka, "
        "which answers as soon as data arrives, it can be 500",
    )
    kafka_idle_fetch_wait_ms: int = Field(
        default=FetchPacing.idle_ms,
        ge=1,
        le=60_000,
        description="The same once a consumer has read nothing for 10 s",
    )
    consumer_batch_max: int = Field(default=500, ge=1)
    relay_batch_max: int = Field(default=500, ge=1)
    poll_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="The fallback: relays learn of new events when they are committed",
    )
    blob_dir: str = Field(
        default="var/data/blobs",
        description="The content-addressed blob store (raw mail, attachments), shared by "
        "intake (writes) and the gateway (reads)",
    )

    @model_validator(mode="after")
    def _idle_waits_at_least_as_long(self) -> Self:
        if self.kafka_idle_fetch_wait_ms < self.kafka_fetch_wait_ms:
            raise ValueError(
                f"KAFKA_IDLE_FETCH_WAIT_MS ({self.kafka_idle_fetch_wait_ms}) is shorter than "
                f"KAFKA_FETCH_WAIT_MS ({self.kafka_fetch_wait_ms}): an idle consumer would "
                "ask the broker more often than a busy one"
            )
        return self

    def fetch_pacing(self) -> FetchPacing:
        return FetchPacing(busy_ms=self.kafka_fetch_wait_ms, idle_ms=self.kafka_idle_fetch_wait_ms)

    def database_url_for(self, service: str) -> str:
        return self.database_url or f"sqlite:///var/data/{service}.db"


S = TypeVar("S", bound=BaseSettings)


def from_environment(kind: type[S], service: str) -> S:
    """The service's settings from its environment. A bad one ends the process (exit 2)
    with a line per variable naming it, its value and what is wrong: an operator reads
    that, not a traceback."""
    try:
        return kind()
    except ValidationError as invalid:
        for error in invalid.errors():
            print(f"{service}: {_what(error)}", file=sys.stderr)
        raise SystemExit(2) from None


def _what(error: ErrorDetails) -> str:
    names = [str(part) for part in error["loc"]]
    if not names:  # a rule across variables: its message names them
        return error["msg"].removeprefix("Value error, ")
    return f"{'_'.join(names).upper()}={error['input']!r}: {error['msg']}"
