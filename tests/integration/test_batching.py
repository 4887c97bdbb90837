"""Batch delivery (streams.batching) on the real broker: every event of a burst is handled
once, the group's committed offsets reach the end of every partition, and a restarted
worker continues from them with its tables restored from the changelogs (counts exact:
nothing re-processed, nothing lost)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.devtools.synthetic import health_events
from tests.conftest import Stack, wait_until

pytestmark = pytest.mark.integration

EVENTS = 6000


def _events_by_scope(worker) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {scope: s["events"] for scope, s in worker.get("/api/scopes")["scopes"].items()}


def _committed_lag(stack: Stack, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        topic = stack.topic("health.events")
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions],
                                       timeout=10)
        lag = 0
        for tp in committed:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


def test_a_burst_is_handled_once_committed_and_restored_exactly(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(max_poll_records=500)
    start_ms = int(time.time() * 1000) - 320_000  # 50 ms apart: the last 20 s ago
    events = list(health_events(EVENTS, markets=300, bots=20, start_ms=start_ms, seed=11))
    expected: dict[str, int] = {}
    for event in events:
        expected[event.scope] = expected.get(event.scope, 0) + 1
    stack.send_records("health.events", events)

    wait_until(lambda: _events_by_scope(worker) == expected, 90,
               what=f"all {EVENTS} events counted once per scope")
    group = f"{stack.prefix}polymon"
    wait_until(lambda: _committed_lag(stack, group) == 0, 30,
               what="committed offsets at the end of every partition")

    worker.stop()
    restarted = stack.start_worker(worker_id="worker-2")
    # the counts come back from the changelog, and nothing is handled a second time
    wait_until(lambda: _events_by_scope(restarted) == expected, 60,
               what="restored counts equal to the sent ones")
    time.sleep(2.0)
    assert _events_by_scope(restarted) == expected
