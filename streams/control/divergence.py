"""Trading on a paused scope: a fill or order intent of bot ``b`` on market ``m`` whose
event time is more than a grace after a pause covering ``bot:b/market:m`` (``global``,
``bot:b``, ``market:m`` or ``bot:b/market:m``: the scopes a runner's PauseGuard checks
before it trades, see streams.scopes.ancestors) began. The grace is the time a pause may
take to reach the runners; a trade after it means a runner did not apply the pause: its
state diverged from polymon's, and money moved that should not have.

Pure: pause states and trades are plain values, time is passed in. One alert episode per
(covering scope, pause state): the alert's scope is the paused scope and its cause the
pause's state id, so its id is the same on every worker that sees such a trade, and later
trades of the same episode add nothing. The episode resolves when that pause state ends:
the scope is resumed, or its pause is replaced by another state (a new episode, if the
trading goes on).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.control.alerts import AlertTransition, Condition, step_alert
from streams.scopes import ancestors

STATE_DIVERGENCE = "RISK_STATE_DIVERGENCE"
SUBJECT = "trading"


@dataclass(frozen=True, slots=True)
class PausedScope:
    """A scope's current pause state, as control.pauses carries it."""

    scope: str
    state_id: str
    since_ms: int
    reason_code: str | None
    actor: str


@dataclass(frozen=True, slots=True)
class Trade:
    """What a fill says about the trade that made it."""

    bot: str
    market: str
    kind: str  # FILL or INTENT
    order_id: str
    time_ms: int  # the fill's event time
    runner: str | None = None  # the runner that traded, when the fill names it


class PauseView:
    """The scopes paused now, every partition of control.pauses read whole (the worker's
    read model keeps it, streams.web.readmodel), so the worker handling a fill sees the
    pauses of ``global`` and of the fill's bot wherever their records live. Only paused
    scopes are kept: with none, checking a fill costs one truth test."""

    __slots__ = ("caught_up", "paused")

    def __init__(self) -> None:
        self.paused: dict[str, PausedScope] = {}
        # whether the view has read every partition up to its end (its reader says)
        self.caught_up: Callable[[], bool] = lambda: False

    def note(self, scope: str, paused: bool, state_id: str, since_ms: int,
             reason_code: str | None, actor: str) -> None:
        """The newest pause state of ``scope``."""
        if paused:
            self.paused[scope] = PausedScope(scope, state_id, since_ms, reason_code, actor)
        else:
            self.paused.pop(scope, None)

    def remove(self, scope: str) -> None:
        """A tombstone: the scope has no pause state."""
        self.paused.pop(scope, None)

    def clear(self) -> None:
        self.paused.clear()


@functools.lru_cache(maxsize=65536)  # a few bots trade many markets, again and again
def covering(bot: str, market: str) -> tuple[str, ...]:
    """The scopes whose pause stops bot ``bot`` trading on market ``market``."""
    return tuple(ancestors(f"bot:{bot}/market:{market}"))


def diverging_pause(bot: str, market: str, time_ms: int, paused: Mapping[str, PausedScope],
                    grace_ms: int) -> PausedScope | None:
    """The first scope covering the trade (broadest first) paused more than ``grace_ms``
    before ``time_ms``, or None. A pause within the grace may not have reached the
    runner yet; a trade before the pause (a late fill) is no divergence."""
    for scope in covering(bot, market):
        pause = paused.get(scope)
        if pause is not None and time_ms - pause.since_ms > grace_ms:
            return pause
    return None


def episode_key(pause: PausedScope) -> str:
    return f"{pause.scope}@{pause.state_id}"


def _utc(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).isoformat(timespec="milliseconds")


def describe(pause: PausedScope, trade: Trade, grace_ms: int) -> str:
    late_s = (trade.time_ms - pause.since_ms) / 1000
    reason = pause.reason_code or "no reason given"
    return (f"bot {trade.bot} traded on market {trade.market} ({trade.kind.lower()} of order "
            f"{trade.order_id} at {_utc(trade.time_ms)}) while {pause.scope} is paused: "
            f"{reason} by {pause.actor} since {_utc(pause.since_ms)} (pause state "
            f"{pause.state_id}), {late_s:.1f}s before the trade, beyond the "
            f"{grace_ms / 1000:g}s grace; runner {trade.runner or 'unknown'}")


def fire(active: dict[str, Any] | None, pause: PausedScope, trade: Trade,
         grace_ms: int) -> tuple[dict[str, Any] | None, AlertTransition | None]:
    """A trade on ``pause``'s scope beyond the grace: (the episode's active alert, the
    FIRING transition to publish, or None when the episode already fired)."""
    if active is not None:
        return active, None
    condition = Condition(
        scope=pause.scope, subject=SUBJECT, reason_code=STATE_DIVERGENCE, firing=True,
        metric="paused_for_s", value=(trade.time_ms - pause.since_ms) / 1000,
        threshold=grace_ms / 1000, window_s=None, cause=pause.state_id,
        event_time_ms=trade.time_ms, message=describe(pause, trade, grace_ms),
    )
    return step_alert(None, condition)


def resolve(active: dict[str, Any], scope: str, state_id: str, now: PausedScope | None,
            now_ms: int) -> AlertTransition | None:
    """The RESOLVED transition of an episode (``scope`` paused with ``state_id``) once
    that pause state has ended (``now``: the scope's pause now, None when not paused),
    else None."""
    if now is not None and now.state_id == state_id:
        return None
    ended = ("resumed" if now is None
             else f"its pause state {state_id} replaced by {now.state_id}")
    condition = Condition(
        scope=scope, subject=SUBJECT, reason_code=STATE_DIVERGENCE, firing=False,
        metric="paused_for_s", value=None, threshold=None, window_s=None, cause=state_id,
        event_time_ms=now_ms, message=f"{scope}: {ended}; the divergence episode of pause "
        f"state {state_id} ends",
    )
    return step_alert(active, condition)[1]
