"""Execution agents over exec.fills: fill ratio and slippage error per market, per bot and
per model cohort, over a tumbling and a hopping window; breaches alert and, for the
scope kinds in ``exec_pause_scope_kinds``, pause the scope through its latch.

Keying. exec.fills is keyed by market, so a market's figures (and its pause latch) live
on the partition of the fill. A bot trades many markets, and a model's canary lives on
the model's partition, so every fill is also re-keyed onto an internal topic,
``<group>-exec.fills-by-scope-repartition`` (declared by Faust, like table changelogs;
same partition count as the inputs): once under ``bot:<id>``, and once under
``model:<id>`` when the fill names a model. It is sent to the partition the input
producers would pick for that key (streams.control.keying, setting
``input_partitioner``), so a bot's execution figures, heartbeats and pause latch meet on
one worker, and a model's fill samples meet its scores, drift and rollout state.

Flow per fill: decode → check the event time → market figures (pure core:
streams.control.execution) → alerts/pauses → forward re-keyed. Per re-keyed fill: bot
figures → alerts/pauses, or the model's cohort figures and canary samples. A clock tick
re-evaluates every scope so alerts resolve when breaching fills age out of the windows.
Counts are at-least-once: a fill re-delivered after a crash is counted again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import faust

from streams.agents import canary
from streams.agents.decoding import InvalidInput, consume
from streams.agents.health import check_event_time
from streams.agents.latches import apply_alerts
from streams.agents.outputs import enqueue, owned_partitions, publish_alert, store
from streams.agents.ticks import EVENT_CLOCK, event_time_advanced, every, observe_clock
from streams.app import app, clock, settings, topics
from streams.batching import YIELD_EVERY
from streams.codec import DecodedMemo, InputMessage
from streams.control import execution
from streams.control.alerts import AlertTransition
from streams.records import FillEvent, FillKind
from streams.scopes import ScopeError, validate_scope

SOURCE = "agents.execution"
WINDOWS = execution.windows(settings.exec_tumbling_window_s, settings.exec_hopping_window_s,
                            settings.exec_hop_s)
BUCKET_MS = execution.bucket_ms(WINDOWS)
BOUNDS = execution.Bounds(
    slippage_rmse_bps=settings.exec_slippage_rmse_bound_bps,
    slippage_mean_bps=settings.exec_slippage_mean_bound_bps,
    fill_ratio_min=settings.exec_fill_ratio_min, min_fills=settings.exec_min_fills,
)
REKEYED_MEMO_CAPACITY = 8192  # about 1 kB each
_json = faust.Schema(key_serializer="json", value_serializer="json")
# Per scope (market:<id>, bot:<id>, model:<id>#<COHORT>): bucket sums, figures, alerts.
execution_state = app.Table("execution-state", default=None, schema=_json,
                            partitions=topics.health_events.partitions)
fills_by_scope = app.topic(
    f"{settings.group_id}-exec.fills-by-scope-repartition",
    partitions=topics.exec_fills.partitions, key_type=bytes, key_serializer="raw",
    value_serializer="raw", internal=True, replicas=settings.replication_factor,
)


# The fills this worker re-keyed, by their bytes: those that come back to this worker
# (its bot's and model's partitions) are not decoded again. Bounded: a few seconds of
# fills at full speed; the rest are decoded as usual.
rekeyed_fills = DecodedMemo(capacity=REKEYED_MEMO_CAPACITY)


def _state(key: str, scope: str, partition: int) -> dict[str, Any]:
    state = execution_state.data.get(key) or execution.new_state(scope, partition)
    state["partition"] = partition
    return state


def _observe(key: str, scope: str, record: FillEvent, partition: int) -> dict[str, Any]:
    state = _state(key, scope, partition)
    execution.observe(state, fill=record.kind is FillKind.FILL,
                      event_time_ms=record.event_time_ms, requested=record.requested_size,
                      filled=record.filled_size, predicted_bps=record.predicted_slippage_bps,
                      realized_bps=record.realized_slippage_bps, bucket=BUCKET_MS)
    return state


# Live, a scope is evaluated once per batch, after all its fills in the batch (the
# windows' figures cost more than counting a fill), and only when that can change an
# alert; the figures of the others (shown by the API) are brought up to date by the
# periodic pass. Under the event-time clock every fill is evaluated as it comes, so a
# replay does not depend on fetch batch boundaries.
_unevaluated: dict[str, dict[str, Any]] = {}
_unfigured: dict[str, dict[str, Any]] = {}  # model cohorts: figures only, no alerts


def _observed(key: str, state: dict[str, Any], now_ms: int) -> Awaitable[None] | None:
    """What follows a fill counted into ``state``: what is left to await, if anything."""
    if EVENT_CLOCK:
        return _decide(key, state, now_ms)
    store(execution_state, key, state, state["partition"])
    _unevaluated[key] = state
    return None


async def evaluate_batch() -> None:
    now_ms = clock.now_ms()
    while _unevaluated:
        key, state = _unevaluated.popitem()
        await _decide(key, state, now_ms)
    while _unfigured:
        key, state = _unfigured.popitem()
        execution.update_figures(state, now_ms, WINDOWS)
        store(execution_state, key, state, state["partition"])


async def _decide(key: str, state: dict[str, Any], now_ms: int) -> None:
    # a scope that cannot alert has nothing to decide: its figures wait for
    # evaluate_execution
    transitions = (execution.evaluate(state, now_ms, WINDOWS, BOUNDS)
                   if execution.can_alert(state, BOUNDS) else None)
    store(execution_state, key, state, state["partition"])
    if transitions is not None:
        await _publish(state["scope"], state["partition"], transitions, now_ms)


async def _publish(scope: str, partition: int, transitions: list[AlertTransition],
                   now_ms: int) -> None:
    if scope.split(":", 1)[0] in settings.exec_pause_scope_kinds:
        await apply_alerts(scope, partition, transitions, now_ms, SOURCE)
        return
    for transition in transitions:  # alert only: this kind of scope is not paused
        await publish_alert(transition, SOURCE, now_ms)


def _rekeyed_scopes(record: FillEvent) -> list[str]:
    """The bot's scope, and the model's when the fill names one; all must be valid scopes."""
    scopes = [f"bot:{record.bot}", *([f"model:{record.model}"] if record.model else [])]
    for scope in [record.scope, *scopes]:
        try:
            validate_scope(scope)
        except ScopeError as exc:
            raise InvalidInput(f"fill {record.event_id}: {exc}") from None
    return scopes


def on_fill(record: FillEvent, message: InputMessage) -> Awaitable[None] | None:
    check_event_time(record.event_time_ms, clock.now_ms())
    rekeyed = _rekeyed_scopes(record)
    observe_clock(record.event_time_ms, message)
    now_ms = clock.now_ms()
    state = _observe(record.scope, record.scope, record, message.partition)
    pending = _observed(record.scope, state, now_ms)
    if pending is not None:  # a replay: evaluated now, before the fill is sent on
        return _forward_after(pending, record, message, rekeyed, now_ms)
    _forward(record, message, rekeyed)
    return None


def _forward(record: FillEvent, message: InputMessage, rekeyed: list[str]) -> None:
    for key in rekeyed:  # the fill's own bytes, sent with the batch
        enqueue(fills_by_scope, key.encode(), message.value)
    rekeyed_fills.remember(message.value, record, len(rekeyed))


async def _forward_after(pending: Awaitable[None], record: FillEvent, message: InputMessage,
                         rekeyed: list[str], now_ms: int) -> None:
    await pending
    _forward(record, message, rekeyed)
    await event_time_advanced(now_ms)


def on_scoped_fill(record: FillEvent, message: InputMessage) -> Awaitable[None] | None:
    scope = (message.key or b"").decode()
    now_ms = clock.now_ms()
    if scope.startswith("bot:"):
        state = _observe(scope, scope, record, message.partition)
        return _observed(scope, state, now_ms)
    # A model's fills: execution figures per cohort, and samples for the canary.
    key = f"{scope}#{record.cohort.value}"
    state = _observe(key, scope, record, message.partition)
    if EVENT_CLOCK:
        execution.update_figures(state, now_ms, WINDOWS)  # figures only: cohorts do not alert
    else:
        _unfigured[key] = state
    store(execution_state, key, state, message.partition)
    canary.observe_fill(scope, record, message.partition)
    return None


consume(topics.exec_fills, "FillEvent", on_fill, after_batch=evaluate_batch)


consume(fills_by_scope, "FillEvent", on_scoped_fill, after_batch=evaluate_batch,
        memo=rekeyed_fills)


@every(settings.exec_evaluation_interval_s)
async def evaluate_execution(now_ms: int) -> None:
    """Windows move on without fills: breaches resolve when their fills age out, and the
    figures of scopes that could not alert are brought up to date. Windows are minutes
    long, so every ``exec_evaluation_interval_s`` is often enough (a full pass over every
    market and bot on every tick would cost more than the fills themselves)."""
    owned = owned_partitions(topics.exec_fills)
    evaluated = 0
    for key, state in list(execution_state.data.items()):
        if not state or state["partition"] not in owned or "#" in key:
            continue
        if not state["buckets"] and not any(state["alerts"].values()):
            continue
        if execution.figures_current(state, now_ms, WINDOWS):
            continue  # no window moved, no fill came: evaluating would change nothing
        transitions = execution.evaluate(state, now_ms, WINDOWS, BOUNDS)
        if transitions or not state["buckets"]:
            store(execution_state, key, state, state["partition"])
            await _publish(state["scope"], state["partition"], transitions, now_ms)
        evaluated += 1
        if evaluated % YIELD_EVERY == 0:  # thousands of scopes: let the input flow between
            await asyncio.sleep(0)
