"""`python -m servicedesk_stack`: the whole servicedesk on this machine.

Starts the embedded Kafka-protocol broker (unless KAFKA_BOOTSTRAP_SERVERS is set), an SMTP
sink that keeps mail in var/mail, and the six services with SQLite event stores in var/data
(or PostgreSQL when DATABASE_URL is set). Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

from servicedesk_stack.demo import (
    DEMO_ORGANISATION,
    DEMO_TOKENS,
    FIRST_AGREEMENT_ID,
    PEOPLE_FILE_HEADER,
    register_demo_agreements,
)
from servicedesk_stack.mail_sink import MailSink
from servicedesk_stack.operator.status import ENDPOINTS_FILE
from servicedesk_stack.stack import SERVICES, Stack, StackConfig, Supervisor, embedded_broker


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="servicedesk up", description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="register the demo agreements")
    parser.add_argument("--data-dir", type=Path, default=Path("var"))
    parser.add_argument("--kafka-port", type=int, default=9092)
    parser.add_argument("--smtp-port", type=int, default=8025, help="outgoing mail's catcher")
    parser.add_argument(
        "--mail-port", type=int, default=2525, help="the desk's SMTP listener (mail in)"
    )
    parser.add_argument("--gateway-port", type=int, default=8080)
    args = parser.parse_args(argv)

    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if not bootstrap:
        broker = embedded_broker(args.kafka_port, args.data_dir)
        broker.start()
        bootstrap = broker.bootstrap
    sink = MailSink(args.smtp_port, args.data_dir / "mail")
    sink.start()
    config = StackConfig(
        bootstrap=bootstrap,
        data_dir=args.data_dir,
        database_url=os.environ.get("DATABASE_URL", ""),
        smtp_port=args.smtp_port,
        mail_port=args.mail_port,
        gateway_port=args.gateway_port,
        gateway_tokens=os.environ.get("GATEWAY_TOKENS", DEMO_TOKENS),
        people_file=people_file(args.data_dir),
    )
    stack = Stack(config)
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        stack.start()
        stack.wait_ready()
        write_endpoints(config)
        if args.demo:
            register_demo_agreements(f"http://127.0.0.1:{args.gateway_port}", "admin-token")
        print_welcome(config, bootstrap)
        supervisor = Supervisor(stack)
        while not stopping:
            supervisor.check()
            time.sleep(0.5)
    finally:
        stack.stop()
        sink.stop()
        if broker is not None:
            broker.stop()


def people_file(data_dir: Path) -> Path:
    """GATEWAY_PEOPLE_FILE, or var/people.toml (made with an explanation but no one in it,
    the first time): people added to it while the stack runs get in at once."""
    given = os.environ.get("GATEWAY_PEOPLE_FILE", "")
    if given:
        return Path(given)
    path = data_dir / "people.toml"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(PEOPLE_FILE_HEADER, encoding="utf-8")
    return path.resolve()


def print_welcome(config: StackConfig, bootstrap: str) -> None:
    print(
        f"servicedesk is up: gateway http://127.0.0.1:{config.gateway_port} (OpenAPI at /docs, "
        f"customer portal at /portal), "
        f"Kafka {bootstrap}, mail to the desk ({config.mail_from}) by SMTP to "
        f"127.0.0.1:{config.mail_port}, mail from the desk caught at 127.0.0.1:"
        f"{config.smtp_port} (in {config.data_dir}/mail), logs in {config.data_dir}/logs. "
        "Services: " + ", ".join(f"{s} :{config.port_of(s)}" for s in SERVICES) + ". Ctrl-C stops.",
        flush=True,
    )
    if config.gateway_tokens == DEMO_TOKENS:
        print(
            "Demo tokens (Authorization: Bearer <token>): agent-token (agent, group "
            "first-line), admin-token (admin), customer-token (customer of "
            f"{DEMO_ORGANISATION}, agreement {FIRST_AGREEMENT_ID}, billing contact).",
            flush=True,
        )
    print(
        f"People with hashed tokens: {config.people_file} (add with `python -m "
        "servicedesk_gateway.people new-token --help`; read again when it changes).",
        flush=True,
    )


def write_endpoints(config: StackConfig) -> None:
    """Where each service answers (`servicedesk status` reads it from the data dir)."""
    where = {s: f"http://127.0.0.1:{config.port_of(s)}" for s in SERVICES}
    (config.data_dir / ENDPOINTS_FILE).write_text(json.dumps(where, indent=2) + "\n")


if __name__ == "__main__":
    main()
