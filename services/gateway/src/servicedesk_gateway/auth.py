"""Who is calling: every bearer token names a person with a role.

Roles: `agent` works tickets, `admin` may also do what only admins do (register agreements,
issue statements), `customer` is bound to one organisation (and maybe one agreement) and may
only do customer things. People come from sources that answer `lookup(token)`: the
`GATEWAY_TOKENS` variable (plaintext, for demos and development: `TokenTable`) and the
people file (hashed tokens, re-read when it changes: `servicedesk_gateway.people`).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal, Protocol, get_args, runtime_checkable

Role = Literal["agent", "admin", "customer"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
STAFF: Final = frozenset({"agent", "admin"})
MAX_TOKEN_CHARS: Final = 512
"""A longer bearer token is refused before it is hashed or compared."""


@dataclass(frozen=True)
class Caller:
    """A person: what they may do (`role`) and, for a customer, whose data they may see."""

    name: str
    role: str
    groups: tuple[str, ...] = ()
    """An agent's (or admin's) groups, e.g. `first-line`."""
    organisation: str | None = None
    """A customer's organisation (required for a customer, none for staff)."""
    agreement_id: uuid.UUID | None = None
    """A customer bound to one agreement of the organisation; None: all of them."""
    billing_contact: bool = False
    """A customer who may read the organisation's statements."""
    email: str | None = None
    """Where the person is told things (an agent: a ticket assigned to them)."""

    def __post_init__(self) -> None:
        for problem in person_problems(
            self.name,
            self.role,
            self.groups,
            self.organisation,
            self.agreement_id,
            self.billing_contact,
        ):
            raise ValueError(problem)

    @property
    def is_customer(self) -> bool:
        return self.role == "customer"

    def may(self, role: str) -> bool:
        """An admin may everything; an agent only agent things; a customer only customer
        things (`may("agent")` is False for a customer, and `may("customer")` is False for
        an agent)."""
        return self.role in ("admin", role)


def person_problems(
    name: str,
    role: str,
    groups: tuple[str, ...],
    organisation: str | None,
    agreement_id: uuid.UUID | None,
    billing_contact: bool,
) -> Iterator[str]:
    """What is wrong with a person's fields, each naming the field (empty: nothing)."""
    if not name.strip():
        yield "name: must not be empty"
    if role not in ROLES:
        yield f"role: {role!r} is not one of {', '.join(ROLES)}"
    if role == "customer":
        if not (organisation or "").strip():
            yield "organisation: a customer must name the organisation it belongs to"
        if groups:
            yield "groups: only agents and admins belong to groups"
    elif role in STAFF:
        for field, value in (
            ("organisation", organisation),
            ("agreement_id", agreement_id),
            ("billing_contact", billing_contact or None),
        ):
            if value is not None:
                yield f"{field}: only a customer has one (this person is an {role})"


@runtime_checkable
class People(Protocol):
    """A source of people: the person a bearer token names, or None."""

    def lookup(self, token: str) -> Caller | None: ...


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenTable(dict[str, Caller]):
    """Plaintext tokens from `GATEWAY_TOKENS` (demos, development, tests). A dict (token ->
    person) for the code that still reads it as one; `lookup` compares every entry in
    constant time."""

    def lookup(self, token: str) -> Caller | None:
        if len(token) > MAX_TOKEN_CHARS:
            return None
        presented = _digest(token)
        found = None
        for known, caller in self.items():
            if hmac.compare_digest(presented, _digest(known)):
                found = caller
        return found


ENTRY_FORMAT: Final = (
    "token:role[:name] for agent and admin (token:agent:name:group+group gives groups), "
    "token:customer:name:organisation[:agreement_id[:billing]] for a customer"
)


def parse_tokens(spec: str) -> TokenTable:
    """`GATEWAY_TOKENS`: comma-separated entries (see `ENTRY_FORMAT`) -> token -> person.
    Raises ValueError naming the bad entry by its first characters (never the whole token)."""
    table = TokenTable()
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        token, _, rest = entry.partition(":")
        shown = f"GATEWAY_TOKENS entry {token[:4]}..."
        role, *fields = rest.split(":")
        if not token or role not in ROLES:
            raise ValueError(f"{shown}: expected {ENTRY_FORMAT}, with role in {ROLES}")
        if token in table:
            raise ValueError(f"{shown}: the same token is given twice")
        try:
            table[token] = _entry_caller(role, [field.strip() for field in fields])
        except ValueError as problem:
            raise ValueError(f"{shown}: {problem} (expected {ENTRY_FORMAT})") from None
    return table


def _entry_caller(role: str, fields: list[str]) -> Caller:
    if role != "customer":
        if len(fields) > 2:
            raise ValueError(f"too many fields for an {role}")
        name, groups = [*fields, "", ""][:2]
        return Caller(name=name or role, role=role, groups=tuple(filter(None, groups.split("+"))))
    if len(fields) < 2 or len(fields) > 4:
        raise ValueError("a customer needs a name and an organisation")
    name, organisation, agreement, billing = [*fields, "", ""][:4]
    if billing not in ("", "billing"):
        raise ValueError(f"the last field may only be 'billing', not {billing!r}")
    try:
        agreement_id = uuid.UUID(agreement) if agreement else None
    except ValueError:
        raise ValueError(f"agreement_id: {agreement!r} is not a UUID") from None
    return Caller(
        name=name or "customer",
        role="customer",
        organisation=organisation,
        agreement_id=agreement_id,
        billing_contact=bool(billing),
    )


class Directory:
    """Several sources asked in order; the first that knows the token answers."""

    def __init__(self, *sources: People) -> None:
        self.sources = sources

    def lookup(self, token: str) -> Caller | None:
        for source in self.sources:
            caller = source.lookup(token)
            if caller is not None:
                return caller
        return None

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and self.lookup(token) is not None

    def email_of(self, name: str) -> str | None:
        """The address of the person of that name, from the first source that knows it."""
        for source in self.sources:
            find = getattr(source, "email_of", None)
            found = find(name) if find is not None else None
            if found:
                return str(found)
        return None

    def __getitem__(self, token: str) -> Caller:
        caller = self.lookup(token)
        if caller is None:
            raise KeyError("unknown token")
        return caller


def as_people(callers: People | Mapping[str, Caller]) -> People:
    """A source of people from either a source or a plain token -> person mapping."""
    if isinstance(callers, People):
        return callers
    return TokenTable(callers)
