"""Clock ticks: the evaluations that must happen even when no event arrives (stale
feeds, missed heartbeats, hold-downs). Live, a wall-clock timer drives them. In replay
(event-time clock) the stream drives them as the watermark passes each tick, so a
replay that consumes an hour in a second still evaluates every tick of that hour, in
order, and reproduces the live decisions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from streams.app import app, clock, settings
from streams.codec import InputMessage
from streams.delivery import deciding

TickCallback = Callable[[int], Awaitable[None]]
_callbacks: list[TickCallback] = []
_next_tick_ms: int | None = None
MAX_CATCH_UP_TICKS = 100_000  # a jump further than this skips ahead instead of looping
EVENT_CLOCK = settings.clock == "event"  # fixed while a worker runs


def observe_clock(event_time_ms: int, message: InputMessage) -> None:
    """Tell the clock about a consumed event (only the event-time clock listens)."""
    if EVENT_CLOCK:
        clock.observe(event_time_ms, f"{message.topic}/{message.partition}")


def every_tick(callback: TickCallback) -> TickCallback:
    _callbacks.append(callback)
    return callback


def every(interval_s: float) -> Callable[[TickCallback], TickCallback]:
    """Register a tick callback that runs at most once per ``interval_s`` of clock time:
    for evaluations over long windows, where every tick would cost more than it finds."""

    def register(callback: TickCallback) -> TickCallback:
        last_ms: int | None = None

        async def throttled(now_ms: int) -> None:
            nonlocal last_ms
            if last_ms is not None and now_ms - last_ms < interval_s * 1000:
                return
            last_ms = now_ms
            await callback(now_ms)

        _callbacks.append(throttled)
        return callback

    return register


async def run_ticks(now_ms: int) -> None:
    # table changes made here reach their changelogs with the next flush (every
    # changelog_flush_interval_s, and before any offset is acknowledged)
    async with deciding():  # their table changes are sent with their decisions
        for callback in _callbacks:
            await callback(now_ms)


async def event_time_advanced(now_ms: int) -> None:
    """Called by stream agents after the clock observed an event (event-time mode)."""
    global _next_tick_ms
    if not EVENT_CLOCK:
        return
    step = max(1, int(settings.evaluation_interval_s * 1000))
    if _next_tick_ms is None:
        _next_tick_ms = now_ms - now_ms % step + step
        return
    if (now_ms - _next_tick_ms) // step > MAX_CATCH_UP_TICKS:
        _next_tick_ms = now_ms - now_ms % step
    while now_ms >= _next_tick_ms:
        await run_ticks(_next_tick_ms)
        _next_tick_ms += step


@app.timer(interval=settings.evaluation_interval_s)
async def wall_clock_ticks() -> None:
    if settings.clock == "wall":
        await run_ticks(clock.now_ms())
