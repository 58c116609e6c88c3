"""Settings every service reads from its environment (pydantic-settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    def database_url_for(self, service: str) -> str:
        return self.database_url or f"sqlite:///var/data/{service}.db"
