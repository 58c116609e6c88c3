"""People and their tokens: the `GATEWAY_TOKENS` table and the people file, asked together.

`python -m servicedesk_gateway.people new-token ...` makes a token for the people file."""

from __future__ import annotations

from servicedesk_gateway.auth import Directory, People, parse_tokens
from servicedesk_gateway.config import GatewaySettings
from servicedesk_gateway.people.file import PeopleFile, PeopleFileError, parse_people
from servicedesk_gateway.people.tokens import new_token, toml_entry

__all__ = [
    "PeopleFile",
    "PeopleFileError",
    "load_people",
    "new_token",
    "parse_people",
    "toml_entry",
]


def load_people(settings: GatewaySettings) -> Directory:
    """Everyone the settings name: `GATEWAY_TOKENS` first, then `GATEWAY_PEOPLE_FILE`.
    Raises ValueError (PeopleFileError for the file) naming the entry, line and field."""
    sources: list[People] = []
    table = parse_tokens(settings.gateway_tokens)
    if table:
        sources.append(table)
    if settings.gateway_people_file is not None:
        sources.append(
            PeopleFile(
                settings.gateway_people_file,
                recheck_seconds=settings.gateway_people_recheck_seconds,
            )
        )
    return Directory(*sources)
