"""A statement as a customer reads it: CSV for their bookkeeping, HTML to be sent."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape


def money(cents: int, currency: str) -> str:
    return f"{currency} {Decimal(cents) / 100:,.2f}"


def as_csv(statement: dict[str, Any]) -> str:
    """One row per line (fees, tickets, adjustments), then the totals."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "kind",
            "month",
            "reference",
            "description",
            "minutes_logged",
            "minutes_billed",
            "amount_cents",
        ]
    )
    month = statement["month"]
    for fee in statement.get("fee_lines", []):
        writer.writerow(["fee", month, "", fee["description"], "", "", fee["amount_cents"]])
    for kind, lines in (
        ("time", statement["lines"]),
        ("adjustment", statement.get("adjustment_lines", [])),
    ):
        for line in lines:
            writer.writerow(
                [
                    kind,
                    line.get("month") or month,
                    line["reference"],
                    line["rounding"],
                    line["minutes_logged"],
                    line["minutes_billed"],
                    line["amount_cents"],
                ]
            )
    for name in ("subtotal_cents", "vat_cents", "total_cents"):
        writer.writerow(["total", month, "", name.removesuffix("_cents"), "", "", statement[name]])
    return out.getvalue()


@cache
def _templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("servicedesk_gateway"), autoescape=select_autoescape(["html"])
    )
    environment.filters["money"] = money
    return environment


def as_html(statement: dict[str, Any]) -> str:
    return _templates().get_template("statement.html").render(s=statement)
