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
