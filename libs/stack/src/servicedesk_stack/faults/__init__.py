"""The fault suite's driver (issue 8): the whole stack as processes on PostgreSQL, a stream
of tickets while services are killed, the stores' connections terminated and the embedded
broker restarted; then hostile input. It counts what happened from the stores, the topics
and the mailbox, and states each invariant as a finding.

Two entry points use it: `bench/fault_suite.py` (long, prints the numbers) and
`tests/test_fault_suite.py` (short, asserts the invariants).

What the embedded broker loses: it keeps messages in memory, so a request another system
published and intake had not consumed when the broker died is gone (a real Kafka keeps
it). That loss is reported apart and must stay within the requests in flight at that
instant; anything else missing is a failure.
"""

from servicedesk_stack.faults.counting import Finding, StormReport, Tally
from servicedesk_stack.faults.harness import Harness, SuiteConfig
from servicedesk_stack.faults.phases import Results, run

__all__ = ["Finding", "Harness", "Results", "StormReport", "SuiteConfig", "Tally", "run"]
