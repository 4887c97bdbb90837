"""The benchmark's pure helpers: load pacing, percentiles, timing, the quixstreams peer's
staleness check."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest

from streams.devtools.bench import BenchError, _cpu_seconds, _owed, _percentile, _time_until_done
from streams.devtools.bench_quix import track


def test_pacing_owes_what_the_rate_has_accrued() -> None:
    assert _owed(10_000, 0.0, 0, 2000) == 0
    assert _owed(10_000, 0.05, 0, 2000) == 500
    assert _owed(10_000, 0.10, 500, 2000) == 500


def test_a_late_tick_catches_up_within_the_cap() -> None:
    assert _owed(10_000, 0.12, 500, 2000) == 700  # 20 ms late: the missing 200 go too
    assert _owed(10_000, 1.0, 0, 2000) == 2000  # a long stall is not one huge burst
    assert _owed(10_000, 0.1, 1500, 2000) == 0  # ahead: nothing owed


def test_percentiles_pick_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert _percentile(values, 0.5) == 51.0
    assert _percentile(values, 0.99) == 99.0
    assert _percentile([], 0.5) is None


def test_processing_is_timed_from_the_first_event_to_the_last_change() -> None:
    totals = iter([0, 0, 40, 80, 100, 100, 100])
    cpu_readings = iter([1.0, 1.5, 2.0, 2.5, 3.0, 9.0, 9.0])

    def read() -> tuple[int, int]:
        total = next(totals)
        return total, total

    span = _time_until_done(read, 100, lambda *_: None, "t", timeout_s=10, quiet_s=0.0,
                            poll_s=0.001, cpu=lambda: next(cpu_readings))
    # CPU from the reading with the first event (2.0) to the one with the last (3.0):
    # what the process spends after it is done is not the work's
    assert span.cpu_seconds == 1.0
    assert 0 < span.seconds < 1
    # the 40 events seen at the first reading were processed before the span began
    assert span.events == 60
    assert span.events_per_second == 60 / span.seconds


def test_a_backlog_processed_before_the_first_reading_cannot_be_timed() -> None:
    span = _time_until_done(lambda: (100, 100), 100, lambda *_: None, "t", timeout_s=10,
                            quiet_s=0.0, poll_s=0.001)
    assert span.events == 0
    with pytest.raises(BenchError, match="too few to time"):
        span.timed("pipeline")


def test_cpu_seconds_of_this_process() -> None:
    assert _cpu_seconds(os.getpid()) > 0
    assert math.isnan(_cpu_seconds(2**22 + 12345))  # above pid_max: no such process


class FakeState:
    """quixstreams' State of one scope, as the peer uses it."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def book(at_ms: int, kind: str = "DATA_UPDATE", feed: str | None = "book") -> dict[str, Any]:
    return {"scope": "market:m1", "kind": kind, "feed": feed, "event_time_ms": at_ms}


def test_the_quix_peer_pauses_a_scope_once_when_its_book_goes_stale() -> None:
    state = FakeState()
    assert track(book(1_000), state, now_ms=2_000, threshold_ms=5_000) is None  # fresh
    pause = track(book(1_500), state, now_ms=7_000, threshold_ms=5_000)
    assert pause == {"scope": "market:m1", "paused": True, "reason": "stale data: book",
                     "last_update_ms": 1_500, "detected_ms": 7_000}
    assert track(book(1_600), state, now_ms=8_000, threshold_ms=5_000) is None  # still
    resumed = track(book(7_900), state, now_ms=8_000, threshold_ms=5_000)
    assert resumed is not None and resumed["paused"] is False


def test_only_newer_book_updates_move_the_quix_peers_clock() -> None:
    state = FakeState()
    assert track(book(0, "HEARTBEAT", None), state, 10_000, 5_000) is None  # no book yet
    track(book(9_000), state, 10_000, 5_000)
    assert track(book(1_000), state, 10_000, 5_000) is None  # late: 9 000 still counts
    assert track(book(9_500, feed="model"), state, 10_000, 5_000) is None  # not the book
    assert state.get("book_ms") == 9_000
    assert track(book(0, "HEARTBEAT", None), state, 14_001, 5_000) is not None  # stale
