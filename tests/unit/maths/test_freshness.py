from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.maths.freshness import (
    DEFAULT_STALENESS_THRESHOLDS_S,
    Arrival,
    GapCount,
    GapTracker,
    count_gaps,
    is_feed_stale,
    is_stale,
    stale_duration,
)

# --- staleness ------------------------------------------------------------------------


def test_default_thresholds() -> None:
    assert dict(DEFAULT_STALENESS_THRESHOLDS_S) == {
        "book": 2.0,
        "registry": 10.0,
        "model": 86_400.0,
    }
    with pytest.raises(TypeError):
        DEFAULT_STALENESS_THRESHOLDS_S["book"] = 5.0  # type: ignore[index]


def test_seed_example_book_4600ms_is_stale() -> None:
    now = 1_700_000_004.600
    last_update = 1_700_000_000.000
    duration = stale_duration(now, last_update)
    assert duration == pytest.approx(4.6)
    assert is_stale(duration, DEFAULT_STALENESS_THRESHOLDS_S["book"]) is True
    assert is_feed_stale("book", now, last_update) is True
    assert is_feed_stale("registry", now, last_update) is False


def test_threshold_is_strictly_greater() -> None:
    assert is_stale(2.0, 2.0) is False
    assert is_stale(2.0000001, 2.0) is True
    assert is_stale(0.0, 0.0) is False


def test_never_seen_feed_is_infinitely_stale() -> None:
    assert stale_duration(100.0, None) == math.inf
    assert is_stale(math.inf, 86_400.0) is True
    assert is_feed_stale("model", 100.0, None) is True


def test_future_update_from_clock_skew_clamps_to_zero() -> None:
    assert stale_duration(100.0, 100.5) == 0.0
    assert is_feed_stale("book", 100.0, 100.5) is False


@pytest.mark.parametrize(
    ("now", "last_update", "message"),
    [
        (math.nan, 1.0, r"now must not be NaN"),
        (1.0, math.nan, r"last_update must not be NaN"),
        (math.inf, 1.0, r"now must be finite"),
        (1.0, -math.inf, r"last_update must be finite"),
        ("1", 1.0, r"now must be a real number of seconds"),
    ],
)
def test_bad_times_raise(now: float, last_update: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stale_duration(now, last_update)


@pytest.mark.parametrize(
    ("duration", "threshold", "message"),
    [
        (math.nan, 2.0, r"stale_duration_s must not be NaN"),
        (-1.0, 2.0, r"stale_duration_s must be non-negative, got -1.0"),
        (1.0, math.nan, r"threshold_s must not be NaN"),
        (1.0, -2.0, r"threshold_s must be non-negative, got -2.0"),
        (1.0, math.inf, r"threshold_s must be finite"),
    ],
)
def test_bad_staleness_inputs_raise(duration: float, threshold: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        is_stale(duration, threshold)


def test_unknown_feed_kind_raises() -> None:
    with pytest.raises(ValueError, match=r"no staleness threshold for feed kind 'trades'"):
        is_feed_stale("trades", 1.0, 0.0)


# --- count_gaps -----------------------------------------------------------------------


def test_in_order_sequence_has_no_gaps() -> None:
    assert count_gaps(np.arange(10, 20)) == GapCount(
        missing=0, duplicates=0, reorders=0, first=10, last=19, count=10
    )


def test_gaps_duplicates_and_reorders_are_told_apart() -> None:
    # 4 never arrives; 3 arrives twice (second is a duplicate); 3 and 6 arrive late.
    result = count_gaps([1, 2, 5, 3, 3, 7, 6])
    assert result == GapCount(missing=1, duplicates=1, reorders=2, first=1, last=7, count=7)


def test_late_arrival_fills_the_gap() -> None:
    assert count_gaps([1, 3, 2]).missing == 0
    assert count_gaps([1, 3, 2]).reorders == 1


def test_duplicate_of_late_arrival_is_a_duplicate_not_a_reorder() -> None:
    result = count_gaps([1, 3, 2, 2])
    assert (result.reorders, result.duplicates) == (1, 1)


def test_number_below_first_arrival_is_a_reorder_and_widens_the_span() -> None:
    result = count_gaps([5, 6, 2])
    assert result == GapCount(missing=2, duplicates=0, reorders=1, first=2, last=6, count=3)


def test_empty_window() -> None:
    assert count_gaps([]) == GapCount(0, 0, 0, None, None, 0)
    assert count_gaps(np.array([], dtype=np.int64)).count == 0


@pytest.mark.parametrize(
    ("numbers", "message"),
    [
        ([1, -2, 3], r"sequence numbers must be non-negative, got -2 at position 1"),
        ([1.0, 2.0], r"sequence_numbers must be integers, got dtype float64"),
        ([True, False], r"sequence_numbers must be integers, got dtype bool"),
        ([[1, 2]], r"sequence_numbers must be one-dimensional, got shape \(1, 2\)"),
    ],
)
def test_bad_sequence_numbers_raise(numbers: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        count_gaps(numbers)


def test_unsigned_and_large_numbers() -> None:
    big = 2**62
    assert count_gaps(np.array([big, big + 2], dtype=np.uint64)).missing == 1


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(min_value=2, max_value=500),
    start=st.integers(min_value=0, max_value=10**12),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    data=st.data(),
)
def test_permutation_with_k_removed_finds_k_missing(
    size: int, start: int, seed: int, data: st.DataObject
) -> None:
    rng = np.random.default_rng(seed)
    numbers = np.arange(start, start + size)
    # Keep both ends so the span is known; remove k interior numbers.
    k = data.draw(st.integers(min_value=0, max_value=size - 2))
    removed = rng.choice(np.arange(1, size - 1), size=k, replace=False) if k else []
    kept = np.delete(numbers, removed)
    arrived = rng.permutation(kept)
    result = count_gaps(arrived)
    assert result.missing == k
    assert result.duplicates == 0
    assert (result.first, result.last, result.count) == (start, start + size - 1, size - k)


@settings(max_examples=100, deadline=None)
@given(numbers=st.lists(st.integers(min_value=0, max_value=60), max_size=80))
def test_count_gaps_matches_a_naive_loop(numbers: list[int]) -> None:
    seen: set[int] = set()
    highest = -1
    duplicates = reorders = 0
    for number in numbers:
        if number in seen:
            duplicates += 1
        elif number < highest:
            reorders += 1
        seen.add(number)
        highest = max(highest, number)
    missing = (max(seen) - min(seen) + 1 - len(seen)) if seen else 0
    result = count_gaps(numbers)
    assert (result.missing, result.duplicates, result.reorders) == (missing, duplicates, reorders)


# --- GapTracker -----------------------------------------------------------------------


def test_tracker_classifies_each_arrival() -> None:
    tracker = GapTracker()
    arrivals = [tracker.observe(n) for n in [1, 2, 5, 3, 3, 7, 6, 0]]
    assert arrivals == [
        Arrival.IN_ORDER,
        Arrival.IN_ORDER,
        Arrival.GAP,
        Arrival.REORDER,
        Arrival.DUPLICATE,
        Arrival.GAP,
        Arrival.REORDER,
        Arrival.REORDER,
    ]
    assert arrivals[2] == "gap"
    assert tracker.snapshot() == count_gaps([1, 2, 5, 3, 3, 7, 6, 0])
    assert tracker.outstanding == {4}


def test_tracker_memory_is_bounded_and_overflow_counts_as_lost() -> None:
    tracker = GapTracker(max_outstanding=100)
    tracker.observe(0)
    assert tracker.observe(1_000_000) == Arrival.GAP
    assert len(tracker.outstanding) == 100
    assert tracker.lost == 999_999 - 100
    assert tracker.missing == 999_999
    assert min(tracker.outstanding) == 999_900
    # A late arrival still remembered is a reorder; one already forgotten is expired.
    assert tracker.observe(999_950) == Arrival.REORDER
    assert tracker.observe(10) == Arrival.EXPIRED
    assert tracker.observe(0) == Arrival.EXPIRED
    assert (tracker.reorders, tracker.expired, tracker.duplicates) == (1, 2, 0)


def test_tracker_evicts_oldest_outstanding_first() -> None:
    tracker = GapTracker(max_outstanding=3)
    for number in [0, 2, 4, 6]:  # 1, 3, 5 outstanding
        tracker.observe(number)
    assert tracker.outstanding == {1, 3, 5}
    tracker.observe(8)  # 7 joins, 1 is forgotten
    assert tracker.outstanding == {3, 5, 7}
    assert tracker.lost == 1
    assert tracker.observe(1) == Arrival.EXPIRED
    assert tracker.observe(3) == Arrival.REORDER


def test_tracker_bounds_downward_extension() -> None:
    tracker = GapTracker(max_outstanding=5)
    tracker.observe(1_000)
    assert tracker.observe(0) == Arrival.REORDER
    assert tracker.outstanding == {995, 996, 997, 998, 999}
    assert tracker.lost == 994
    assert tracker.missing == 999


def test_tracker_rejects_bad_numbers() -> None:
    tracker = GapTracker()
    with pytest.raises(ValueError, match=r"sequence numbers must be non-negative, got -1"):
        tracker.observe(-1)
    with pytest.raises(ValueError, match=r"sequence number must be an int, got 1.5"):
        tracker.observe(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_outstanding must be a non-negative int"):
        GapTracker(max_outstanding=-1)


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=300),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    drop_fraction=st.floats(min_value=0.0, max_value=0.5),
    duplicate_fraction=st.floats(min_value=0.0, max_value=0.3),
)
def test_tracker_agrees_with_count_gaps_when_memory_suffices(
    size: int, seed: int, drop_fraction: float, duplicate_fraction: float
) -> None:
    rng = np.random.default_rng(seed)
    numbers = np.arange(size)
    numbers = numbers[rng.random(size) >= drop_fraction]
    duplicates = (
        rng.choice(numbers, size=int(duplicate_fraction * numbers.size)) if numbers.size else []
    )
    arrived = rng.permutation(np.concatenate([numbers, duplicates]).astype(np.int64))
    tracker = GapTracker(max_outstanding=size)
    for number in arrived:
        tracker.observe(int(number))
    assert tracker.lost == 0
    assert tracker.snapshot() == count_gaps(arrived)
