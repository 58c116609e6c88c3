"""Tokens of the people file: `sd_<token_id>_<secret>`, kept only as an argon2id hash.

The id is not secret: it picks the one entry whose hash is verified, so a lookup costs one
argon2 verification, not one per person. The secret (32 random bytes) is what the hash
protects; argon2-cffi verifies in constant time.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher

TOKEN_SHAPE: Final = re.compile(r"sd_(?P<token_id>[A-Za-z0-9-]{4,64})_(?P<secret>[!-~]{16,256})")
TOKEN_ID_SHAPE: Final = re.compile(r"[A-Za-z0-9-]{4,64}")

HASHER: Final = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
"""argon2id with OWASP's smallest recommended cost (19 MiB, 2 passes, 1 lane): about 30 ms
a verification on this project's machines. A stored hash carries its own parameters, so
entries hashed with other costs verify too."""


def token_id_of(token: str) -> str | None:
    """The id part of a well-formed people-file token, else None."""
    shape = TOKEN_SHAPE.fullmatch(token)
    return shape["token_id"] if shape else None


@dataclass(frozen=True)
class NewToken:
    token: str
    """Shown once to the person it is for; never stored."""
    token_id: str
    token_hash: str


def new_token() -> NewToken:
    token_id = secrets.token_hex(8)
    token = f"sd_{token_id}_{secrets.token_urlsafe(32)}"
    return NewToken(token=token, token_id=token_id, token_hash=HASHER.hash(token))


def toml_entry(
    *,
    name: str,
    role: str,
    token_id: str,
    token_hash: str,
    groups: tuple[str, ...] = (),
    organisation: str | None = None,
    agreement_id: uuid.UUID | None = None,
    billing_contact: bool = False,
    email: str | None = None,
) -> str:
    """One `[[person]]` table of the people file (strings in TOML's basic-string syntax,
    which JSON's escapes are a subset of)."""
    fields: list[tuple[str, object]] = [("name", name), ("role", role)]
    if groups:
        fields.append(("groups", list(groups)))
    if organisation is not None:
        fields.append(("organisation", organisation))
    if agreement_id is not None:
        fields.append(("agreement_id", str(agreement_id)))
    if billing_contact:
        fields.append(("billing_contact", True))
    if email is not None:
        fields.append(("email", email))
    fields += [("token_id", token_id), ("token_hash", token_hash)]
    lines = ["[[person]]"] + [
        f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in fields
    ]
    return "\n".join(lines) + "\n"
