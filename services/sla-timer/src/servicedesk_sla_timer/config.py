from pydantic import Field

from servicedesk_runtime.settings import ServiceSettings


class SlaTimerSettings(ServiceSettings):
    http_port: int = 9103
    timer_interval_seconds: float = Field(default=2.0, gt=0)
    """The longest the timer loop sleeps: it wakes when a timer falls due and when clocks
    are stored; this bounds how late it notices clocks another replica stored."""
