"""The one source of "now" for decisions. Live: wall-clock time. Replay: the event-time
watermark (the latest event time consumed), so a replay reproduces the same decisions.
Nothing else in agents reads time.time()."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def observe(self, event_time_ms: int) -> None:
        """Tell the clock an event with this time was consumed."""


class WallClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def observe(self, event_time_ms: int) -> None:
        pass


class EventTimeClock:
    """Now is the watermark: the largest event time observed (never moves back)."""

    def __init__(self, start_ms: int = 0) -> None:
        self._watermark = start_ms

    def now_ms(self) -> int:
        return self._watermark

    def observe(self, event_time_ms: int) -> None:
        self._watermark = max(self._watermark, event_time_ms)


def make_clock(mode: str) -> Clock:
    if mode == "wall":
        return WallClock()
    if mode == "event":
        return EventTimeClock()
    raise ValueError(f"unknown clock mode {mode!r}: expected 'wall' or 'event'")
