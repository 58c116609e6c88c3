"""Builds the due-time index of running clocks again from sla-timer's own event log:

    python -m servicedesk_sla_timer.rebuild          # DATABASE_URL (as sla-timer has it)

The index is a projection (see `due_timers`): rebuilding it loses nothing, and a running
sla-timer may go on meanwhile.
"""

from __future__ import annotations

import argparse

from servicedesk_runtime.database import Database, DatabaseUrl
from servicedesk_runtime.progress import Progress
from servicedesk_runtime.settings import from_environment
from servicedesk_runtime.store import ServiceStore
from servicedesk_sla_timer.config import SlaTimerSettings
from servicedesk_sla_timer.due_timers import DueTimers
from servicedesk_sla_timer.main import NAME


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    settings = from_environment(SlaTimerSettings, f"{NAME} rebuild")
    url = DatabaseUrl.parse(settings.database_url_for(NAME), NAME)
    database, store = Database(url), ServiceStore(url, NAME)
    try:
        due = DueTimers(database, store)
        progress: Progress | None = None

        def show(done: int, total: int) -> None:
            nonlocal progress
            progress = progress or Progress(total)
            progress.show(done)

        events = due.rebuild(show)
        if progress is not None:
            progress.show(progress.total, final=True)
        print(f"due-time index rebuilt from {events:,} events: {due.open_count():,} timers")
    finally:
        store.close()
        database.close()


if __name__ == "__main__":
    main()
