"""Which keys are due at a given time, without visiting every key: a min-heap of
(due time, key) with lazy invalidation. The staleness timer asks it for the scopes whose
next possible change has come, instead of re-evaluating every scope on every tick."""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class DueIndex(Generic[K]):
    """Keys with the time each is due. Most reschedules move a key later (an event
    pushes a feed's staleness deadline on): those cost a dict write, not a heap push.
    The key's heap entry stays at the earlier time; when it surfaces, the key is queued
    again at its current due time, so keys are still yielded earliest first."""

    def __init__(self) -> None:
        self._due: dict[K, float] = {}
        self._queued: dict[K, float] = {}  # key -> time of its live heap entry (<= its due)
        self._queued_at = self._queued.get  # read per schedule: bound once
        self._heap: list[tuple[float, int, K]] = []
        self._pushes = 0  # tie-breaker: keys need not be orderable

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def schedule(self, key: K, due: float | None) -> None:
        """``key`` is due at ``due``; None: never (until scheduled again)."""
        if due is None:
            self._due.pop(key, None)
            self._queued.pop(key, None)  # its heap entry is dropped when it surfaces
            return
        self._due[key] = due
        queued = self._queued_at(key)
        if queued is None or due < queued:
            self._push(key, due)

    def _push(self, key: K, due: float) -> None:
        self._queued[key] = due
        self._pushes += 1
        heapq.heappush(self._heap, (due, self._pushes, key))
        if len(self._heap) > 2 * len(self._queued) + 1024:  # superseded entries pile up
            self._heap = [(when, self._pushes + n, k)
                          for n, (k, when) in enumerate(self._queued.items(), start=1)]
            self._pushes += len(self._heap)
            heapq.heapify(self._heap)

    def pop_due(self, now: float) -> Iterator[K]:
        """Every key due at or before ``now``, earliest first; each is unscheduled as it
        is yielded (schedule it again to keep it)."""
        while self._heap and self._heap[0][0] <= now:
            when, _, key = heapq.heappop(self._heap)
            if self._queued.get(key) != when:
                continue  # superseded by an earlier entry
            del self._queued[key]
            due = self._due.get(key)
            if due is None:
                continue
            if due > when:  # moved later since it was queued
                self._push(key, due)
                continue
            del self._due[key]
            yield key
