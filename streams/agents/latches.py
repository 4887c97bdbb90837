"""Pause latches, one per scope, in a table keyed by scope: every agent that decides to
pause or release a scope goes through here, so control.pauses has one writer per scope.

Input topics are keyed by scope strings (health.events by scope, exec.fills by market
scope, model topics by model scope, ops.commands by scope) with one partition count,
so the latch of a scope lives on the worker that processes that scope's events.

Each row keeps, beside the latch, the pause state last published for it ("state"). The
owner re-publishes that state unchanged (same state id and times: nothing changes for
a reader) on partition assignment and every ``pause_republish_interval_s``, so a pause
whose publish was lost (a crash between the row's changelog write and the publish) is
on control.pauses again within that bound.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import faust

from streams.agents import causes
from streams.agents.outputs import (
    flush_changelogs,
    owned_partitions,
    pause_state,
    publish_alert,
    publish_pause,
    rows_of,
    send_pause_state,
    store,
)
from streams.agents.ticks import every_tick
from streams.app import app, clock, settings, topics
from streams.control import pauses
from streams.control.alerts import AlertTransition
from streams.control.pauses import PauseChange
from streams.reason_codes import reason
from streams.records import AlertStatus, PauseState
from streams.tracing import Cause

log = logging.getLogger(__name__)
SOURCE = "agents.latches"
# the exit status of the fault-injection hook (fault_crash_before_pause_publish)
FAULT_EXIT_STATUS = 86
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


def latch_row(partition: int, latch: dict[str, Any], changes: list[PauseChange],
              now_ms: int, previous: Mapping[str, Any] | None,
              cause: Cause | None = None) -> dict[str, Any]:
    """The table row of a latch: its partition, the latch, and the pause state last
    published for it (the last of ``changes``, made at ``now_ms`` by ``cause``, else the
    previous row's), which is what gets re-published."""
    row: dict[str, Any] = {"partition": partition, "latch": latch}
    if changes:
        row["state"] = pause_state(changes[-1], now_ms, cause).model_dump(mode="json")
    elif previous and previous.get("state") is not None:
        row["state"] = previous["state"]
    return row


def states_to_republish(rows: Iterable[tuple[str, Any]],
                        owned: set[int]) -> list[dict[str, Any]]:
    """The last published pause state of every row on an ``owned`` partition (rows of
    partitions given up are their new owner's to re-publish; a latch never flipped has
    no state)."""
    return [row["state"] for _, row in rows
            if row and row["partition"] in owned and row.get("state") is not None]


async def republish_pause_states() -> int:
    """Re-publish the last pause state of every latch this worker owns, unchanged."""
    states = states_to_republish(list(_latches.items()), owned_partitions(topics.health_events))
    for state in states:
        await send_pause_state(PauseState.model_validate(state))
    if states:
        log.info("re-published the pause state of %d scope(s)", len(states))
    return len(states)


async def _publish_pauses(changes: list[PauseChange], source: str, now_ms: int,
                          cause: Cause | None = None) -> None:
    if changes and settings.fault_crash_before_pause_publish:
        # the latch's row on its changelog, acknowledged (from within the decider)
        await flush_changelogs(wait_for_deciders=False)
        log.critical("FAULT INJECTION (POLYMON_FAULT_CRASH_BEFORE_PAUSE_PUBLISH): exiting "
                     "after the pause latch's changelog write, before the pause publish")
        logging.shutdown()
        os._exit(FAULT_EXIT_STATUS)
    for change in changes:
        await publish_pause(change, source, now_ms, cause)


async def apply_alerts(scope: str, partition: int, transitions: list[AlertTransition],
                       now_ms: int, source: str, publish_alerts: bool = True) -> None:
    """Publish alert transitions and apply the pausing ones to the scope's latch
    (``publish_alerts`` False: an alert published elsewhere that pauses this scope too)."""
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
    # the alerts and the pauses they cause name one cause (parsed only now: decisions
    # are rare, events are not)
    cause = causes.of(scope) if transitions or changes else None
    if any(reason(t.condition.reason_code).pauses for t in transitions) or changes:
        store(pause_latches, scope,
              latch_row(partition, latch, changes, now_ms, _latches.get(scope), cause),
              partition)
    if publish_alerts:
        for transition in transitions:
            await publish_alert(transition, source, now_ms, cause)
    await _publish_pauses(changes, source, now_ms, cause)


async def operator_command(scope: str, partition: int, command_id: str, pause: bool,
                           actor: str) -> None:
    now_ms = clock.now_ms()
    step = pauses.operator_pause if pause else pauses.resume
    latch, change = step(_latch(scope), command_id, now_ms, f"operator:{actor}")
    changes = [change] if change else []
    cause = causes.of(scope)  # the command's (streams.agents.commands says so)
    store(pause_latches, scope,
          latch_row(partition, latch, changes, now_ms, _latches.get(scope), cause), partition)
    await _publish_pauses(changes, SOURCE, now_ms, cause)


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
            cause = causes.of(scope)  # the last input seen for the scope
            store(pause_latches, scope,
                  latch_row(entry["partition"], latch, [change], now_ms, entry, cause),
                  entry["partition"])
            await _publish_pauses([change], SOURCE, now_ms, cause)


@pause_latches.on_recover
async def republish_on_assignment() -> None:
    """After every rebalance's table recovery: the latches of newly owned partitions
    (and those kept) re-publish their state."""
    await republish_pause_states()


if settings.pause_republish_interval_s:
    @app.timer(interval=settings.pause_republish_interval_s)
    async def republish_periodically() -> None:
        await republish_pause_states()
