"""The pause latch of one scope: why it is paused, and when it may resume.

Each reason holds the scope with a policy: AUTO_CLEAR holds release once their
condition has been clear for the hold-down period (stale data, missed heartbeats);
LATCH holds stay until an operator resumes (SLO burn); MANUAL holds are an operator's
own pause. The scope is paused while any hold remains. State is a plain dict.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.envelope import derive_id
from streams.scopes import ancestors

AUTO_CLEAR = "AUTO_CLEAR"
LATCH = "LATCH"
MANUAL = "MANUAL"
OPERATOR_PAUSE = "GOV_OPERATOR_PAUSE"
_REMEMBERED_COMMANDS = 50


@dataclass(frozen=True, slots=True)
class PauseChange:
    """The scope flipped between paused and running: publish this."""

    scope: str
    paused: bool
    reason_code: str | None
    policy: str
    cause_id: str | None
    since_ms: int
    actor: str
    state_id: str
    before: dict[str, Any]
    after: dict[str, Any]


def new_latch(scope: str) -> dict[str, Any]:
    return {"scope": scope, "paused": False, "since_ms": 0, "holds": {}, "commands": []}


def _primary(holds: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    if not holds:
        return None
    return min(holds.items(), key=lambda item: (item[1]["since_ms"], item[0]))


def _public(latch: Mapping[str, Any]) -> dict[str, Any]:
    return {"paused": latch["paused"], "holds": sorted(latch["holds"])}


def _flip(before: dict[str, Any], latch: dict[str, Any], now_ms: int, actor: str,
          cause: str, released: tuple[str, dict[str, Any]] | None = None) -> PauseChange:
    latch["paused"] = not before["paused"]
    latch["since_ms"] = now_ms
    primary = _primary(latch["holds"]) if latch["paused"] else released
    reason_code, hold = primary if primary else (None, {"policy": MANUAL, "cause_id": None})
    return PauseChange(
        scope=latch["scope"], paused=latch["paused"], reason_code=reason_code,
        policy=hold["policy"], cause_id=hold.get("cause_id"), since_ms=now_ms, actor=actor,
        state_id=derive_id("pause", latch["scope"], latch["paused"], cause),
        before=_public(before), after=_public(latch),
    )


def hold(latch: dict[str, Any], reason_code: str, policy: str, cause_id: str, now_ms: int,
         actor: str) -> tuple[dict[str, Any], PauseChange | None]:
    """A condition that pauses the scope fired (or fired again)."""
    before, latch = latch, copy.deepcopy(latch)
    latch["holds"][reason_code] = {"policy": policy, "cause_id": cause_id,
                                   "since_ms": now_ms, "cleared_ms": None}
    if latch["paused"]:
        return latch, None
    return latch, _flip(before, latch, now_ms, actor, cause_id)


def release(latch: dict[str, Any], reason_code: str, now_ms: int) -> dict[str, Any]:
    """The condition behind a hold cleared; AUTO_CLEAR holds start their hold-down."""
    held = latch["holds"].get(reason_code)
    if held is None or held["cleared_ms"] is not None:
        return latch
    latch = copy.deepcopy(latch)
    latch["holds"][reason_code]["cleared_ms"] = now_ms
    return latch


def expire(latch: dict[str, Any], now_ms: int, hold_down_ms: int,
           actor: str) -> tuple[dict[str, Any], PauseChange | None]:
    """Drop AUTO_CLEAR holds clear for the hold-down; resume when none is left."""
    done = {
        code: held for code, held in latch["holds"].items()
        if held["policy"] == AUTO_CLEAR and held["cleared_ms"] is not None
        and now_ms - held["cleared_ms"] >= hold_down_ms
    }
    if not done:
        return latch, None
    before, latch = latch, copy.deepcopy(latch)
    for code in done:
        del latch["holds"][code]
    if latch["paused"] and not latch["holds"]:
        released = _primary(done)
        cause = f"expired:{','.join(sorted(h['cause_id'] for h in done.values()))}"
        return latch, _flip(before, latch, now_ms, actor, cause, released)
    return latch, None


def _seen(latch: dict[str, Any], command_id: str) -> bool:
    return command_id in latch["commands"]


def _remember(latch: dict[str, Any], command_id: str) -> None:
    latch["commands"] = [*latch["commands"], command_id][-_REMEMBERED_COMMANDS:]


def resume(latch: dict[str, Any], command_id: str, now_ms: int,
           actor: str) -> tuple[dict[str, Any], PauseChange | None]:
    """An operator resumes the scope: every hold goes, latched ones included."""
    if _seen(latch, command_id):
        return latch, None
    before, latch = latch, copy.deepcopy(latch)
    _remember(latch, command_id)
    released = _primary(latch["holds"])
    latch["holds"] = {}
    if not latch["paused"]:
        return latch, None
    return latch, _flip(before, latch, now_ms, actor, command_id, released)


def operator_pause(latch: dict[str, Any], command_id: str, now_ms: int,
                   actor: str) -> tuple[dict[str, Any], PauseChange | None]:
    if _seen(latch, command_id):
        return latch, None
    latch = copy.deepcopy(latch)
    _remember(latch, command_id)
    return hold(latch, OPERATOR_PAUSE, MANUAL, command_id, now_ms, actor)


def is_paused(scope: str, paused_scopes: Mapping[str, bool]) -> str | None:
    """The scope (itself or a parent) whose pause covers ``scope``, or None."""
    for covering in ancestors(scope):
        if paused_scopes.get(covering):
            return covering
    return None
