from pathlib import Path

from pydantic import Field, field_validator

from servicedesk_runtime.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    http_port: int = 8080
    gateway_tokens: str = Field(
        default="",
        description="Plaintext tokens (demos, development): comma-separated "
        "token:role[:name[:group+group]] for agent and admin, "
        "token:customer:name:organisation[:agreement_id[:billing]] for a customer.",
    )
    gateway_people_file: Path | None = Field(
        default=None,
        description="TOML file of people with hashed tokens ([[person]] tables), re-read "
        "when it changes; see `python -m servicedesk_gateway.people new-token --help`.",
    )
    gateway_people_recheck_seconds: float = Field(
        default=1.0, ge=0, description="How often the people file is looked at for changes."
    )
    gateway_max_body_bytes: int = Field(
        default=1 << 20, ge=0, description="Larger request bodies are refused with 413."
    )

    @field_validator("gateway_people_file", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value
