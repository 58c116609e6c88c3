"""Why a message can be refused (the `error_reason` of its dead letter).

The runtime's own reasons are a closed set: the message could not be read, no handler
takes its type, its handler crashed, or the store would not take what it produced. Such a
message is not decided: the same event_id, fixed, is applied when it comes again. Every
other reason is a service's domain refusal (`Rejected`, e.g. `future_timestamp`): the
message was read and decided, its event_id is recorded as applied, and the same event_id
again is skipped as a duplicate.
"""

from __future__ import annotations

RUNTIME_REFUSALS = (
    "empty",
    "invalid_json",
    "too_large",
    "validation_failed",
    "unknown_type",
    "handler_error",
    "conflict",
    "store_refused",
)


def decided_when_refused(reason: str) -> bool:
    """Whether a message refused for `reason` had its event_id recorded as applied."""
    return reason not in RUNTIME_REFUSALS
