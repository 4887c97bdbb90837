"""Which keys are due at a given time, without visiting every key: a min-heap of
(due time, key) with lazy invalidation. The staleness timer asks it for the scopes whose
next possible change has come, instead of re-evaluating every scope on every tick."""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class DueIndex(Generic[K]):
    def __init__(self) -> None:
        self._due: dict[K, float] = {}
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
            return
        if self._due.get(key) == due:
            return
        self._due[key] = due
        self._pushes += 1
        heapq.heappush(self._heap, (due, self._pushes, key))
        if len(self._heap) > 2 * len(self._due) + 1024:  # superseded entries pile up
            self._heap = [(when, self._pushes + n, k)
                          for n, (k, when) in enumerate(self._due.items(), start=1)]
            self._pushes += len(self._heap)
            heapq.heapify(self._heap)

    def pop_due(self, now: float) -> Iterator[K]:
        """Every key due at or before ``now``, earliest first; each is unscheduled as it
        is yielded (schedule it again to keep it)."""
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            if self._due.get(key) == due:
                del self._due[key]
                yield key
