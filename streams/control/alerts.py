"""Alert dedup: a condition that stays true fires once; when it clears, one resolve.

The alert id derives from the condition's cause (e.g. the last update of a stale feed),
so the same cause gives the same id however often it is evaluated or re-delivered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.envelope import derive_id
from streams.records import AlertStatus


@dataclass(frozen=True, slots=True)
class Condition:
    """What the core observed about one subject (a feed, a heartbeat, an SLO) of a scope."""

    scope: str
    subject: str
    reason_code: str
    firing: bool
    metric: str
    value: float | None
    threshold: float | None
    window_s: float | None
    cause: str
    event_time_ms: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class AlertTransition:
    alert_id: str
    status: AlertStatus
    condition: Condition
    fired_alert_id: str  # the FIRING alert this transition belongs to


def step_alert(
    active: dict[str, Any] | None, condition: Condition
) -> tuple[dict[str, Any] | None, AlertTransition | None]:
    """(the new active-alert state, the transition to publish or None)."""
    if condition.firing and active is None:
        alert_id = derive_id("alert", condition.scope, condition.reason_code, condition.subject,
                             condition.cause)
        state = {"alert_id": alert_id, "reason_code": condition.reason_code,
                 "cause": condition.cause}
        return state, AlertTransition(alert_id, AlertStatus.FIRING, condition, alert_id)
    if not condition.firing and active is not None:
        resolved_id = derive_id("alert", active["alert_id"], "resolved")
        return None, AlertTransition(resolved_id, AlertStatus.RESOLVED, condition,
                                     active["alert_id"])
    return active, None


# --- hysteresis -------------------------------------------------------------------------
# What one evaluation of a rule saw: beyond the fire threshold, past the fire threshold's
# side but not yet within the resolve threshold, within the resolve threshold, or too few
# samples to say (unknown keeps the alert's current state).
BREACH, BETWEEN, CLEAR, UNKNOWN = "breach", "between", "clear", "unknown"
_RANK = {BREACH: 3, BETWEEN: 2, CLEAR: 1, UNKNOWN: 0}


@dataclass(frozen=True, slots=True)
class AlertRule:
    """How a rule turns observations into one FIRING and one RESOLVED per episode.

    ``for_ms``: a breach must persist this long (pending) before it fires.
    ``keep_firing_for_ms``: a firing alert resolves only after this long within the
    resolve threshold; a breach in the meantime is the same episode (same alert id).
    ``resolve_ratio``: the resolve threshold as a ratio of the fire threshold (an upper
    bound resolves below ``bound × ratio``, a lower bound above ``bound ÷ ratio``)."""

    for_ms: int = 0
    keep_firing_for_ms: int = 0
    resolve_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.for_ms < 0 or self.keep_firing_for_ms < 0:
            raise ValueError("for and keep_firing_for must be >= 0")
        if not 0 < self.resolve_ratio <= 1:
            raise ValueError(f"resolve_ratio must be in (0, 1], got {self.resolve_ratio}")

    def judge_upper(self, value: float | None, bound: float) -> str:
        """A value that must stay at or below ``bound``."""
        if value is None:
            return UNKNOWN
        if value > bound:
            return BREACH
        return CLEAR if value < bound * self.resolve_ratio else BETWEEN

    def judge_lower(self, value: float | None, bound: float) -> str:
        """A value that must stay at or above ``bound``."""
        if value is None:
            return UNKNOWN
        if value < bound:
            return BREACH
        return CLEAR if value * self.resolve_ratio > bound or bound == 0 else BETWEEN


def combine(verdicts: list[str]) -> str:
    """One verdict of several windows: any breach breaches; unknown only if all are."""
    return max(verdicts, key=_RANK.__getitem__) if verdicts else UNKNOWN


def hysteresis(track: dict[str, Any], firing: bool, verdict: str, rule: AlertRule,
               now_ms: int) -> str | None:
    """The edge this observation makes: ``"fire"``, ``"resolve"`` or None. ``track``
    (a plain dict kept per rule, JSON-able) holds the pending and clearing timers."""
    if not firing:
        track.pop("clear_ms", None)
        if verdict == BREACH:
            since = track.setdefault("pending_ms", now_ms)
            if now_ms - since >= rule.for_ms:
                track.pop("pending_ms", None)
                return "fire"
        elif verdict != UNKNOWN:
            track.pop("pending_ms", None)  # the breach did not last: no episode
        return None
    track.pop("pending_ms", None)
    if verdict == CLEAR:
        since = track.setdefault("clear_ms", now_ms)
        if now_ms - since >= rule.keep_firing_for_ms:
            track.pop("clear_ms", None)
            return "resolve"
    elif verdict != UNKNOWN:
        track.pop("clear_ms", None)  # breached again: the same episode goes on
    return None


def timers_running(track: dict[str, Any]) -> bool:
    """Whether a later evaluation could change the alert with nothing else changing."""
    return "pending_ms" in track or "clear_ms" in track


def rule_from(setting: Any) -> AlertRule:
    """An :class:`AlertRule` from a setting with ``for_s``, ``keep_firing_for_s`` and
    ``resolve_ratio`` (streams.settings.AlertRuleSetting)."""
    return AlertRule(int(setting.for_s * 1000), int(setting.keep_firing_for_s * 1000),
                     setting.resolve_ratio)
