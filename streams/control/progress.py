"""Is a worker's input making progress? The judgement behind its heartbeat's ``healthy``
flag: an input partition with records waiting whose processed offset has not moved for
longer than a bound is stuck, and a worker with a stuck partition must not announce itself
healthy while its timers (and heartbeat) run on. Plain values, no clock, no Kafka."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)  # a partition, as the caller names it
_NAMED = 4  # partitions named in the reason (a heartbeat's free text is bounded)


@dataclass(frozen=True, slots=True)
class Mark:
    """A partition's processed offset, and since when (seconds, the caller's clock) it has
    stood still with records waiting; ``since`` is the last time it moved or had no lag."""

    offset: int
    since: float


@dataclass(frozen=True, slots=True)
class Observed:
    """A partition seen now: the next offset to process and the records after it."""

    offset: int
    lag: int


def advance(marks: Mapping[K, Mark], observed: Mapping[K, Observed],
            now: float) -> dict[K, Mark]:
    """The marks after an observation: a partition that moved on, or has nothing waiting,
    is marked now; one standing still with lag keeps its mark. Partitions no longer
    observed (revoked) are dropped, new ones start now."""
    updated: dict[K, Mark] = {}
    for key, seen in observed.items():
        mark = marks.get(key)
        if mark is None or seen.offset != mark.offset or seen.lag <= 0:
            mark = Mark(seen.offset, now)
        updated[key] = mark
    return updated


def stuck(marks: Mapping[K, Mark], observed: Mapping[K, Observed], now: float,
          limit_s: float) -> str | None:
    """Why the input is stuck (the partitions whose lag stood without progress for longer
    than ``limit_s``), or None."""
    stalled = sorted(((key, now - marks[key].since) for key, seen in observed.items()
                      if seen.lag > 0 and key in marks and now - marks[key].since > limit_s),
                     key=lambda item: str(item[0]))
    if not stalled:
        return None
    parts = ", ".join(f"{key} ({observed[key].lag} waiting, {age:.0f}s)"
                      for key, age in stalled[:_NAMED])
    more = f" and {len(stalled) - _NAMED} more" if len(stalled) > _NAMED else ""
    return f"input stuck: no progress on {parts}{more}"
