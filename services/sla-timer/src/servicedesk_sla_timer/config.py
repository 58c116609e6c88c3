from pydantic import Field

from servicedesk_runtime.settings import ServiceSettings


class SlaTimerSettings(ServiceSettings):
    http_port: int = 9103
    timer_interval_seconds: float = Field(default=0.25, gt=0)
    """How often due timers are looked for: the most a breach fires late, beyond load."""
