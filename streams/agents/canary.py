"""Canary agent: per model, canary against baseline on every leading metric over one
fixed window, from model.scores (e.g. Brier per prediction) and from the model's fills
(collected per input batch and re-keyed by streams.agents.execution: |realized − predicted|
slippage per fill, filled/requested per order).

Flow per sample: check the event time → keep it in the window's bounded sample (pure
core: streams.control.canary; bottom-k by id hash, so re-deliveries count once) →
forget windows out of reach. On the clock tick (at most every
``canary_evaluation_interval_s``), once per window, when it has completed: verdict per
leading metric (one-sided non-inferiority test with the metric's margin), combined
("worse on any leading metric" = regressed) → RISK_CANARY_REGRESSION alerts. The
rollout gatekeeper (streams.agents.rollout) reads :func:`current_evaluation`
for promotions to LIVE and rolls back on the regression alert.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any

import faust

from streams.agents import causes
from streams.agents.decoding import InvalidInput, consume
from streams.agents.health import check_event_time
from streams.agents.latches import apply_alerts
from streams.agents.outputs import forget, owned_partitions, rows_of, store
from streams.agents.ticks import EVENT_CLOCK, event_time_advanced, every, observe_clock
from streams.app import app, clock_ms, settings, topics
from streams.codec import InputMessage
from streams.control import canary
from streams.control.alerts import rule_from
from streams.records import ModelScore, ScopedFills
from streams.scopes import ScopeError, validate_scope

SOURCE = "agents.canary"
WINDOW_MS = settings.canary_window_s * 1000
RULE = rule_from(settings.alert_rule(canary.REGRESSION))
_json = faust.Schema(key_serializer="json", value_serializer="json")
_partitions = topics.health_events.partitions
canary_samples = app.Table("canary-samples", default=None, schema=_json, partitions=_partitions)
canary_state = app.Table("canary-state", default=None, schema=_json, partitions=_partitions)
_samples, _states = rows_of(canary_samples), rows_of(canary_state)
_sample_entry = _samples.get  # per sample: bound once (see streams.app.clock_ms)


# a sample: (its id, its event time, its (metric, value) pairs)
Sample = tuple[str, int, Iterable[tuple[str, float]]]


def add_samples(scope: str, partition: int, cohort: str, model_version: str | None,
                samples: Iterable[Sample]) -> None:
    """Offer samples of one cohort and model version to the model's canary comparison,
    in one pass over the model's state (a fill's two metrics, a digest's many fills).
    Only leading metrics count; a sample of a window no longer compared is ignored."""
    leading = settings.canary_leading_metrics
    capacity = settings.canary_max_samples
    stored = _states.get(scope)
    state = stored or canary.new_state(scope, partition)
    tag = canary.cohort_tag(cohort, model_version)
    newest = canary.newest_window(state)  # kept up to date here: accepts(), per sample
    changed_state = False
    for sample_id, event_time_ms, pairs in samples:
        start = canary.window_start(event_time_ms, WINDOW_MS)
        if newest is not None and start < newest - WINDOW_MS:
            continue  # its window is no longer compared
        hashed = None  # one for all the sample's metrics
        for metric, value in pairs:
            if metric not in leading:
                continue
            if hashed is None:
                hashed = canary.sample_hash(sample_id)
                shard = hashed % canary.SHARDS
            key = canary.samples_key(scope, start, metric, tag, shard)
            entry, changed = canary.add_sample(_sample_entry(key), hashed, value,
                                               capacity)
            if changed:
                store(canary_samples, key, entry, partition)
            dropped, changed = canary.record_sample(state, metric, tag, model_version,
                                                    event_time_ms, start)
            changed_state = changed_state or changed
            for old_start, old_pairs in dropped.items():
                for old_key in canary.sample_keys(scope, old_start, old_pairs):
                    forget(canary_samples, old_key, partition)
        if hashed is not None and (newest is None or start > newest):
            newest = start
    if changed_state or (stored is not None and state["partition"] != partition):
        state["partition"] = partition
        store(canary_state, scope, state, partition)


_last_input = causes.last_input


def on_score(record: ModelScore, message: InputMessage) -> Awaitable[None] | None:
    """Add the score's sample; the event time's ticks are returned to await (event-time
    clock), None otherwise: no coroutine is made per score."""
    scope = record.scope  # made anew on every read (model:<model>)
    try:
        validate_scope(scope)
    except ScopeError as exc:
        raise InvalidInput(str(exc)) from None
    check_event_time(record.event_time_ms, clock_ms())
    observe_clock(record.event_time_ms, message)
    _last_input[scope] = message  # what a canary decision names
    add_samples(scope, message.partition, str(record.cohort), record.model_version,
                [(f"score:{record.event_id}", record.event_time_ms,
                  [(record.metric, record.value)])])
    return event_time_advanced(clock_ms()) if EVENT_CLOCK else None


def add_fill_samples(scope: str, partition: int, fills: ScopedFills) -> None:
    """The canary samples of a model's fills (re-keyed to the model's partition in a
    ScopedFills per input batch; see streams.agents.execution)."""
    for group in fills.samples:
        add_samples(scope, partition, group.cohort.value, group.model_version, (
            (f"fill:{event_id}", time_ms, canary.carried_fill_samples(slippage, ratio))
            for event_id, time_ms, slippage, ratio in zip(
                group.event_ids, group.event_times_ms, group.slippage_abs_error_bps,
                group.fill_ratios, strict=True)))


consume(topics.model_scores, "ModelScore", on_score)


def _values(scope: str, start: int, metric: str, tag: str) -> list[float]:
    keys = (canary.samples_key(scope, start, metric, tag, shard)
            for shard in range(canary.SHARDS))
    return canary.values([_samples.get(key) for key in keys])


def current_evaluation(scope: str, now_ms: int) -> dict[str, Any] | None:
    """The canary verdicts of ``scope`` at ``now_ms``: the decision of the last completed
    window (computed from the samples on this worker when the tick has not yet)."""
    state = _states.get(scope)
    if not state:
        return None
    version = state["canary_version"]
    if _decided(scope, state, now_ms):
        return state["evaluation"]
    canary_tag = canary.cohort_tag("CANARY", version)
    samples = {
        int(start): {metric: (_values(scope, int(start), metric, canary_tag),
                              _values(scope, int(start), metric, canary.BASELINE))
                     for metric in settings.canary_leading_metrics}
        for start in state["windows"]
    }
    return canary.evaluate(samples, settings.canary_leading_metrics, settings.canary_alpha,
                           settings.canary_min_samples, settings.canary_test, now_ms,
                           WINDOW_MS, version, settings.canary_margins)


def _decided(scope: str, state: dict[str, Any], now_ms: int) -> bool:
    """Whether the kept evaluation is the decision of the window judged at ``now_ms``, on
    every sample of it kept here (one that arrived after the window's end, in flight,
    has it decided again)."""
    evaluation = state["evaluation"]
    version = state["canary_version"]
    if not canary.decided(evaluation, now_ms, WINDOW_MS, version):
        return False
    start = evaluation["window_start_ms"]
    canary_tag = canary.cohort_tag("CANARY", version)
    for metric, figures in evaluation["metrics"].items():
        for tag, n in ((canary_tag, figures["n_canary"]), (canary.BASELINE, figures["n_baseline"])):
            kept = 0
            for shard in range(canary.SHARDS):
                entry = _samples.get(canary.samples_key(scope, start, metric, tag, shard))
                kept += len(entry["kept"]) if entry else 0
            if kept != n:
                return False
    return True


def _comparable(evaluation: dict[str, Any] | None) -> Any:
    if evaluation is None:
        return None
    return {k: v for k, v in evaluation.items() if k != "evaluated_ms"}


@every(settings.canary_evaluation_interval_s)
async def evaluate_canaries(now_ms: int) -> None:
    owned = owned_partitions(topics.model_scores)
    for scope, state in list(canary_state.items()):
        if not state or state["partition"] not in owned:
            continue
        expired = canary.expire_windows(state, now_ms, WINDOW_MS)
        for start, pairs in expired.items():
            for key in canary.sample_keys(scope, start, pairs):
                forget(canary_samples, key, state["partition"])
        if _decided(scope, state, now_ms):
            if expired:
                store(canary_state, scope, state, state["partition"])
            continue  # this window is decided: nothing changes until the next one ends
        evaluation = current_evaluation(scope, now_ms)
        assert evaluation is not None
        previous = _comparable(state["evaluation"])
        transitions = canary.judge(state, evaluation, RULE)
        if expired or transitions or previous != _comparable(evaluation):
            store(canary_state, scope, state, state["partition"])
        if transitions:
            await apply_alerts(scope, state["partition"], transitions, now_ms, SOURCE)
