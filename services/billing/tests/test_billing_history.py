"""Billing's handlers on real SQLite stores: a prepaid bundle over two months with a late
entry, and the same history giving the same statements when it is applied again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from servicedesk_billing.application import Billing
from servicedesk_billing.domain import MonthLedger
from servicedesk_contracts import Message
from servicedesk_contracts import messages as m
from servicedesk_runtime.clock import ManualClock
from servicedesk_runtime.consumer import Rejected
from servicedesk_runtime.database import DatabaseUrl
from servicedesk_runtime.store import ServiceStore

AGREEMENT = uuid.UUID("00000000-0000-4000-8000-0000000000e1")
TICKET = uuid.UUID("00000000-0000-4000-8000-0000000000f1")


def time_logged(minutes: int, started: datetime, billable: bool = True) -> m.TimeLogged:
    return m.TimeLogged.create(
        producer="intake",
        subject_id=TICKET,
        event_id=uuid.uuid5(TICKET, f"{started.isoformat()}:{minutes}"),
        data={
            "agent": "mette",
            "started_at": started,
            "duration_minutes": minutes,
            "work_type": "support",
            "billable": billable,
            "entry_id": uuid.uuid5(TICKET, started.isoformat()),
            "reference": "SD-000001",
            "agreement_id": AGREEMENT,
            "category": "incident",
        },
    )


def history() -> list[Message]:
    def command(kind: type[Message], data: dict[str, Any]) -> Message:
        return kind.create(producer="crm", subject_id=AGREEMENT, data=data)  # type: ignore[no-any-return]

    return [
        command(
            m.RegisterPlanAgreement,
            {
                "customer": "Bundle Ltd",
                "plan": "E SLA",
                "billing": {
                    "model": "prepaid_bundle",
                    "hourly_rate_cents": 9000,
                    "vat_rate": "0.21",
                },
            },
        ),
        command(m.TopUpBundle, {"minutes": 600, "note": "10 hours"}),
        time_logged(10, datetime(2026, 11, 3, 9, 0, tzinfo=UTC)),
        time_logged(300, datetime(2026, 11, 4, 9, 0, tzinfo=UTC)),
        command(m.IssueStatement, {"month": "2026-11"}),
        time_logged(40, datetime(2026, 11, 28, 9, 0, tzinfo=UTC)),  # late: November is closed
        time_logged(400, datetime(2026, 12, 2, 9, 0, tzinfo=UTC)),
        command(m.IssueStatement, {"month": "2026-12"}),
    ]


LATER = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
"""When the statements are issued: after both months of the history have ended."""


def apply(store: ServiceStore, messages: list[Message], now: datetime = LATER) -> None:
    handlers = Billing(ManualClock(now)).handlers()
    for message in messages:
        uow = store.unit_of_work()
        handlers[message.event_type](message, uow)
        uow.mark_applied(message.event_id)
        uow.commit()


def statements(store: ServiceStore) -> dict[str, dict[str, Any]]:
    events = map(
        store.mapper.to_domain_event, store.process_recorder.select_notifications(1, 10_000)
    )
    return {
        e.statement["month"]: e.statement
        for e in events
        if isinstance(e, MonthLedger.StatementIssued)
    }


def store_at(path: Path) -> ServiceStore:
    return ServiceStore(DatabaseUrl.parse(f"sqlite:///{path}", "billing"), "billing")


def test_a_bundle_over_two_months_with_a_late_entry(tmp_path: Path) -> None:
    store = store_at(tmp_path / "billing.db")
    apply(store, history())
    issued = statements(store)
    november, december = issued["2026-11"], issued["2026-12"]
    # One ticket: 10 + 300 minutes, above the 15-minute minimum.
    assert november["prepaid"] == {
        "balance_before_minutes": 0,
        "topped_up_minutes": 600,
        "used_minutes": 310,
        "balance_after_minutes": 290,
    }
    assert november["total_cents"] == 0
    (late,) = december["adjustment_lines"]  # the late 40 minutes, on December's statement
    assert (late["month"], late["minutes_billed"]) == ("2026-11", 40)
    assert december["prepaid"]["balance_before_minutes"] == 290
    assert december["prepaid"]["used_minutes"] == 290
    # 440 - 290 = 150 minutes beyond the balance at EUR 90/h = EUR 225.00, VAT 21 %
    assert december["subtotal_cents"] == 22500
    assert december["total_cents"] == 22500 + 4725
    with pytest.raises(Rejected, match="issued already"):
        apply(
            store,
            [
                m.IssueStatement.create(
                    producer="crm", subject_id=AGREEMENT, data={"month": "2026-11"}
                )
            ],
        )
    store.close()


def test_the_same_history_gives_the_same_statements_and_they_read_back_unchanged(
    tmp_path: Path,
) -> None:
    first = store_at(tmp_path / "first.db")
    apply(first, history())
    issued = statements(first)
    first.close()
    rebuilt = store_at(tmp_path / "rebuilt.db")
    apply(rebuilt, history())
    assert statements(rebuilt) == issued
    assert statements(store_at(tmp_path / "first.db")) == issued


def test_time_on_a_ticket_of_an_unknown_agreement_is_refused_by_name(tmp_path: Path) -> None:
    store = store_at(tmp_path / "billing.db")
    with pytest.raises(Rejected) as refused:
        apply(store, [time_logged(30, datetime(2026, 11, 3, 9, 0, tzinfo=UTC))])
    assert refused.value.reason == "unknown_agreement"
    assert str(AGREEMENT) in refused.value.detail
    store.close()


@pytest.mark.parametrize(
    ("month", "now"),
    [
        ("2026-12", datetime(2026, 11, 28, 12, 0, tzinfo=UTC)),  # not begun
        ("2027-05", datetime(2026, 11, 28, 12, 0, tzinfo=UTC)),
        ("2026-11", datetime(2026, 11, 28, 12, 0, tzinfo=UTC)),  # under way
        ("2026-11", datetime(2026, 11, 30, 22, 59, tzinfo=UTC)),  # Amsterdam: 23:59
    ],
)
def test_a_statement_waits_until_its_month_has_ended_in_the_agreements_zone(
    tmp_path: Path, month: str, now: datetime
) -> None:
    store = store_at(tmp_path / "billing.db")
    apply(store, history()[:4])  # E SLA: Amsterdam
    issue = m.IssueStatement.create(producer="crm", subject_id=AGREEMENT, data={"month": month})
    with pytest.raises(Rejected) as refused:
        apply(store, [issue], now=now)
    assert refused.value.reason == "month_not_ended"
    assert f"{month} has not ended in Europe/Amsterdam" in refused.value.detail
    assert statements(store) == {}


def test_a_month_ended_in_the_agreements_zone_is_issued_before_it_ends_in_utc(
    tmp_path: Path,
) -> None:
    store = store_at(tmp_path / "billing.db")
    apply(store, history()[:4])
    issue = m.IssueStatement.create(producer="crm", subject_id=AGREEMENT, data={"month": "2026-11"})
    apply(store, [issue], now=datetime(2026, 11, 30, 23, 0, tzinfo=UTC))  # Amsterdam: 1 Dec
    assert "2026-11" in statements(store)


@pytest.mark.parametrize(
    ("changes", "reason", "names"),
    [
        ({"plan": "R Gold"}, "unknown_plan", "plan: unknown plan 'R Gold'"),
        ({"targets": {"P1": {"response_minutes": 5}}}, "invalid_plan_selection", "targets: "),
        ({"holidays_subdivision": "Oost"}, "invalid_plan_selection", "holidays_subdivision: "),
    ],
)
def test_a_plan_selection_that_does_not_resolve_into_valid_terms_is_refused_with_the_reason(
    tmp_path: Path, changes: dict[str, Any], reason: str, names: str
) -> None:
    store = store_at(tmp_path / "billing.db")
    selection = {"customer": "C", "plan": "R Medium", "billing": {"hourly_rate_cents": 1}}
    command = m.RegisterPlanAgreement.create(
        producer="crm", subject_id=AGREEMENT, data={**selection, **changes}
    )
    with pytest.raises(Rejected) as refused:
        apply(store, [command])
    assert refused.value.reason == reason
    assert refused.value.detail.startswith(names)
    store.close()
