"""Drift agents: training profiles from model.profiles (compacted), live feature samples
from model.features, KL(recent ‖ training) per feature over a hopping window.

Flow per profile: keep the newest profile of the model (its bin edges and
probabilities). Per sample: check the event time → add one count per feature to the
sample's time bucket (a table entry per model, profile version and bucket: histograms,
never raw samples) → evaluate the window against the profile (pure core:
streams.control.drift) → RISK_MODEL_DRIFT alerts → forget buckets the window left
behind. Samples of a model without a profile are not compared (there is nothing to
compare them with) and not kept.

Everything is keyed by the model scope (model:<id>), like the model's scores, rollout
commands and rollout state, so the rollout gatekeeper reads this state on its own
worker. The drift alert blocks promotions (streams.agents.rollout) and, in CANARY or
LIVE, rolls the model back.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import faust

from streams.agents import causes
from streams.agents.decoding import InvalidInput, consume
from streams.agents.health import check_event_time
from streams.agents.latches import apply_alerts
from streams.agents.outputs import forget, rows_of, store
from streams.agents.ticks import EVENT_CLOCK, event_time_advanced, observe_clock
from streams.app import app, clock_ms, settings, topics
from streams.codec import InputMessage
from streams.control import drift
from streams.control.alerts import rule_from
from streams.records import FeatureProfile, FeatureSample
from streams.scopes import ScopeError, validate_scope

SOURCE = "agents.drift"
WINDOW_MS = settings.drift_window_s * 1000
HOP_MS = settings.drift_hop_s * 1000
RULE = rule_from(settings.alert_rule(drift.DRIFT))
_json = faust.Schema(key_serializer="json", value_serializer="json")
_partitions = topics.health_events.partitions
drift_profiles = app.Table("drift-profiles", default=None, schema=_json, partitions=_partitions)
drift_counts = app.Table("drift-counts", default=None, schema=_json, partitions=_partitions)
drift_state = app.Table("drift-state", default=None, schema=_json, partitions=_partitions)
_profiles, _counts, _states = rows_of(drift_profiles), rows_of(drift_counts), rows_of(drift_state)


def require_scope(scope: str) -> str:
    try:
        return validate_scope(scope)
    except ScopeError as exc:
        raise InvalidInput(str(exc)) from None


async def on_profile(record: FeatureProfile, message: InputMessage) -> None:
    require_scope(record.scope)
    if not drift.replaces(_profiles.get(record.scope), record.model_version,
                          record.created_time_ms):
        return
    profile = drift.new_profile(
        record.scope, message.partition, record.model_version, record.created_time_ms,
        [(f.name, f.bin_edges, f.probabilities) for f in record.features])
    store(drift_profiles, record.scope, profile, message.partition)


_last_input = causes.last_input


def on_features(record: FeatureSample, message: InputMessage) -> Awaitable[None] | None:
    """Handle one sample; what is left to await is returned, None when there is nothing
    (no profile to compare with, a sample older than the window, the wall clock): no
    coroutine is made for it."""
    scope = record.scope  # made anew on every read (model:<model>)
    require_scope(scope)
    check_event_time(record.event_time_ms, clock_ms())
    observe_clock(record.event_time_ms, message)
    now_ms = clock_ms()
    _last_input[scope] = message  # what a drift decision names
    profile = _profiles.get(scope)
    if profile is not None:
        window = drift.window_buckets(now_ms, WINDOW_MS, HOP_MS)
        start = drift.bucket_start(record.event_time_ms, HOP_MS)
        if start >= window[0]:
            return _count_and_evaluate(record, profile, start, window, message.partition,
                                       now_ms)
    return event_time_advanced(now_ms) if EVENT_CLOCK else None


async def _count_and_evaluate(record: FeatureSample, profile: dict[str, Any], start: int,
                              window: list[int], partition: int, now_ms: int) -> None:
    """Count the sample, evaluate the window, act on the alert; then the event time's
    ticks (event-time clock)."""
    scope, version = record.scope, profile["model_version"]
    key = drift.counts_key(scope, version, start)
    counts = _counts.get(key) or drift.new_counts(scope, partition, profile, start)
    drift.add_sample(counts, profile, record.features)
    store(drift_counts, key, counts, partition)

    stored = _states.get(scope)
    state = stored or {**drift.new_state(scope, partition), "buckets": []}
    state["partition"] = partition
    keys = (drift.counts_key(scope, version, bucket) for bucket in window)
    entries = [entry for key in keys if (entry := _counts.get(key))]
    transitions = drift.evaluate(state, profile, entries, now_ms, settings.drift_threshold,
                                 settings.drift_min_samples, settings.drift_window_s,
                                 RULE)
    kept = {key, *state["buckets"]}
    expired = {k for k in kept if int(k.rsplit("|", 1)[1]) < window[0]}
    buckets = sorted(kept - expired)
    # The latest evaluation is updated in place on every sample; the changelog gets the
    # state when the alert or the bucket list changes (not once per sample).
    if stored is None or transitions or buckets != state["buckets"]:
        state["buckets"] = buckets
        store(drift_state, scope, state, partition)
    for old in expired:
        forget(drift_counts, old, partition)
    await apply_alerts(scope, partition, transitions, now_ms, SOURCE)
    await event_time_advanced(now_ms)


consume(topics.model_profiles, "FeatureProfile", on_profile)


consume(topics.model_features, "FeatureSample", on_features)
