"""Execution agents over exec.fills: fill ratio and slippage error per market, per bot and
per model cohort, over a tumbling and a hopping window; breaches alert and, for the
scope kinds in ``exec_pause_scope_kinds``, pause the scope through its latch.

Keying. exec.fills is keyed by market, so a market's figures (and its pause latch) live
on the partition of the fill. A bot trades many markets, and a model's canary lives on
the model's partition, so the fills are also re-keyed onto an internal topic,
``<group>-exec.fills-by-scope-repartition`` (declared by Faust, like table changelogs;
same partition count as the inputs): the fills of each input batch are summed per bot
(``bot:<id>``) and per model (``model:<id>``, when the fill names one; with the canary
samples of its FILLs) into one ScopedFills per scope, sent to the partition the input
producers would pick for that key (streams.control.keying, setting
``input_partitioner``), so a bot's execution figures, heartbeats and pause latch meet on
one worker, and a model's fill samples meet its scores, drift and rollout state. One
message per bot and batch, not one per fill: a bot's fills come from every market.

Flow per fill: decode → check the event time → trading on a paused scope (only while
some scope is paused: streams.agents.divergence) → market figures (pure core:
streams.control.execution) → alerts/pauses → into its bot's and model's digests; after
the batch, the digests are sent on. Per ScopedFills: the bot's figures → alerts/pauses,
or the model's cohort figures and canary samples. A clock tick re-evaluates every scope
so alerts resolve when breaching fills age out of the windows. Counts are
at-least-once: a fill re-delivered after a crash is counted again.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable
from typing import Any

import faust

from streams import tracing
from streams.agents import canary, causes, divergence
from streams.agents.decoding import InvalidInput, consume
from streams.agents.health import check_event_time
from streams.agents.latches import apply_alerts
from streams.agents.outputs import enqueue, owned_partitions, publish_alert, rows_of, store
from streams.agents.ticks import EVENT_CLOCK, event_time_advanced, every, observe_clock
from streams.app import app, clock_ms, codecs, settings, topics
from streams.codec import InputMessage
from streams.control import execution
from streams.control.alerts import AlertTransition, rule_from
from streams.control.canary import fill_samples
from streams.delivery import YIELD_EVERY
from streams.records import FillEvent, FillKind, ScopedFills
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
RULES = {code: rule_from(settings.alert_rule(code))
         for code in (execution.SLIPPAGE_BREACH, execution.FILL_RATIO_LOW)}
_json = faust.Schema(key_serializer="json", value_serializer="json")
# Per scope (market:<id>, bot:<id>, model:<id>#<COHORT>): bucket sums, figures, alerts.
execution_state = app.Table("execution-state", default=None, schema=_json,
                            partitions=topics.health_events.partitions)
fills_by_scope = app.topic(
    f"{settings.group_id}-exec.fills-by-scope-repartition",
    partitions=topics.exec_fills.partitions, key_type=bytes, key_serializer="raw",
    value_serializer="raw", internal=True, replicas=settings.replication_factor,
)

_scoped_fills = codecs["ScopedFills"]
_FILL = FillKind.FILL  # a member read per fill (EnumType's hook: slow)
_states = rows_of(execution_state)
_state_of = _states.get  # per fill: bound once (see streams.app.clock_ms)
_paused = divergence.view.paused  # empty (falsy) unless some scope is paused
_check_divergence = divergence.check_fill


def _state(key: str, scope: str, partition: int) -> dict[str, Any]:
    state = _state_of(key) or execution.new_state(scope, partition)
    state["partition"] = partition
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
    now_ms = clock_ms()
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
    transitions = (execution.evaluate(state, now_ms, WINDOWS, BOUNDS, RULES)
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


def _rekeyed_scopes(record: FillEvent, market_scope: str) -> tuple[str, ...]:
    """The bot's scope, and the model's when the fill names one; all must be valid scopes."""
    try:
        validate_scope(market_scope)
        return _scopes_of(record.bot, record.model)
    except ScopeError as exc:
        raise InvalidInput(f"fill {record.event_id}: {exc}") from None


@functools.lru_cache(maxsize=4096)  # a few bots and models trade every market
def _scopes_of(bot: str, model: str | None) -> tuple[str, ...]:
    scopes = (f"bot:{bot}", *((f"model:{model}",) if model else ()))
    for scope in scopes:
        validate_scope(scope)
    return scopes


def on_fill(record: FillEvent, message: InputMessage) -> Awaitable[None] | None:
    time_ms = record.event_time_ms
    check_event_time(time_ms, clock_ms())
    scope = record.scope  # made anew on every read (market:<market>)
    rekeyed = _rekeyed_scopes(record, scope)
    observe_clock(time_ms, message)
    now_ms = clock_ms()
    # trading on a paused scope: judged only while some scope is paused
    alarm = _check_divergence(record, message.partition, now_ms, message) if _paused else None
    state = _state(scope, scope, message.partition)
    _last_input[scope] = message  # what a decision on the market names (parsed only then)
    execution.observe(state, record.kind is _FILL, time_ms, record.requested_size,
                      record.filled_size, record.predicted_slippage_bps,
                      record.realized_slippage_bps, BUCKET_MS)
    pending = _observed(scope, state, now_ms)
    if pending is not None:  # a replay: evaluated now, then sent on at once
        forward = _forward_after(pending, record, message, rekeyed, now_ms)
        return forward if alarm is None else _in_turn([alarm, forward])
    _collect(record, message, rekeyed)
    return alarm


# scope (bot:, model:) -> the fills of the batch in hand bound for it
_digests: dict[str, execution.FillDigest] = {}
_digest_of = _digests.get  # twice per fill: bound once
# scope (bot:, model:) -> the last fill of the batch in hand bound for it: its digest
# carries that fill's cause along (Kafka headers), so a decision there names the fill
_digest_last: dict[str, InputMessage] = {}
_last_input = causes.last_input


def _collect(record: FillEvent, message: InputMessage, rekeyed: tuple[str, ...]) -> None:
    """Count the fill into its bot's and model's digests (sent after the batch)."""
    fill = record.kind is _FILL
    # a StrEnum's str() is its value (.value is a Python-level property: slow per fill)
    time_ms, cohort = record.event_time_ms, str(record.cohort)
    requested, filled = record.requested_size, record.filled_size
    predicted_bps, realized_bps = record.predicted_slippage_bps, record.realized_slippage_bps
    for scope in rekeyed:
        _digest_last[scope] = message
        digest = _digest_of(scope)
        if digest is None:
            digest = _digests[scope] = execution.FillDigest(scope)
        if not scope.startswith("model:"):
            digest.add(None, time_ms, BUCKET_MS, fill, requested, filled, predicted_bps,
                       realized_bps)
            continue
        digest.add(cohort, time_ms, BUCKET_MS, fill, requested, filled, predicted_bps,
                   realized_bps)
        if fill:
            slippage, ratio = fill_samples(requested, filled, predicted_bps, realized_bps)
            digest.add_sample(record.event_id, cohort, record.model_version, time_ms,
                              slippage, ratio)


def send_digests() -> None:
    """Queue one ScopedFills per bot and model with fills in the batch: sent with the
    batch's other output, before its offsets are acknowledged."""
    while _digests:
        scope, digest = _digests.popitem()
        last = _digest_last.pop(scope, None)
        enqueue(fills_by_scope, scope.encode(), _scoped_fills.encode(digest.datum()),
                None if last is None else tracing.carried_headers(last))


async def _forward_after(pending: Awaitable[None], record: FillEvent, message: InputMessage,
                         rekeyed: tuple[str, ...], now_ms: int) -> None:
    await pending
    # under the event-time clock each fill goes on alone: a replay's figures and alerts
    # do not depend on where fetch batches happened to end
    _collect(record, message, rekeyed)
    send_digests()
    await event_time_advanced(now_ms)


async def after_fills() -> None:
    send_digests()
    await evaluate_batch()


def on_scoped_fills(record: ScopedFills, message: InputMessage) -> Awaitable[None] | None:
    scope = record.scope
    model = scope.startswith("model:")
    if not model and not scope.startswith("bot:"):
        raise InvalidInput(f"{scope}: fills are re-keyed to bot: and model: scopes only")
    if model and any(bucket.cohort is None for bucket in record.buckets):
        raise InvalidInput(f"{scope}: a model's fill bucket without a cohort")
    now_ms = clock_ms()
    _last_input[scope] = message  # its headers name the fill it stands for
    pending = []
    for bucket in record.buckets:
        key = f"{scope}#{bucket.cohort.value}" if model else scope
        state = _state(key, scope, message.partition)
        execution.merge(state, bucket.start_ms,
                        [getattr(bucket, name) for name in execution.BUCKET_FIELDS],
                        bucket.last_event_ms, BUCKET_MS)
        if not model:
            outcome = _observed(key, state, now_ms)
            if outcome is not None:
                pending.append(outcome)
            continue
        # a model's fills: execution figures per cohort (they do not alert)
        if EVENT_CLOCK:
            execution.update_figures(state, now_ms, WINDOWS)
        else:
            _unfigured[key] = state
        store(execution_state, key, state, message.partition)
    if model:
        canary.add_fill_samples(scope, message.partition, record)
    return _in_turn(pending) if pending else None


async def _in_turn(pending: list[Awaitable[None]]) -> None:
    for outcome in pending:
        await outcome


consume(topics.exec_fills, "FillEvent", on_fill, after_batch=after_fills)


consume(fills_by_scope, "ScopedFills", on_scoped_fills, after_batch=evaluate_batch)


@every(settings.exec_evaluation_interval_s)
async def evaluate_execution(now_ms: int) -> None:
    """Windows move on without fills: breaches resolve when their fills age out, and the
    figures of scopes that could not alert are brought up to date. Windows are minutes
    long, so every ``exec_evaluation_interval_s`` is often enough (a full pass over every
    market and bot on every tick would cost more than the fills themselves)."""
    owned = owned_partitions(topics.exec_fills)
    evaluated = 0
    for key, state in list(_states.items()):
        if not state or state["partition"] not in owned or "#" in key:
            continue
        if not state["buckets"] and not execution.can_alert(state, BOUNDS):
            continue
        if execution.figures_current(state, now_ms, WINDOWS):
            continue  # no window moved, no fill came: evaluating would change nothing
        transitions = execution.evaluate(state, now_ms, WINDOWS, BOUNDS, RULES)
        if transitions or not state["buckets"]:
            store(execution_state, key, state, state["partition"])
            await _publish(state["scope"], state["partition"], transitions, now_ms)
        evaluated += 1
        if evaluated % YIELD_EVERY == 0:  # thousands of scopes: let the input flow between
            await asyncio.sleep(0)
