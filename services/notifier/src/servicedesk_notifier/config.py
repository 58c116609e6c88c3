from pydantic import Field

from servicedesk_runtime.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    http_port: int = 9105
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    mail_from: str = "servicedesk@example.com"
    alert_email: str = "oncall@example.com"
    """Who is told when an SLA target is breached."""
    smtp_retry_for_seconds: float = Field(default=900, gt=0)
    """How long one mail is tried while the server is away or busy; then it is failed
    (and can be resent from the gateway)."""
    smtp_retry_attempts: int | None = Field(default=None, ge=1)
    """A bound on the attempts as well; None: only the time bound."""
    smtp_retry_max_wait_seconds: float = Field(default=30, gt=0)
    """Longest wait between two attempts (the waits grow exponentially from 0.5 s)."""
