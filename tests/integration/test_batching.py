"""Batch delivery (streams.framework.batch_consumer) on the real broker: every event of a
burst is handled once, the group's committed offsets reach the end of every partition,
and a restarted worker continues from them with its tables restored from the changelogs
(counts exact: nothing re-processed, nothing lost). With the framework patches off, the
same pipeline runs through Faust's own per-message path."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.devtools.synthetic import health_events
from streams.records import HealthEvent, HealthEventKind
from tests.conftest import Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.compiled_twin]

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


def test_with_the_framework_patches_off_the_same_pipeline_runs_through_fausts_own_path(
        stack: Stack) -> None:
    """POLYMON_FRAMEWORK_PATCHES=false: Faust agents hand the same handlers one record at
    a time; every event is still counted once, garbage is dead-lettered with its bytes,
    offsets are committed, and a stale book still pauses its market."""
    stack.create_topics()
    worker = stack.start_worker(framework_patches=False, evaluation_interval_s=0.1,
                                stale_hold_down_s=1.0)
    now = int(time.time() * 1000)
    events = list(health_events(600, markets=30, bots=5, start_ms=now - 30_000, seed=5))
    expected: dict[str, int] = {}
    for event in events:
        expected[event.scope] = expected.get(event.scope, 0) + 1
    stack.send_records("health.events", events)
    stack.send_raw("health.events", [(b"market:junk", b"not avro")])
    # the book that stops: its last update now, then nothing
    stack.send_records("health.events", [HealthEvent(
        event_id=uuid.uuid4().hex, scope="market:stops", kind=HealthEventKind.DATA_UPDATE,
        source="test-feed", event_time_ms=int(time.time() * 1000), feed="book", sequence=1)])
    expected["market:stops"] = 1

    wait_until(lambda: _events_by_scope(worker) == expected, 90,
               what="every event counted once through Faust's per-message path")
    letters = wait_until(lambda: stack.read_records("monitor.deadletter", idle_timeout_s=0.5),
                         30, what="the garbage dead-lettered")
    assert [(letter.value, letter.stage.value) for letter in letters] == [
        (b"not avro", "DECODE")]
    paused = wait_until(lambda: [pause for pause in stack.read_records(
        "control.pauses", idle_timeout_s=0.5) if pause.scope == "market:stops"
        and pause.paused], 30, what="the stopped book's market paused")
    assert paused[0].reason_code == "RISK_STALE_BOOK"
    wait_until(lambda: _committed_lag(stack, f"{stack.prefix}polymon") == 0, 30,
               what="committed offsets at the end of every partition")
    log = worker.log_path.read_text(errors="replace")
    assert "framework patches off" in log  # not the batching consumer
