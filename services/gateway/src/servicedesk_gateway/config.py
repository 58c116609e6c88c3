from pydantic import Field

from servicedesk_runtime.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    http_port: int = 8080
    gateway_tokens: str = Field(
        default="",
        description="Comma-separated token:role[:name] entries; role is agent or admin.",
    )
