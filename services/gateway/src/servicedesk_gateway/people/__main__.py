"""`python -m servicedesk_gateway.people new-token --name ... --role ...`

Makes a token for one person. The token is printed once, on stdout's first line; it is
never stored. Then, unless `--append FILE` adds it to the people file, the `[[person]]`
entry with the token's hash follows (after an empty line), to append to the people file.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from servicedesk_gateway.auth import ROLES
from servicedesk_gateway.people.file import PeopleFileError, parse_people
from servicedesk_gateway.people.tokens import new_token, toml_entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servicedesk_gateway.people")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new-token", help="a new token for a person", description=__doc__)
    new.add_argument("--name", required=True, help="the person, e.g. 'Ole Hansen'")
    new.add_argument("--role", required=True, choices=ROLES)
    new.add_argument("--group", action="append", default=[], help="an agent's group (repeat)")
    new.add_argument("--organisation", help="a customer's organisation (required for one)")
    new.add_argument("--agreement-id", type=uuid.UUID, help="bind a customer to one agreement")
    new.add_argument(
        "--billing-contact", action="store_true", help="a customer who may read statements"
    )
    new.add_argument("--email", help="where the person is told things (assigned tickets)")
    new.add_argument(
        "--append",
        type=Path,
        metavar="FILE",
        help="append the entry to this people file (made if missing); print only the token",
    )
    args = parser.parse_args(argv)
    made = new_token()
    entry = toml_entry(
        name=args.name,
        role=args.role,
        token_id=made.token_id,
        token_hash=made.token_hash,
        groups=tuple(args.group),
        organisation=args.organisation,
        agreement_id=args.agreement_id,
        billing_contact=args.billing_contact,
        email=args.email,
    )
    try:
        parse_people(entry, "the new entry")  # the file would accept it
        if args.append is not None:
            _append(args.append, entry)
    except (PeopleFileError, OSError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(made.token)
    if args.append is None:
        print(f"\n# {args.name}: append to the people file (GATEWAY_PEOPLE_FILE)\n{entry}", end="")
    else:
        print(f"{args.name} added to {args.append}", file=sys.stderr)
    return 0


def _append(path: Path, entry: str) -> None:
    """Appends only if the file with the entry is still a valid people file."""
    existing = path.read_text("utf-8") if path.exists() else ""
    separator = ""  # an empty line between entries
    if existing and not existing.endswith("\n\n"):
        separator = "\n" if existing.endswith("\n") else "\n\n"
    parse_people(existing + separator + entry, f"people file {path}")
    with path.open("a", encoding="utf-8") as file:
        file.write(separator + entry)


if __name__ == "__main__":
    sys.exit(main())
