"""Pause latches, one per scope, in a table keyed by scope: every agent that decides to
pause or release a scope goes through here, so control.pauses has one writer per scope.

Input topics are keyed by scope strings (health.events by scope, exec.fills by market
scope, model topics by model scope, ops.commands by scope) with one partition count,
so the latch of a scope lives on the worker that processes that scope's events.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.agents.outputs import (
    owned_partitions,
    publish_alert,
    publish_pause,
    rows_of,
    store,
)
from streams.agents.ticks import every_tick
from streams.app import app, clock, settings, topics
from streams.control import pauses
from streams.control.alerts import AlertTransition
from streams.control.pauses import PauseChange
from streams.reason_codes import reason
from streams.records import AlertStatus

SOURCE = "agents.latches"
pause_latches = app.Table(
    "pause-latches", default=None, partitions=topics.health_events.partitions,
    schema=faust.Schema(key_serializer="json", value_serializer="json"),
)
_latches = rows_of(pause_latches)
_latch_entry = _latches.get  # per event (holding): bound once, see streams.app.clock_ms


def _latch(scope: str) -> dict[str, Any]:
    entry = _latches.get(scope)
    return entry["latch"] if entry else pauses.new_latch(scope)


def holding(scope: str) -> bool:
    """Whether the scope's latch holds a pause (its hold-down can expire on any event);
    when not, apply_alerts with no transitions does nothing."""
    entry = _latch_entry(scope)
    return bool(entry and entry["latch"]["holds"])


def _hold_down_ms() -> int:
    return int(settings.stale_hold_down_s * 1000)


async def apply_alerts(scope: str, partition: int, transitions: list[AlertTransition],
                       now_ms: int, source: str) -> None:
    """Publish alert transitions and apply the pausing ones to the scope's latch."""
    if not transitions and not holding(scope):  # the common case: nothing to do
        return
    latch = _latch(scope)
    changes: list[PauseChange] = []
    for transition in transitions:
        code = transition.condition.reason_code
        if not reason(code).pauses:
            continue
        if transition.status is AlertStatus.FIRING:
            latch, change = pauses.hold(latch, code, settings.pause_policy(code),
                                        transition.alert_id, now_ms, source)
            changes += [change] if change else []
        else:
            latch = pauses.release(latch, code, now_ms)
    latch, change = pauses.expire(latch, now_ms, _hold_down_ms(), source)
    changes += [change] if change else []
    if any(reason(t.condition.reason_code).pauses for t in transitions) or changes:
        store(pause_latches, scope, {"partition": partition, "latch": latch}, partition)
    for transition in transitions:
        await publish_alert(transition, source, now_ms)
    for change in changes:
        await publish_pause(change, source, now_ms)


async def operator_command(scope: str, partition: int, command_id: str, pause: bool,
                           actor: str) -> None:
    now_ms = clock.now_ms()
    step = pauses.operator_pause if pause else pauses.resume
    latch, change = step(_latch(scope), command_id, now_ms, f"operator:{actor}")
    store(pause_latches, scope, {"partition": partition, "latch": latch}, partition)
    if change:
        await publish_pause(change, SOURCE, now_ms)


def paused_scopes() -> dict[str, bool]:
    """Paused flag per scope on this worker's partitions."""
    return {scope: entry["latch"]["paused"] for scope, entry in pause_latches.items() if entry}


@every_tick
async def expire_hold_downs(now_ms: int) -> None:
    """Resume scopes whose AUTO_CLEAR holds have been clear for the hold-down period."""
    owned: set[int] | None = None
    for scope, entry in list(pause_latches.items()):
        if not entry or not entry["latch"]["holds"]:
            continue
        owned = owned_partitions(topics.health_events) if owned is None else owned
        if entry["partition"] not in owned:
            continue  # given up in a rebalance: its new owner clears it
        latch, change = pauses.expire(entry["latch"], now_ms, _hold_down_ms(), SOURCE)
        if change:
            store(pause_latches, scope, {"partition": entry["partition"], "latch": latch},
                  entry["partition"])
            await publish_pause(change, SOURCE, now_ms)
