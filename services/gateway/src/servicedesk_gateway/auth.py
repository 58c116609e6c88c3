"""Bearer tokens with roles: agents work tickets, admins also register agreements."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("agent", "admin")


@dataclass(frozen=True)
class Caller:
    name: str
    role: str

    def may(self, role: str) -> bool:
        return self.role in ("admin", role)


def parse_tokens(spec: str) -> dict[str, Caller]:
    """`token:role[:name],...` -> token -> caller. Raises ValueError naming a bad entry."""
    callers: dict[str, Caller] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        token, _, rest = entry.partition(":")
        role, _, name = rest.partition(":")
        if not token or role not in ROLES:
            raise ValueError(
                f"GATEWAY_TOKENS entry {entry.split(':')[0][:4]}...: expected token:role[:name] "
                f"with role in {ROLES}"
            )
        callers[token] = Caller(name=name or role, role=role)
    return callers
