"""Month end through the gateway's API: issue every agreement's statement for a month, and
export the month's statements as files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

ExportFormat = Literal["csv", "html", "json"]


@dataclass(frozen=True)
class Outcome:
    agreement_id: str
    customer: str
    result: str  # issued, already issued, or why not


class Gateway:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def agreements(self) -> list[dict[str, Any]]:
        answer = self.http.get("/agreements")
        answer.raise_for_status()
        listed: list[dict[str, Any]] = answer.json()
        return listed

    def issue(self, agreement: dict[str, Any], month: str) -> Outcome:
        """Asks for one statement; the gateway says 409 when it exists, 422 when the month
        has not ended in the agreement's time zone."""
        agreement_id = str(agreement["agreement_id"])
        answer = self.http.post(f"/agreements/{agreement_id}/statements", json={"month": month})
        if answer.status_code == 202:
            result = "issued"
        elif answer.status_code == 409:
            result = "issued before"
        else:
            result = f"refused ({answer.status_code}): {_detail(answer)}"
        return Outcome(agreement_id, str(agreement.get("customer", "")), result)

    def statement(self, agreement_id: str, month: str, form: ExportFormat) -> bytes | None:
        answer = self.http.get(
            f"/agreements/{agreement_id}/statements/{month}", params={"format": form}
        )
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.content


def _detail(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:300]
    detail = body.get("detail") if isinstance(body, dict) else body
    return str(detail)[:300]


def issue_all(
    gateway: Gateway,
    month: str,
    agreements: list[dict[str, Any]],
    each: Callable[[Outcome], None] = lambda _: None,
) -> list[Outcome]:
    """Issues `month`'s statement of each of `agreements`; `each` hears every outcome."""
    outcomes = []
    for agreement in agreements:
        outcome = gateway.issue(agreement, month)
        each(outcome)
        outcomes.append(outcome)
    return outcomes


def export_all(
    gateway: Gateway, month: str, folder: Path, form: ExportFormat
) -> Iterator[tuple[dict[str, Any], Path | None]]:
    """Writes each agreement's statement of `month` into `folder` (None: not issued)."""
    folder.mkdir(parents=True, exist_ok=True)
    for agreement in gateway.agreements():
        agreement_id = str(agreement["agreement_id"])
        content = gateway.statement(agreement_id, month, form)
        if content is None:
            yield agreement, None
            continue
        path = folder / f"statement-{month}-{_slug(agreement)}-{agreement_id}.{form}"
        path.write_bytes(content)
        yield agreement, path


def _slug(agreement: dict[str, Any]) -> str:
    customer = str(agreement.get("customer", "customer")).lower()
    return "".join(c if c.isalnum() else "-" for c in customer).strip("-")[:40] or "customer"
