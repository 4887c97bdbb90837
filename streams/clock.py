"""The one source of "now" for decisions. Live: wall-clock time. Replay: the event-time
watermark (the latest event time consumed), so a replay reproduces the same decisions.
Nothing else in agents reads time.time()."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def observe(self, event_time_ms: int, source: str | None = None) -> None:
        """Tell the clock an event with this time was consumed from ``source`` (e.g.
        "health.events/3"), when the event comes from a continuously fed stream."""


_time_ns = time.time_ns  # read for every event: bound once, integer arithmetic


class WallClock:
    def now_ms(self) -> int:
        return _time_ns() // 1_000_000

    def observe(self, event_time_ms: int, source: str | None = None) -> None:
        pass


class EventTimeClock:
    """Now is the low watermark: the smallest of the per-source watermarks (each the
    largest event time seen on that source), as stream processors do. Partitions are
    consumed in no fixed interleaving; taking the minimum means a scope is never judged
    against a time its own partition has not reached yet. Never moves back. Events
    without a source only count while no source has been seen."""

    def __init__(self, start_ms: int = 0) -> None:
        self._start = start_ms
        self._global = start_ms
        self._sources: dict[str, int] = {}
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def observe(self, event_time_ms: int, source: str | None = None) -> None:
        self._global = max(self._global, event_time_ms)
        if source is not None:
            self._sources[source] = max(self._sources.get(source, self._start), event_time_ms)
        low = min(self._sources.values()) if self._sources else self._global
        self._now = max(self._now, low)


def make_clock(mode: str) -> Clock:
    if mode == "wall":
        return WallClock()
    if mode == "event":
        return EventTimeClock()
    raise ValueError(f"unknown clock mode {mode!r}: expected 'wall' or 'event'")
