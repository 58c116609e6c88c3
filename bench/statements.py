"""Statement benchmark: one month with 1,000,000 time entries across 1,000 agreements.

Computes every agreement's statement with billing's statement engine (the pure part of
issuing: grouping per ticket, minimums, models, fees, VAT) and prints seconds and peak
memory. Storing and replaying a ledger is measured by bench/billing_history.py.

    .venv/bin/python bench/statements.py [--entries 1000000] [--agreements 1000]
"""

from __future__ import annotations

import argparse
import random
import resource
import time
import uuid
from datetime import date

from servicedesk_billing.statement import Entry, Prepaid, monthly_statement
from servicedesk_contracts.messages import PlanSelection
from servicedesk_contracts.plans import resolve

MODELS = ("monthly_invoice", "billed_per_use", "retainer", "prepaid_bundle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--agreements", type=int, default=1000)
    args = parser.parse_args()
    random.seed(5)
    started = time.perf_counter()
    agreements = []
    for n in range(args.agreements):
        model = MODELS[n % len(MODELS)]
        selection = PlanSelection.model_validate(
            {
                "customer": f"Customer {n}",
                "plan": "R Medium",
                "extensions": ["integration"],
                "billing": {
                    "model": model,
                    "hourly_rate_cents": 9500,
                    "included_minutes_per_month": 1200 if model == "retainer" else 0,
                },
            }
        )
        agreements.append((uuid.uuid4(), resolve(selection), []))
    per_agreement = args.entries // args.agreements
    for agreement_id, _, entries in agreements:
        tickets = [str(uuid.uuid5(agreement_id, str(t))) for t in range(max(per_agreement // 5, 1))]
        for e in range(per_agreement):
            ticket = random.choice(tickets)
            entries.append(
                Entry(
                    entry_id=f"{e}",
                    ticket_id=ticket,
                    reference=f"SD-{e:06d}",
                    minutes=random.randint(1, 120),
                    billable=random.random() > 0.05,
                    work_type="own_defect" if random.random() < 0.02 else "support",
                    worked_on=date(2026, 11, random.randint(1, 30)),
                    month="2026-11",
                )
            )
    made = time.perf_counter() - started
    started = time.perf_counter()
    total_cents = 0
    for agreement_id, terms, entries in agreements:
        statement = monthly_statement(
            agreement_id, "2026-11", terms, entries, prepaid=Prepaid(balance_before=6000)
        )
        total_cents += statement["total_cents"]
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"entries     {args.entries:,} across {args.agreements:,} agreements built in {made:.1f} s"
    )
    print(
        f"statements  {args.agreements:,} issued in {seconds:.2f} s "
        f"({args.entries / seconds:,.0f} entries/s); sum of totals EUR {total_cents / 100:,.2f}"
    )
    print(f"memory      peak RSS {rss:.0f} MiB, with every entry held in memory")


if __name__ == "__main__":
    main()
