"""Broker behaviour the consumers' pacing depends on, measured on the embedded Tansu broker.

1. Fetch wait: how long a message produced at a random moment waits before a consumer
   that is idling in a fetch (`fetch_max_wait_ms`) receives it. Kafka answers a waiting
   fetch as soon as data arrives; Tansu was measured holding it for much of the wait, so
   the consumers' waits (`KAFKA_FETCH_WAIT_MS`, `KAFKA_IDLE_FETCH_WAIT_MS`) are paid as
   latency at each hop.
2. Group failover: how long a new member of a consumer group waits for its partitions
   after the old member was killed with SIGKILL (it never left the group).

    .venv/bin/python -u -m bench.broker_fetch_wait [--sends 12] [--waits 50,1000,3000]
        [--failovers 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import subprocess
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import NewTopic

from servicedesk_runtime.kafka import connect_admin
from servicedesk_runtime.tansu import EmbeddedBroker

GROUP_MEMBER = """
import asyncio, sys, time
from aiokafka import AIOKafkaConsumer
async def main():
    consumer = AIOKafkaConsumer(
        "failover", bootstrap_servers=sys.argv[1], group_id="failover",
        enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=1500)
    await consumer.start()
    while True:
        await consumer.getmany(timeout_ms=500)
        if consumer.assignment():
            print("assigned", time.time(), flush=True)
asyncio.run(main())
"""


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = await connect_admin(bootstrap)
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def fetch_latencies(bootstrap: str, wait_ms: int, sends: int) -> list[float]:
    """Milliseconds from `send_and_wait` to the consumer's receipt, for `sends` messages
    produced at random moments of an idle consumer's fetch."""
    topic = f"fetch-wait-{wait_ms}"
    await create_topic(bootstrap, topic, 1)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms, group_id=None
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    latencies = []
    try:
        for _ in range(sends):
            await asyncio.sleep(random.uniform(0.5, 3.0))  # a random phase of the wait
            sent = time.monotonic()
            await producer.send_and_wait(topic, b"x")
            while not await consumer.getmany(timeout_ms=100):
                pass
            latencies.append((time.monotonic() - sent) * 1000)
    finally:
        await consumer.stop()
        await producer.stop()
    return sorted(latencies)


def failover_seconds(bootstrap: str, rounds: int) -> list[float]:
    """Seconds from SIGKILL of the group's only member to a new member's assignment."""
    asyncio.run(create_topic(bootstrap, "failover", 4))
    member = subprocess.Popen(
        [sys.executable, "-c", GROUP_MEMBER, bootstrap], stdout=subprocess.PIPE, text=True
    )
    assert member.stdout is not None
    member.stdout.readline()
    waits = []
    for _ in range(rounds):
        time.sleep(random.uniform(0, 8))
        member.send_signal(signal.SIGKILL)
        member.wait()
        killed = time.time()
        member = subprocess.Popen(
            [sys.executable, "-c", GROUP_MEMBER, bootstrap], stdout=subprocess.PIPE, text=True
        )
        assert member.stdout is not None
        waits.append(float(member.stdout.readline().split()[1]) - killed)
    member.kill()
    member.wait()
    return waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=12)
    parser.add_argument("--waits", default="50,1000,3000", help="fetch_max_wait_ms values")
    parser.add_argument("--failovers", type=int, default=5)
    args = parser.parse_args()
    with EmbeddedBroker() as broker:
        for wait_ms in (int(w) for w in args.waits.split(",")):
            got = asyncio.run(fetch_latencies(broker.bootstrap, wait_ms, args.sends))
            print(
                f"fetch_max_wait {wait_ms:>5} ms: delivered after p50 {got[len(got) // 2]:.0f} ms,"
                f" min {got[0]:.0f}, max {got[-1]:.0f} ({len(got)} sends)"
            )
        if args.failovers:
            waits = sorted(failover_seconds(broker.bootstrap, args.failovers))
            print(
                f"group failover after SIGKILL (session 6 s): min {waits[0]:.1f} s,"
                f" max {waits[-1]:.1f} s ({len(waits)} rounds)"
            )


if __name__ == "__main__":
    main()
