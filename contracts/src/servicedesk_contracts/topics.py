"""Topic names: the one place they are spelled."""

from typing import Final

INBOUND: Final = "servicedesk.inbound.v1"
"""Requests from outside (other systems, e-mail bridge) and the gateway's ticket commands."""
BILLING_COMMANDS: Final = "servicedesk.billing-commands.v1"
"""Commands to billing: register an agreement, issue a statement."""
TICKETS: Final = "servicedesk.tickets.v1"
TRIAGE: Final = "servicedesk.triage.v1"
SLA: Final = "servicedesk.sla.v1"
AGREEMENTS: Final = "servicedesk.agreements.v1"
BILLING: Final = "servicedesk.billing.v1"
NOTIFICATIONS: Final = "servicedesk.notifications.v1"
DEAD_LETTER: Final = "servicedesk.dead-letter.v1"
NOTIFIER_COMMANDS: Final = "servicedesk.notifier-commands.v1"
"""Commands to the notifier: resend a delivery that failed."""
DEAD_LETTER_REPLAYS: Final = "servicedesk.dead-letter-replays.v1"
"""Which dead letters operators sent back to their source topic (`DeadLetterReplayed`)."""
COMMAND_OUTCOMES: Final = "servicedesk.command-outcomes.v1"
"""Each command's outcome (`CommandDecided`), from the service that decided it."""

ALL: Final = (
    INBOUND,
    BILLING_COMMANDS,
    TICKETS,
    TRIAGE,
    SLA,
    AGREEMENTS,
    BILLING,
    NOTIFICATIONS,
    DEAD_LETTER,
    COMMAND_OUTCOMES,
    NOTIFIER_COMMANDS,
    DEAD_LETTER_REPLAYS,
)
COMMANDS: Final = (INBOUND, BILLING_COMMANDS, NOTIFIER_COMMANDS)
"""Topics whose messages are addressed to one service: a type it does not handle there is a
mistake of the sender and is dead-lettered. On event topics a consumer reads past the types
it does not use (a newer producer may add types at any time)."""
PARTITIONS: Final = 4
