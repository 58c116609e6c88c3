"""`servicedesk`: the operator's command line.

    servicedesk up                     the whole desk on this machine (what `make up` runs)
    servicedesk demo-agreements        the README's demo agreements, e.g. on Compose
    servicedesk status                 the dashboards' key figures, from the services
    servicedesk dead-letters list      what was refused, and whether it was replayed
    servicedesk dead-letters show REF  one dead letter whole
    servicedesk dead-letters replay REF --by NAME [--file FIXED]
    servicedesk statements issue --month YYYY-MM
    servicedesk statements export --month YYYY-MM [--format csv] [--to DIR]
    servicedesk rebuild gateway        the gateway's view, from the topics
    servicedesk rebuild sla-timer      the due-time index, from sla-timer's event log

Kafka and the gateway are found through KAFKA_BOOTSTRAP_SERVERS, SERVICEDESK_GATEWAY and
SERVICEDESK_TOKEN (an admin's token, for statements), as the services find theirs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from servicedesk_stack.operator import dead_letters as letters
from servicedesk_stack.operator import month_end, status

app = typer.Typer(help="Operate servicedesk.", no_args_is_help=True, add_completion=False)
dead_letter_app = typer.Typer(help="The dead-letter workbench.", no_args_is_help=True)
statements_app = typer.Typer(help="Month end: statements for every agreement.")
app.add_typer(dead_letter_app, name="dead-letters")
app.add_typer(statements_app, name="statements")
console = Console()
T = TypeVar("T")

Bootstrap = Annotated[
    str, typer.Option(envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers")
]
GatewayUrl = Annotated[str, typer.Option(envvar="SERVICEDESK_GATEWAY", help="gateway URL")]
Token = Annotated[str, typer.Option(envvar="SERVICEDESK_TOKEN", help="an admin's token")]
Month = Annotated[str, typer.Option(help="the month, YYYY-MM")]


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{message}[/red]")
    return typer.Exit(1)


def _on_kafka(bootstrap: str, work: Coroutine[Any, Any, T]) -> T:
    """Runs `work`; a broker that cannot be reached is said in one line, not a traceback."""
    try:
        return asyncio.run(work)
    except (KafkaError, OSError, TimeoutError) as away:
        raise _fail(f"cannot reach Kafka at {bootstrap}: {away}") from away


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def up(context: typer.Context) -> None:
    """The whole desk on this machine (options: see `servicedesk up --help-embedded`)."""
    from servicedesk_stack.__main__ import main as run_embedded

    arguments = ["--help" if a == "--help-embedded" else a for a in context.args]
    run_embedded(arguments)


@app.command("demo-agreements")
def demo_agreements(token: Token, gateway: GatewayUrl = "http://127.0.0.1:8080") -> None:
    """Registers the README's demo agreements (what `make up` does), e.g. on Compose."""
    from servicedesk_stack.demo import register_demo_agreements

    try:
        customers = register_demo_agreements(gateway, token)
    except httpx.HTTPError as failed:
        raise _fail(f"the gateway at {gateway} did not take them: {failed}") from failed
    console.print(f"registered {len(customers)} demo agreements: {', '.join(customers)}")


@app.command("status")
def show_status(
    data_dir: Annotated[Path, typer.Option(help="the embedded run's data dir")] = Path("var"),
) -> None:
    """The key figures of the dashboards, from every service's /health and /metrics."""
    figures = status.gather(status.endpoints(data_dir))
    services = Table("service", "ready", "consumer lag", "relay lag", "dead-lettered", "skipped")
    for s in figures.services:
        ready = "[red]not answering[/red]" if s.ready is None else ("yes" if s.ready else "no")
        services.add_row(
            s.name,
            ready,
            *(f"{v:g}" for v in (s.consumer_lag, s.relay_lag, s.dead_lettered, s.skipped)),
        )
    console.print(services)
    desk = Table("the desk now", "")
    for name, value in figures.desk.items():
        desk.add_row(name, "-" if value is None else f"{value:g}")
    for name, value in figures.backlog.items():
        desk.add_row(f"status {name}", f"{value:g}")
    console.print(desk)
    if any(s.ready is not True for s in figures.services):
        raise typer.Exit(2)


@dead_letter_app.command("list")
def list_dead_letters(
    bootstrap: Bootstrap = "127.0.0.1:9092",
    reason: Annotated[str | None, typer.Option(help="only this reason")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object a line")] = False,
) -> None:
    """Every dead letter, oldest first per partition, and who replayed it."""
    found = _on_kafka(bootstrap, letters.dead_letters(bootstrap))
    replayed = _on_kafka(bootstrap, letters.replays(bootstrap))
    rows = []
    for letter in found:
        if reason is not None and letter.reason != reason:
            continue
        done = replayed.get(letter.id)
        rows.append({**letter.summary(), "replayed_by": done.data.replayed_by if done else None})
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    table = Table("ref", "reason", "service", "source", "key", "event_id", "replayed by")
    for row in rows:
        table.add_row(
            row["ref"],
            row["reason"],
            row["service"],
            row["source"],
            row["key"] or "",
            row["event_id"] or "",
            row["replayed_by"] or "",
        )
    console.print(table)
    console.print(f"{len(rows)} dead letter(s)")


@dead_letter_app.command("show")
def show_dead_letter(ref: str, bootstrap: Bootstrap = "127.0.0.1:9092") -> None:
    """One dead letter whole: headers (why, from where) and the message as text."""
    for letter in _on_kafka(bootstrap, letters.dead_letters(bootstrap)):
        if letter.ref == ref:
            typer.echo(json.dumps(letter.details(), indent=2, ensure_ascii=False))
            return
    raise _fail(f"no dead letter {ref}")


@dead_letter_app.command("replay")
def replay_dead_letter(
    ref: str,
    by: Annotated[str, typer.Option(help="who replays it (kept in the audit record)")],
    file: Annotated[
        Path | None, typer.Option(help="the fixed message (JSON) to send instead")
    ] = None,
    bootstrap: Bootstrap = "127.0.0.1:9092",
) -> None:
    """Sends a dead letter back to its source topic, once, as it was or fixed."""
    fixed = file.read_bytes() if file is not None else None
    try:
        audit = _on_kafka(bootstrap, letters.replay(bootstrap, ref, by, fixed))
    except letters.ReplayRefused as refused:
        raise _fail(str(refused)) from refused
    data = audit.data
    console.print(
        f"replayed {ref} to {data.source_topic} ({'fixed' if data.fixed else 'as it was'}), "
        f"audit record {audit.event_id}"
    )


@statements_app.command("issue")
def issue_statements(
    month: Month, token: Token, gateway: GatewayUrl = "http://127.0.0.1:8080"
) -> None:
    """Issues `month`'s statement for every agreement (those issued before are left)."""
    client = month_end.Gateway(gateway, token)
    agreements = client.agreements()
    table = Table("customer", "agreement", "statement")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"issuing {month}", total=len(agreements))

        def each(outcome: month_end.Outcome) -> None:
            table.add_row(outcome.customer, outcome.agreement_id, outcome.result)
            progress.advance(task)

        outcomes = month_end.issue_all(client, month, agreements, each)
    console.print(table)
    if any(o.result.startswith("refused") for o in outcomes):
        raise typer.Exit(1)


@statements_app.command("export")
def export_statements(
    month: Month,
    token: Token,
    to: Annotated[Path, typer.Option(help="folder for the files")] = Path("statements"),
    form: Annotated[month_end.ExportFormat, typer.Option("--format")] = "csv",
    gateway: GatewayUrl = "http://127.0.0.1:8080",
) -> None:
    """Writes every issued statement of `month` into a folder, one file each."""
    client = month_end.Gateway(gateway, token)
    written = missing = 0
    for agreement, path in month_end.export_all(client, month, to, form):
        if path is None:
            missing += 1
            console.print(f"[yellow]{agreement['customer']}: no statement for {month}[/yellow]")
        else:
            written += 1
            console.print(f"{path}")
    console.print(f"{written} statement(s) written to {to}, {missing} not issued")


@app.command()
def rebuild(
    what: Annotated[str, typer.Argument(help="gateway (its view) or sla-timer (due timers)")],
    context: typer.Context,
) -> None:
    """Builds a read model again: the gateway's view from the topics (every gateway
    stopped), or sla-timer's due-time index from its event log (it may run)."""
    if what == "gateway":
        from servicedesk_gateway.rebuild import main as rebuild_view

        rebuild_view(context.args)
    elif what == "sla-timer":
        from servicedesk_sla_timer.rebuild import main as rebuild_due_timers

        rebuild_due_timers(context.args)
    else:
        raise _fail(f"no read model {what!r}: gateway or sla-timer")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
