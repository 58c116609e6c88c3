"""Intake's settings: the common ones; intake needs nothing of its own yet."""

from servicedesk_runtime.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    http_port: int = 9101
