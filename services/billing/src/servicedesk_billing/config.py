from servicedesk_runtime.settings import ServiceSettings


class BillingSettings(ServiceSettings):
    http_port: int = 9104
