"""Feed freshness: how long since a feed last updated, and gaps in its sequence numbers.

Times are seconds as floats (e.g. Unix epoch seconds or a monotonic clock; only
differences matter). Staleness thresholds are per feed kind, see
:data:`DEFAULT_STALENESS_THRESHOLDS_S`.

Sequence numbers are non-negative integers stamped by the producer and expected to
increase by one per message. :func:`count_gaps` classifies a whole window at once
(vectorised); :class:`GapTracker` does the same incrementally, one message at a time,
with bounded memory for streaming agents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from numbers import Real
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_MAX_OUTSTANDING",
    "DEFAULT_STALENESS_THRESHOLDS_S",
    "Arrival",
    "GapCount",
    "GapTracker",
    "count_gaps",
    "is_feed_stale",
    "is_stale",
    "stale_duration",
]

#: Seconds without an update after which a feed counts as stale, per feed kind:
#: order books tick sub-second, the market registry changes rarely but is polled every
#: few seconds, and models are retrained daily.
DEFAULT_STALENESS_THRESHOLDS_S: Mapping[str, float] = MappingProxyType(
    {"book": 2.0, "registry": 10.0, "model": 86_400.0}
)

#: Default cap on the missing sequence numbers a :class:`GapTracker` remembers.
DEFAULT_MAX_OUTSTANDING = 10_000


def _check_time(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number of seconds, got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    if math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}")


def stale_duration(now: float, last_update: float | None) -> float:
    """Seconds since the feed last updated: ``max(0, now − last_update)``.

    - ``last_update is None`` (the feed was never seen) returns ``math.inf``: a feed that
      never arrived is stale under any threshold.
    - A ``last_update`` in the future (clock skew between hosts) returns ``0.0`` rather
      than a negative staleness.
    - NaN or infinite times raise ``ValueError``.
    """
    _check_time("now", now)
    if last_update is None:
        return math.inf
    _check_time("last_update", last_update)
    return max(0.0, float(now - last_update))


def is_stale(stale_duration_s: float, threshold_s: float) -> bool:
    """Whether a feed is stale: ``stale_duration_s > threshold_s`` (strictly greater).

    A staleness exactly at the threshold is still fresh. ``math.inf`` (never seen) is
    stale. NaN or negative durations and NaN, infinite or negative thresholds raise
    ``ValueError``. Example: a book 4.6 s old against the 2 s book threshold is stale.
    """
    if isinstance(stale_duration_s, bool) or not isinstance(stale_duration_s, Real):
        raise ValueError(f"stale_duration_s must be a real number, got {stale_duration_s!r}")
    if math.isnan(stale_duration_s):
        raise ValueError("stale_duration_s must not be NaN")
    if stale_duration_s < 0:
        raise ValueError(f"stale_duration_s must be non-negative, got {stale_duration_s}")
    _check_time("threshold_s", threshold_s)
    if threshold_s < 0:
        raise ValueError(f"threshold_s must be non-negative, got {threshold_s}")
    return stale_duration_s > threshold_s


def is_feed_stale(
    feed_kind: str,
    now: float,
    last_update: float | None,
    thresholds_s: Mapping[str, float] = DEFAULT_STALENESS_THRESHOLDS_S,
) -> bool:
    """:func:`is_stale` of :func:`stale_duration` against the threshold for ``feed_kind``.

    Raises ``ValueError`` naming the kind when ``thresholds_s`` has no entry for it.
    """
    if feed_kind not in thresholds_s:
        raise ValueError(
            f"no staleness threshold for feed kind {feed_kind!r} (known: {sorted(thresholds_s)})"
        )
    return is_stale(stale_duration(now, last_update), thresholds_s[feed_kind])


@dataclass(frozen=True, slots=True)
class GapCount:
    """Sequence-number accounting for a window of messages.

    Attributes:
        missing: numbers in ``[first, last]`` never received. A late message that fills
            a gap is a reorder, not a missing number.
        duplicates: messages whose number had already been received.
        reorders: messages received for the first time but after a higher number (late
            arrivals).
        first: lowest sequence number received (``None`` for an empty window).
        last: highest sequence number received (``None`` for an empty window).
        count: messages received, duplicates included.
    """

    missing: int
    duplicates: int
    reorders: int
    first: int | None
    last: int | None
    count: int


def _as_sequence_array(sequence_numbers: ArrayLike) -> np.ndarray:
    numbers = np.asarray(sequence_numbers)
    if numbers.ndim != 1:
        raise ValueError(f"sequence_numbers must be one-dimensional, got shape {numbers.shape}")
    if numbers.size == 0:
        return numbers.astype(np.int64)
    if not np.issubdtype(numbers.dtype, np.integer) or numbers.dtype == np.bool_:
        raise ValueError(f"sequence_numbers must be integers, got dtype {numbers.dtype}")
    if np.issubdtype(numbers.dtype, np.signedinteger) and numbers.min() < 0:
        first_negative = int(np.argmax(numbers < 0))
        raise ValueError(
            "sequence numbers must be non-negative, got "
            f"{int(numbers[first_negative])} at position {first_negative}"
        )
    return numbers


def count_gaps(sequence_numbers: ArrayLike) -> GapCount:
    """Classify a window of sequence numbers, in arrival order.

    A number equal to one already received is a duplicate; a number received for the
    first time while a higher one has already been received is a reorder; missing is
    how many numbers between the lowest and the highest received never arrived.
    Numbers below the lowest received are not known to exist and are not counted.

    Vectorised: ``O(n log n)`` with numpy (one sort), suitable for 1e6-message windows.
    An empty window gives all-zero counts and ``first = last = None``. Raises
    ``ValueError`` for non-integer dtypes, negative numbers or a non-1-D input.
    """
    numbers = _as_sequence_array(sequence_numbers)
    count = int(numbers.size)
    if count == 0:
        return GapCount(missing=0, duplicates=0, reorders=0, first=None, last=None, count=0)

    unique_numbers, first_positions = np.unique(numbers, return_index=True)
    is_first_arrival = np.zeros(count, dtype=bool)
    is_first_arrival[first_positions] = True
    # Highest number received strictly before each position (position 0 has none).
    highest_before = np.maximum.accumulate(numbers)[:-1]
    is_late = np.zeros(count, dtype=bool)
    is_late[1:] = numbers[1:] < highest_before

    first = int(unique_numbers[0])
    last = int(unique_numbers[-1])
    return GapCount(
        missing=(last - first + 1) - int(unique_numbers.size),
        duplicates=count - int(unique_numbers.size),
        reorders=int(np.count_nonzero(is_first_arrival & is_late)),
        first=first,
        last=last,
        count=count,
    )


class Arrival(StrEnum):
    """How :meth:`GapTracker.observe` classified one message."""

    IN_ORDER = "in_order"  # the next expected number (or the very first message)
    GAP = "gap"  # jumped ahead: the numbers in between are now missing
    REORDER = "reorder"  # late arrival of a missing number (or below the lowest seen)
    DUPLICATE = "duplicate"  # already received
    EXPIRED = "expired"  # at or below the forgotten horizon: duplicate or late, unknown


@dataclass(slots=True)
class GapTracker:
    """Incremental :func:`count_gaps` for a streaming agent, with bounded memory.

    Keeps the lowest and highest numbers seen and the set of *outstanding* missing
    numbers between them. When more than ``max_outstanding`` numbers are missing, the
    lowest are forgotten and counted in ``lost``; a later message at or below the
    forgotten horizon cannot be told apart (duplicate or late?) and is counted as
    ``expired``. While nothing has been forgotten, :meth:`snapshot` equals
    :func:`count_gaps` over the same messages; afterwards ``missing`` is an upper bound.
    """

    max_outstanding: int = DEFAULT_MAX_OUTSTANDING
    lowest: int | None = None
    highest: int | None = None
    count: int = 0
    duplicates: int = 0
    reorders: int = 0
    expired: int = 0
    lost: int = 0
    outstanding: set[int] = field(default_factory=set, repr=False)  # up to max_outstanding
    forgotten_up_to: int | None = None

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_outstanding, bool)
            or not isinstance(self.max_outstanding, int)
            or self.max_outstanding < 0
        ):
            raise ValueError(
                f"max_outstanding must be a non-negative int, got {self.max_outstanding!r}"
            )

    @property
    def missing(self) -> int:
        """Missing numbers: outstanding plus forgotten (lost)."""
        return len(self.outstanding) + self.lost

    def observe(self, sequence_number: int) -> Arrival:
        """Record one message and classify it."""
        if isinstance(sequence_number, bool) or not isinstance(sequence_number, int | np.integer):
            raise ValueError(f"sequence number must be an int, got {sequence_number!r}")
        number = int(sequence_number)
        if number < 0:
            raise ValueError(f"sequence numbers must be non-negative, got {number}")
        self.count += 1

        if self.highest is None or self.lowest is None:
            self.lowest = self.highest = number
            return Arrival.IN_ORDER
        if number == self.highest + 1:
            self.highest = number
            return Arrival.IN_ORDER
        if number > self.highest:
            gap_low = self.highest + 1
            self.highest = number
            self._add_missing_above(gap_low, number - 1)
            return Arrival.GAP
        if number in self.outstanding:
            self.outstanding.remove(number)
            self.reorders += 1
            return Arrival.REORDER
        if self.forgotten_up_to is not None and number <= self.forgotten_up_to:
            self.expired += 1
            return Arrival.EXPIRED
        if number < self.lowest:
            gap_high = self.lowest - 1
            self.lowest = number
            self._add_missing_below(number + 1, gap_high)
            self.reorders += 1
            return Arrival.REORDER
        self.duplicates += 1
        return Arrival.DUPLICATE

    def _add_missing_above(self, low: int, high: int) -> None:
        """Add ``low..high`` (all above every outstanding number), evicting the lowest."""
        new_count = high - low + 1
        excess = len(self.outstanding) + new_count - self.max_outstanding
        if excess > 0:
            # Forget the lowest: first the old outstanding numbers, then the new range.
            evict_old = min(excess, len(self.outstanding))
            if evict_old:
                ordered = sorted(self.outstanding)
                self.outstanding = set(ordered[evict_old:])
                self._forget(evict_old, ordered[evict_old - 1])
            evict_new = excess - evict_old
            if evict_new:
                self._forget(evict_new, low + evict_new - 1)
                low += evict_new
        self.outstanding.update(range(low, high + 1))

    def _add_missing_below(self, low: int, high: int) -> None:
        """Add ``low..high`` (all below every outstanding number), evicting the lowest."""
        new_count = high - low + 1
        if new_count <= 0:
            return
        # Old outstanding numbers never exceed the cap, so only new ones are evicted.
        excess = len(self.outstanding) + new_count - self.max_outstanding
        if excess > 0:
            self._forget(excess, low + excess - 1)
            low += excess
        self.outstanding.update(range(low, high + 1))

    def _forget(self, how_many: int, up_to: int) -> None:
        self.lost += how_many
        if self.forgotten_up_to is None or up_to > self.forgotten_up_to:
            self.forgotten_up_to = up_to

    def snapshot(self) -> GapCount:
        """Current counters as a :class:`GapCount` (``missing`` includes ``lost``)."""
        return GapCount(
            missing=self.missing,
            duplicates=self.duplicates,
            reorders=self.reorders,
            first=self.lowest,
            last=self.highest,
            count=self.count,
        )
