"""Windowed healthy/total counts as time buckets in a JSON-able dict."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.maths import windows
from streams.maths.windows import COARSE_FACTOR, FINE_BUCKETS_KEPT

B = 1_000  # bucket size, ms
T0 = 1_789_999_980_000  # a multiple of B * COARSE_FACTOR


def counts_of(events: list[tuple[int, bool]], bucket_ms: int = B) -> dict:
    counts = windows.new_counts()
    for time_ms, healthy in events:
        windows.add(counts, time_ms, healthy, bucket_ms)
    return counts


def test_add_counts_each_probe_in_its_fine_and_coarse_bucket() -> None:
    counts = counts_of([(T0 + 1_500, True), (T0 + 1_999, False), (T0 + 2_000, True),
                        (T0 + 60_000, False)])
    assert counts["fine"] == {str(T0 + 1_000): [1, 2], str(T0 + 2_000): [1, 1],
                              str(T0 + 60_000): [0, 1]}
    assert counts["coarse"] == {str(T0): [2, 3], str(T0 + 60_000): [0, 1]}
    assert json.loads(json.dumps(counts)) == counts


def test_window_sums_only_the_buckets_overlapping_the_window() -> None:
    counts = counts_of([
        (T0 + 7_900, False),  # bucket 7 s: ends at 8 s, before the window
        (T0 + 8_100, True),  # bucket 8 s: overlaps [8.5 s, 10.5 s]
        (T0 + 9_000, False),
        (T0 + 10_200, True),
        (T0 + 10_900, True),  # same bucket as now: counted
        (T0 + 11_000, False),  # bucket starts after now: not counted
    ])
    assert windows.window(counts, T0 + 10_500, 2_000, B) == (3, 4)
    assert windows.window(counts, T0 + 10_500, 3_000, B) == (3, 5)
    assert windows.window(counts, T0 + 11_000, 2_000, B) == (2, 4)
    assert windows.window(counts, T0 + 6_000, 1_000, B) == (0, 0)


def test_window_of_empty_counts_is_zero() -> None:
    assert windows.window(windows.new_counts(), T0, 10_000, B) == (0, 0)


def _overlaps(time_ms: int, now_ms: int, window_ms: int, size: int) -> bool:
    start = time_ms - time_ms % size
    return start + size > now_ms - window_ms and start <= now_ms


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(st.tuples(st.integers(0, 30_000), st.booleans()), max_size=60),
    now=st.integers(0, 30_000),
    window_ms=st.integers(1, 20_000),
)
def test_window_equals_the_buckets_overlapping_now_minus_window_to_now(
        events: list[tuple[int, bool]], now: int, window_ms: int) -> None:
    counts = counts_of([(T0 + t, ok) for t, ok in events])
    healthy, total = windows.window(counts, T0 + now, window_ms, B)
    inside = [ok for t, ok in events if _overlaps(t, now, window_ms, B)]
    assert (healthy, total) == (sum(inside), len(inside))
    # Everything in [now - window, now] is counted; nothing from a bucket beyond it.
    assert total >= sum(1 for t, _ in events if now - window_ms <= t <= now)
    assert total <= sum(1 for t, _ in events if now - window_ms - B < t < now + B)


def test_long_windows_use_coarse_buckets_and_count_everything_in_range() -> None:
    fine_reach = B * FINE_BUCKETS_KEPT
    hour = 3_600_000
    now = T0 + 2 * hour
    # One probe every 10 s over the last hour, one unhealthy in ten, and one long before.
    events = [(now - n * 10_000, n % 10 != 0) for n in range(360)]
    counts = counts_of([*events, (now - 3 * hour, False)])
    windows.prune(counts, now, hour, B)
    assert hour > fine_reach
    healthy, total = windows.window(counts, now, hour, B)
    assert total >= 360
    assert total < 360 + COARSE_FACTOR  # at most one extra coarse bucket of 10 s probes
    assert healthy >= 324
    # The probe three hours ago is not in any one-hour window.
    assert total - healthy == 36


def test_at_the_fine_reach_fine_buckets_are_used() -> None:
    fine_reach = B * FINE_BUCKETS_KEPT
    now = T0 + fine_reach + 30_000
    # Just outside the fine window: counted only at coarse resolution.
    counts = counts_of([(now - fine_reach - 2 * B, False)])
    assert windows.window(counts, now, fine_reach, B) == (0, 0)
    assert windows.window(counts, now, fine_reach + B, B) == (0, 1)


def test_prune_drops_buckets_no_window_can_reach() -> None:
    longest = 600_000  # 10 min: beyond the 6 min of fine buckets
    now = T0 + 3_600_000
    events = [(t, True) for t in range(T0, now + 1, 5_000)]
    counts = counts_of(events)
    windows.prune(counts, now, longest, B)
    fine_oldest = now - B * FINE_BUCKETS_KEPT - B
    coarse_oldest = now - longest - B * COARSE_FACTOR
    assert all(int(start) >= fine_oldest for start in counts["fine"])
    assert all(int(start) >= coarse_oldest for start in counts["coarse"])
    # The reachable buckets are kept.
    kept_fine = {str(t - t % B) for t, _ in events if t >= fine_oldest}
    kept_coarse = {str(t - t % (B * COARSE_FACTOR)) for t, _ in events
                   if t - t % (B * COARSE_FACTOR) >= coarse_oldest}
    assert set(counts["fine"]) == kept_fine
    assert set(counts["coarse"]) == kept_coarse


@settings(max_examples=100, deadline=None)
@given(
    events=st.lists(st.tuples(st.integers(0, 2_000_000), st.booleans()), max_size=50),
    now=st.integers(0, 2_000_000),
    longest_s=st.integers(1, 1_200),
    window_s=st.integers(1, 1_200),
)
def test_prune_never_changes_a_reachable_window(events: list[tuple[int, bool]], now: int,
                                                longest_s: int, window_s: int) -> None:
    window_ms = min(window_s, longest_s) * 1_000
    counts = counts_of([(T0 + t, ok) for t, ok in events])
    before = windows.window(counts, T0 + now, window_ms, B)
    windows.prune(counts, T0 + now, longest_s * 1_000, B)
    assert windows.window(counts, T0 + now, window_ms, B) == before


@pytest.mark.parametrize("bucket_ms", [0, -1, -60_000])
def test_bad_bucket_size_is_an_error(bucket_ms: int) -> None:
    counts = windows.new_counts()
    with pytest.raises(ValueError, match=f"bucket_ms must be positive, got {bucket_ms}"):
        windows.add(counts, T0, True, bucket_ms)
    assert counts == windows.new_counts()
