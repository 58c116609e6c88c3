from servicedesk_runtime.settings import ServiceSettings


class TriageSettings(ServiceSettings):
    http_port: int = 9102
