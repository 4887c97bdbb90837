"""A flood of garbage mixed with valid events, on the real broker and a real worker:
every valid event is processed, every bad one lands in the dead-letter topic with
its bytes and the reason, and the worker keeps going."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from streams.devtools.bench import COUNTERS_SCRAPE
from streams.devtools.synthetic import garbage, health_events
from streams.records import DeadLetterStage, HealthEvent
from tests.conftest import CODECS, Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.compiled_twin]

VALID = 1500
GARBAGE = 1200
INVALID = 300  # well-formed Avro, invalid content


def _processed(worker) -> int:
    return sum(s["events"] for s in worker.get("/api/scopes")["scopes"].values())


def test_garbage_flood_loses_nothing(stack: Stack) -> None:
    start_ms = int(time.time() * 1000) - 60_000  # event times the clock accepts
    stack.create_topics()
    worker = stack.start_worker()
    codec = CODECS["HealthEvent"]

    valid = list(health_events(VALID, markets=40, bots=10, start_ms=start_ms, seed=7))
    bad_bytes = list(garbage(GARBAGE, seed=7))
    wrongs = ({"scope": "planet:x"}, {"sequence": -1, "kind": "DATA_UPDATE", "feed": "book"},
              {"source": "s" * 129})  # the last over the bound of every name from outside
    invalid = [codec.encode(r.to_avro() | wrongs[i % len(wrongs)])
               for i, r in enumerate(health_events(INVALID, start_ms=start_ms, seed=8))]
    messages = [(r.scope.encode(), codec.encode_record(r)) for r in valid]
    messages += [(b"market:m1", b) for b in bad_bytes] + [(b"market:m2", b) for b in invalid]
    random.Random(7).shuffle(messages)
    stack.send_raw("health.events", messages)

    wait_until(lambda: _processed(worker) == VALID, 60, what=f"{VALID} processed events")
    letters = wait_until(
        lambda: (got := stack.read_records("monitor.deadletter", idle_timeout_s=1.0))
        and len(got) >= GARBAGE + INVALID and got,
        60, what="every bad message in the dead-letter topic",
    )

    assert len(letters) == GARBAGE + INVALID
    assert Counter(letter.value for letter in letters) == Counter(bad_bytes + invalid)
    assert {letter.source_topic for letter in letters} == {stack.topic("health.events")}
    origins = {(letter.source_partition, letter.source_offset) for letter in letters}
    assert len(origins) == len(letters), "each dead letter names its own source offset"
    stages = Counter(letter.stage for letter in letters)
    assert stages == {DeadLetterStage.DECODE: GARBAGE, DeadLetterStage.VALIDATE: INVALID}
    over = [letter for letter in letters if "at most 128 characters" in letter.error]
    assert len(over) == INVALID // len(wrongs) and all("source" in o.error for o in over)
    assert all(letter.error for letter in letters)
    assert any("unknown scope kind 'planet'" in letter.error for letter in letters)

    # Exactly the valid events were counted, per scope.
    expected = Counter(r.scope for r in valid)
    scopes = worker.get("/api/scopes")["scopes"]
    assert {scope: s["events"] for scope, s in scopes.items()} == dict(expected)

    # Metrics agree, and the worker is alive and still processing.
    metrics = worker.get_text("/metrics")
    assert f'polymon_dead_letters_total{{stage="DECODE",topic="{stack.topic("health.events")}"}} '\
        f"{float(GARBAGE)}" in metrics
    # A scrape of the named live counters only (Prometheus' name[]): no operator views.
    counters = worker.get_text(COUNTERS_SCRAPE)
    assert f'polymon_dead_letters_total{{stage="DECODE",topic="{stack.topic("health.events")}"}} '\
        f"{float(GARBAGE)}" in counters
    assert "polymon_events_processed_total{" in counters
    assert "polymon_feed_staleness_seconds" in metrics
    assert "polymon_feed_staleness_seconds" not in counters
    late = HealthEvent(event_id="late", scope="market:late", kind="HEARTBEAT", source="t",
                       event_time_ms=start_ms)
    stack.send_records("health.events", [late])
    wait_until(lambda: "market:late" in worker.get("/api/scopes")["scopes"], 30,
               what="a new event after the flood")
    assert worker.exit_code is None


def test_a_message_larger_than_a_producer_batch_is_dead_lettered_whole(stack: Stack) -> None:
    """Dead letters leave in record batches (256 KiB); one that does not fit in a batch
    goes on its own, with every byte."""
    stack.create_topics()
    worker = stack.start_worker()
    huge = b"\xff" + bytes(random.Random(3).randrange(256) for _ in range(400_000))
    small = b"\x00\x00"
    stack.send_raw("health.events", [(b"market:big", small), (b"market:big", huge),
                                     (b"market:big", small)])
    letters = wait_until(lambda: len(got := stack.read_records(
        "monitor.deadletter", idle_timeout_s=1.0)) >= 3 and got, 30,
        what="three dead letters")
    assert [letter.value for letter in letters] == [small, huge, small]
    assert [letter.source_offset for letter in letters] == [0, 1, 2]
    assert worker.exit_code is None
