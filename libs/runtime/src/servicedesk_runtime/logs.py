"""Structured (JSON) logs, one line per event, on stderr."""

from __future__ import annotations

import logging
import sys

import structlog

from servicedesk_contracts import Message


def configure_logging(service: str, level: str = "INFO") -> None:
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Libraries log through the standard library: render their records as JSON too.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    for noisy in ("aiokafka", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def message_fields(message: Message) -> dict[str, str | None]:
    """What a log line says of a message: its type, ids and subject (for a ticket's
    messages, the ticket id), so one grep follows a ticket or a correlation id through
    every service."""
    return {
        "event_type": message.event_type,
        "event_id": str(message.event_id),
        "subject_id": str(message.subject_id),
        "correlation_id": None if message.correlation_id is None else str(message.correlation_id),
        "causation_id": None if message.causation_id is None else str(message.causation_id),
    }


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
