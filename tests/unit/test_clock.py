"""The decision clock: wall time live, the event-time watermark in replay."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.clock import EventTimeClock, WallClock, make_clock


def test_wall_clock_is_now_in_milliseconds() -> None:
    clock = WallClock()
    before = int(time.time() * 1000)
    now = clock.now_ms()
    after = int(time.time() * 1000)
    assert isinstance(now, int)
    assert before <= now <= after


def test_wall_clock_ignores_event_times() -> None:
    clock = WallClock()
    clock.observe(int(time.time() * 1000) + 10**9)
    assert abs(clock.now_ms() - time.time() * 1000) < 60_000


def test_event_time_clock_starts_at_its_start() -> None:
    assert EventTimeClock().now_ms() == 0
    assert EventTimeClock(start_ms=1_790_000_000_000).now_ms() == 1_790_000_000_000


def test_event_time_clock_watermark_never_moves_back() -> None:
    clock = EventTimeClock()
    clock.observe(1_000)
    assert clock.now_ms() == 1_000
    clock.observe(500)
    assert clock.now_ms() == 1_000
    clock.observe(2_500)
    assert clock.now_ms() == 2_500
    clock = EventTimeClock(start_ms=10_000)
    clock.observe(9_999)
    assert clock.now_ms() == 10_000


@given(st.integers(0, 2**40), st.lists(st.integers(0, 2**41)))
def test_the_watermark_is_the_running_maximum(start: int, times: list[int]) -> None:
    clock = EventTimeClock(start_ms=start)
    previous = clock.now_ms()
    for n, event_time in enumerate(times):
        clock.observe(event_time)
        assert clock.now_ms() >= previous
        assert clock.now_ms() == max(start, *times[: n + 1])
        previous = clock.now_ms()


def test_make_clock_by_mode() -> None:
    assert isinstance(make_clock("wall"), WallClock)
    event = make_clock("event")
    assert isinstance(event, EventTimeClock)
    assert event.now_ms() == 0
    assert make_clock("event") is not event  # a fresh clock each time


@pytest.mark.parametrize("mode", ["bogus", "", "Wall", "EVENT"])
def test_make_clock_rejects_an_unknown_mode_by_name(mode: str) -> None:
    with pytest.raises(ValueError, match=f"unknown clock mode '{mode}'") as raised:
        make_clock(mode)
    assert "'wall' or 'event'" in str(raised.value)


def test_event_clock_is_the_low_watermark_of_its_sources() -> None:
    clock = EventTimeClock()
    clock.observe(1_000, "health.events/0")
    clock.observe(5_000, "health.events/1")
    assert clock.now_ms() == 1_000, "partition 0 has not reached 5 s yet"
    clock.observe(3_000, "health.events/0")
    assert clock.now_ms() == 3_000
    clock.observe(9_000)  # a sourceless event does not outrun the sources
    assert clock.now_ms() == 3_000
    clock.observe(2_000, "health.events/0")  # late event: never moves back
    assert clock.now_ms() == 3_000
