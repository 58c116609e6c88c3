"""The ticket reference sequence gains an event per ticket for ever; it is snapshotted, so
that a restarted intake reads its latest snapshot and a bounded tail of events, whatever
the number of tickets behind it. Numbering stays unique, increasing and never reused
across snapshots, restarts, replicas and stores written before snapshots existed.
On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from servicedesk_intake.domain import ReferenceSequence
from servicedesk_intake.mail_desk import next_reference
from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.snapshots import snapshot_if_behind
from servicedesk_runtime.store import ServiceStore, UnitOfWork

EVERY = ReferenceSequence.SNAPSHOT_EVERY
GOLDEN = Path(__file__).parents[3] / "tests" / "data" / "stored_events"


@pytest.fixture
def database_url(database_url: str) -> str:
    """A fresh database (the root conftest's), its PostgreSQL schema made."""
    Database(DatabaseUrl.parse(database_url, "intake")).close()
    return database_url


def open_store(database_url: str) -> ServiceStore:
    return ServiceStore(DatabaseUrl.parse(database_url, "intake"), "intake")


def issue(store: ServiceStore, count: int, per_unit_of_work: int = 7) -> list[str]:
    """`count` references, committed in units of work of `per_unit_of_work` (a batch)."""
    references: list[str] = []
    while len(references) < count:
        uow = store.unit_of_work()
        for _ in range(min(per_unit_of_work, count - len(references))):
            references.append(next_reference(uow))
        uow.commit()
    return references


def as_before_snapshots(store: ServiceStore, count: int) -> None:
    """References issued as the code before snapshots did: the events alone."""
    uow = store.unit_of_work()
    sequence = uow.get(ReferenceSequence.ID, ReferenceSequence) or ReferenceSequence()
    for _ in range(count):
        sequence.next_reference()
    uow.add(sequence)
    uow.commit()


def snapshot_version(store: ServiceStore) -> int | None:
    assert store.snapshots is not None
    found = store.snapshots.recorder.select_events(ReferenceSequence.ID, desc=True, limit=1)
    return found[0].originator_version if found else None


def load_counting_events(
    store: ServiceStore, monkeypatch: pytest.MonkeyPatch
) -> tuple[UnitOfWork, ReferenceSequence, int]:
    """The sequence as a restarted intake's unit of work loads it, and how many stored
    events that read (snapshots aside)."""
    select = store.recorder.select_events
    read: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        rows = select(*args, **kwargs)
        read.append(len(rows))
        return rows

    monkeypatch.setattr(store.recorder, "select_events", counting)
    uow = store.unit_of_work()
    sequence = uow.get(ReferenceSequence.ID, ReferenceSequence)
    monkeypatch.setattr(store.recorder, "select_events", select)
    assert sequence is not None
    return uow, sequence, sum(read)


def test_a_restarted_intake_reads_a_bounded_tail_and_continues_the_numbering(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(database_url)
    issued = issue(store, 2 * EVERY + 50)
    assert issued == [f"SD-{n:06d}" for n in range(1, 2 * EVERY + 51)]
    # Version n + 1 holds number n; the latest multiple of EVERY, though it fell
    # inside a batch of seven, was snapshotted.
    assert snapshot_version(store) == 2 * EVERY
    store.close()

    restarted = open_store(database_url)
    uow, sequence, events_read = load_counting_events(restarted, monkeypatch)
    assert sequence.last_number == 2 * EVERY + 50
    assert events_read == 51  # the events after the snapshot, not all 251
    assert next_reference(uow) == f"SD-{2 * EVERY + 51:06d}"
    uow.commit()
    restarted.close()


def test_a_unit_of_work_that_is_not_committed_leaves_no_snapshot(database_url: str) -> None:
    store = open_store(database_url)
    issue(store, EVERY - 2)
    thrown_away = store.unit_of_work()
    next_reference(thrown_away)  # the version EVERY: due for a snapshot
    thrown_away.discard()
    assert snapshot_version(store) is None
    assert issue(store, 1) == [f"SD-{EVERY - 1:06d}"]  # the number was not used
    assert snapshot_version(store) == EVERY
    store.close()


def test_a_snapshot_lost_after_its_commit_loses_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As after kill -9 between the commit and the snapshot, or a failing snapshot table:
    the numbers stand, and the next snapshot is taken at the next multiple."""
    store = open_store(database_url)
    assert store.snapshots is not None
    with monkeypatch.context() as failing:
        failing.setattr(store.snapshots, "put", _refused)
        issue(store, EVERY + 5)  # committed; the snapshot at EVERY failed, and was logged
    assert snapshot_version(store) is None
    issue(store, EVERY)
    assert snapshot_version(store) == 2 * EVERY
    restarted = open_store(database_url)
    assert issue(restarted, 1) == [f"SD-{2 * EVERY + 6:06d}"]
    for opened in (store, restarted):
        opened.close()


def _refused(*_: object, **__: object) -> None:
    raise OSError("the snapshot table is not writable")


def test_two_replicas_never_issue_one_number_twice(database_url: str) -> None:
    first, second = open_store(database_url), open_store(database_url)
    issued = [ref for _ in range(EVERY // 20) for s in (first, second) for ref in issue(s, 5)]
    assert issued == [f"SD-{n:06d}" for n in range(1, len(issued) + 1)]
    # Both take the next number; the second to commit conflicts, and its snapshot (the
    # number is due for one) is not taken, as it committed nothing.
    issue(first, EVERY - 2 - len(issued))
    racing = second.unit_of_work()
    lost = next_reference(racing)
    (won,) = issue(first, 1)
    assert lost == won == f"SD-{EVERY - 1:06d}"
    with pytest.raises(IntegrityError):
        racing.commit()
    assert issue(second, 1) == [f"SD-{EVERY:06d}"]  # applied again: the next number
    restarted = open_store(database_url)
    loaded: ReferenceSequence = restarted.repository.get(ReferenceSequence.ID)
    assert loaded.last_number == EVERY
    assert snapshot_version(restarted) == EVERY
    for store in (first, second, restarted):
        store.close()


def test_a_store_written_before_snapshots_continues_and_is_snapshotted_at_start(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(database_url)
    as_before_snapshots(store, EVERY + 20)
    assert snapshot_version(store) is None
    snapshot_if_behind(store, ReferenceSequence.ID, EVERY)  # what intake does at start
    assert snapshot_version(store) == EVERY + 21
    snapshot_if_behind(store, ReferenceSequence.ID, EVERY)  # not behind: nothing new
    assert snapshot_version(store) == EVERY + 21
    store.close()
    restarted = open_store(database_url)
    uow, _, events_read = load_counting_events(restarted, monkeypatch)
    assert events_read == 0
    assert next_reference(uow) == f"SD-{EVERY + 21:06d}"
    uow.commit()
    restarted.close()


def test_the_golden_store_of_an_earlier_intake_continues_its_numbering(database_url: str) -> None:
    rows = json.loads((GOLDEN / "intake.2026-11.json").read_text())
    store = open_store(database_url)
    store.recorder.insert_events(
        [
            StoredEvent(
                originator_id=uuid.UUID(row["originator_id"]),
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=base64.b64decode(row["state"]),
            )
            for row in rows
        ]
    )
    last: int = store.repository.get(ReferenceSequence.ID).last_number
    assert last > 0
    snapshot_if_behind(store, ReferenceSequence.ID, 1)  # snapshot of the old events
    assert issue(open_store(database_url), 2) == [f"SD-{last + 1:06d}", f"SD-{last + 2:06d}"]
    store.close()
