from pydantic import Field

from servicedesk_runtime.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    http_port: int = 8080
    gateway_tokens: str = Field(
        default="",
        description="Comma-separated token:role[:name] entries; role is agent or admin.",
    )
    gateway_max_body_bytes: int = Field(
        default=1 << 20, ge=0, description="Larger request bodies are refused with 413."
    )
