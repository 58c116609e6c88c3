"""Priority matrices as data (DOMAIN.md 2): which impact and urgency words an agreement's
matrix knows and what priority each pair gives. Triage decides with them; the gateway
names the words at the door and offers them on the portal. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Matrix:
    """(impact, urgency) -> priority, for the categories it applies to. Other categories
    get `default_priority`, as do inputs outside the matrix (with a reason saying so)."""

    name: str
    priorities: tuple[str, ...]  # highest first
    table: dict[tuple[str, str], str]
    default_priority: str
    applies_to: frozenset[str] | None = None  # None: every category

    @property
    def impacts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(impact for impact, _ in self.table))

    @property
    def urgencies(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(urgency for _, urgency in self.table))

    def applies(self, category: str) -> bool:
        return self.applies_to is None or normalise(category) in self.applies_to

    def unknown_words(self, impact: str, urgency: str) -> dict[str, str]:
        """For each of impact and urgency that the matrix does not know, why (naming the
        words it knows); empty when both are known."""
        problems = {}
        if normalise(impact) not in self.impacts:
            problems["impact"] = f"{impact!r} is not an impact of {self.name}: one of " + (
                ", ".join(self.impacts)
            )
        if normalise(urgency) not in self.urgencies:
            problems["urgency"] = f"{urgency!r} is not an urgency of {self.name}: one of " + (
                ", ".join(self.urgencies)
            )
        return problems


def normalise(term: str) -> str:
    """`Whole organisation`, `whole-organisation` and `whole_organisation` are one word."""
    return term.strip().lower().replace(" ", "_").replace("-", "_")


def _grid(rows: list[str], columns: list[str], cells: list[str]) -> dict[tuple[str, str], str]:
    """Rows are impacts, columns urgencies; `cells` reads row by row."""
    it = iter(cells)
    return {(row, column): next(it) for row in rows for column in columns}


# Provider R (DOMAIN.md 2): impact x process criticality, incidents only; questions and
# change requests always D.
R_MATRIX = Matrix(
    name="R-ABCD",
    priorities=("A", "B", "C", "D"),
    table=_grid(
        ["one_user", "multiple_users", "whole_organisation"],
        ["low", "medium", "high"],
        ["D", "C", "B", "D", "C", "A", "C", "B", "A"],
    ),
    default_priority="D",
    applies_to=frozenset({"incident"}),
)

# Provider Z (DOMAIN.md 2): impact x urgency, every category.
Z_MATRIX = Matrix(
    name="Z-P1P4",
    priorities=("P1", "P2", "P3", "P4"),
    table=_grid(
        ["high", "medium", "low"],
        ["high", "medium", "low"],
        ["P1", "P2", "P3", "P2", "P3", "P4", "P3", "P4", "P4"],
    ),
    default_priority="P4",
)

MATRICES = {matrix.name: matrix for matrix in (R_MATRIX, Z_MATRIX)}
