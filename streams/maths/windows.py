"""Windowed healthy/total counts kept as time buckets in a plain dict (JSON-able, so it
lives in a Faust table): windows are sums of buckets, so one probe updates one bucket.

Two resolutions keep the state small: fine buckets for short windows, coarse buckets
(``COARSE_FACTOR`` fine buckets each) for long ones such as the 3-day ticket window.
"""

from __future__ import annotations

from typing import Any

COARSE_FACTOR = 60
FINE_BUCKETS_KEPT = 360


def new_counts() -> dict[str, Any]:
    return {"fine": {}, "coarse": {}}


def _bucket(time_ms: int, size_ms: int) -> str:
    return str(time_ms - time_ms % size_ms)


def add(counts: dict[str, Any], time_ms: int, healthy: bool, bucket_ms: int) -> None:
    if bucket_ms <= 0:
        raise ValueError(f"bucket_ms must be positive, got {bucket_ms}")
    for level, size in (("fine", bucket_ms), ("coarse", bucket_ms * COARSE_FACTOR)):
        cell = counts[level].setdefault(_bucket(time_ms, size), [0, 0])
        cell[0] += int(healthy)
        cell[1] += 1


def window(counts: dict[str, Any], now_ms: int, window_ms: int,
           bucket_ms: int) -> tuple[int, int]:
    """(healthy, total) of the buckets that start within ``window_ms`` before ``now_ms``
    (up to and including now's bucket). Fine buckets when they reach back far enough."""
    fine_reach = bucket_ms * FINE_BUCKETS_KEPT
    level, size = ("fine", bucket_ms) if window_ms <= fine_reach else (
        "coarse", bucket_ms * COARSE_FACTOR)
    first = now_ms - window_ms
    healthy = total = 0
    for start, (h, t) in counts[level].items():
        begin = int(start)
        if begin + size > first and begin <= now_ms:
            healthy += h
            total += t
    return healthy, total


def prune(counts: dict[str, Any], now_ms: int, longest_window_ms: int, bucket_ms: int) -> None:
    """Forget buckets no window can reach any more."""
    reach = {"fine": bucket_ms * FINE_BUCKETS_KEPT,
             "coarse": max(longest_window_ms, bucket_ms * COARSE_FACTOR)}
    sizes = {"fine": bucket_ms, "coarse": bucket_ms * COARSE_FACTOR}
    for level, buckets in counts.items():
        oldest = now_ms - reach[level] - sizes[level]
        for start in [s for s in buckets if int(s) < oldest]:
            del buckets[start]
