from servicedesk_runtime.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    http_port: int = 9105
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    mail_from: str = "servicedesk@example.com"
    alert_email: str = "oncall@example.com"
    """Who is told when an SLA target is breached."""
