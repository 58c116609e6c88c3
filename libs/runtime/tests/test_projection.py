"""A projection's bookkeeping on both engines: its tables, its position and its applied
markers commit together or not at all, and a writer that comes second is told by an
`IntegrityError` (the consumer's signal for "someone recorded past this batch")."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.projection import ProjectionStore
from servicedesk_runtime.recorders import positions


@pytest.fixture
def store(database_url: str) -> Iterator[ProjectionStore]:
    database = Database(DatabaseUrl.parse(database_url, "notes"))
    with database.transaction() as cursor:
        cursor.execute(f"CREATE TABLE {database.table('notes')} (body TEXT)")
    yield ProjectionStore(database, "notes_view")
    database.close()


def notes(store: ProjectionStore) -> list[str]:
    with store.database.transaction() as cursor:
        cursor.execute(f"SELECT body FROM {store.database.table('notes')} ORDER BY body")
        return [row[0] for row in cursor.fetchall()]


def write(store: ProjectionStore, body: str, position: int, event_id: uuid.UUID) -> None:
    uow = store.unit_of_work()
    uow.cursor.execute(f"INSERT INTO {store.database.table('notes')} VALUES (?)", (body,))
    uow.mark_applied(event_id)
    uow.commit(Tracking("inc:topic:0", position))


def test_a_batch_commits_its_rows_markers_and_position_together(store: ProjectionStore) -> None:
    first = uuid.uuid4()
    write(store, "first", 1, first)
    assert store.position("inc:topic:0") == 1
    assert notes(store) == ["first"]
    assert store.applied(first)
    assert not store.applied(uuid.uuid4())


def test_a_position_not_past_the_recorded_one_writes_nothing(store: ProjectionStore) -> None:
    write(store, "first", 5, uuid.uuid4())
    again = uuid.uuid4()
    with pytest.raises(IntegrityError):
        write(store, "replayed", 5, again)  # the same batch, after a crash or a rebalance
    with pytest.raises(IntegrityError):
        write(store, "older", 3, uuid.uuid4())
    assert notes(store) == ["first"]
    assert store.position("inc:topic:0") == 5
    assert not store.applied(again)  # rolled back with the rows


def test_a_marker_recorded_by_another_writer_meanwhile_is_a_conflict(
    store: ProjectionStore,
) -> None:
    event_id = uuid.uuid4()
    write(store, "by a replica", 1, event_id)
    late = store.unit_of_work()  # it looked before the other writer committed
    late.cursor.execute(f"INSERT INTO {store.database.table('notes')} VALUES ('twice')")
    late.mark_applied(event_id)
    with pytest.raises(IntegrityError):
        late.commit(Tracking("inc:other:0", 1))
    assert notes(store) == ["by a replica"]
    assert store.position("inc:other:0") is None


def test_a_discarded_batch_leaves_nothing_and_forget_starts_over(store: ProjectionStore) -> None:
    uow = store.unit_of_work()
    uow.cursor.execute(f"INSERT INTO {store.database.table('notes')} VALUES ('lost')")
    uow.mark_applied(uuid.uuid4())
    uow.discard()
    assert notes(store) == []
    write(store, "kept", 7, uuid.uuid4())
    effects: list[str] = []
    uow = store.unit_of_work()
    uow.after_commit(lambda: effects.append("counted"))
    uow.discard()
    assert effects == []  # a batch thrown away runs none of its effects
    with store.database.transaction() as cursor:
        store.forget(cursor)
    assert store.positions() == {}


def test_the_positions_of_several_partitions_commit_together_or_not_at_all(
    store: ProjectionStore,
) -> None:
    """A fetch over several partitions is one batch: each position is checked as a lone
    one is, and one that is not past its recorded position writes nothing at all."""
    write(store, "partition 0 by a replica", 4, uuid.uuid4())  # at "inc:topic:0"
    uow = store.unit_of_work()
    uow.cursor.execute(f"INSERT INTO {store.database.table('notes')} VALUES ('both')")
    uow.commit(positions([Tracking("inc:topic:1", 2), Tracking("inc:topic:2", 7)]))
    assert (store.position("inc:topic:1"), store.position("inc:topic:2")) == (2, 7)

    late = store.unit_of_work()
    late.cursor.execute(f"INSERT INTO {store.database.table('notes')} VALUES ('late')")
    late.mark_applied(marker := uuid.uuid4())
    with pytest.raises(IntegrityError):
        late.commit(positions([Tracking("inc:topic:2", 9), Tracking("inc:topic:0", 4)]))
    assert notes(store) == ["both", "partition 0 by a replica"]
    assert store.position("inc:topic:2") == 7  # the good position went with the bad one
    assert not store.applied(marker)
