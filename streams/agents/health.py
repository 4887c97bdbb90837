"""Health agents over health.events: freshness, gaps, heartbeats and SLO burn drive alerts
and automatic scope pauses.

Flow: decode → check the event time against the clock → update the scope's state and
summary (pure core: streams.control.health) → alert transitions → pause latch
(streams.control.pauses) → publish alerts, pauses and audit entries. A timer runs the
same evaluation when nothing arrives, because a dead feed sends nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable
from typing import Any

import faust
from faust.types import TP

from streams.agents import causes
from streams.agents.decoding import InvalidInput, consume
from streams.agents.latches import apply_alerts, holding
from streams.agents.outputs import enqueue, owned_partitions, rows_of, store
from streams.agents.ticks import (
    EVENT_CLOCK,
    event_time_advanced,
    every,
    every_tick,
    observe_clock,
)
from streams.app import app, clock_ms, codecs, settings, topics
from streams.codec import InputMessage
from streams.control import health, keying, slos
from streams.control.alerts import AlertTransition, Condition
from streams.control.due import DueIndex
from streams.envelope import alert_envelope
from streams.maths.slo import DEFAULT_BURN_RULES, BurnRule
from streams.records import AlertPayload, AlertStatus, HealthEvent, HealthEventKind, ReportEnvelope
from streams.stores import upgrade_recovered

SOURCE = "agents.health"
burn_rules = (
    [BurnRule(**rule.model_dump()) for rule in settings.slo_burn_rules]
    if settings.slo_burn_rules else list(DEFAULT_BURN_RULES)
)
_json = faust.Schema(key_serializer="json", value_serializer="json")
scope_health = app.Table("scope-health", default=None, schema=_json,
                         partitions=topics.health_events.partitions)
slo_windows = app.Table("slo-windows", default=None, schema=_json,
                        partitions=topics.health_events.partitions)
# states kept in the nested layout of earlier versions come back in the current one
upgrade_recovered(scope_health.name, health.upgrade_scope_state)
_states, _slo_states = rows_of(scope_health), rows_of(slo_windows)
_state_of = _states.get  # per event: bound once (see streams.app.clock_ms)
_last_input = causes.last_input


# settings are fixed while a worker runs; these are read for every event
_MAX_SKEW_MS = settings.max_event_skew_s * 1000
_MAX_AGE_MS = settings.max_event_age_s * 1000
_DEFAULT_HEARTBEAT_MS = int(settings.heartbeat_default_interval_s * 1000)
_SLO_PROBE = HealthEventKind.SLO_PROBE  # a member read per event (EnumType's hook: slow)


def check_event_time(event_time_ms: int, now_ms: int) -> None:
    if now_ms == 0:  # an event-time clock before its first event has no "now" yet
        return
    if event_time_ms - now_ms > _MAX_SKEW_MS:
        raise InvalidInput(
            f"event_time_ms {event_time_ms} is {(event_time_ms - now_ms) / 1000:.1f}s in the "
            f"future (accepted skew {settings.max_event_skew_s:g}s)"
        )
    if now_ms - event_time_ms > _MAX_AGE_MS:
        raise InvalidInput(
            f"event_time_ms {event_time_ms} is {(now_ms - event_time_ms) / 1000:.0f}s old "
            f"(accepted age {settings.max_event_age_s:g}s)"
        )


# When each scope can next go stale or miss a heartbeat with no event: the timer visits
# only the scopes that are due, not every scope on every tick.
_due: DueIndex[str] = DueIndex()
_schedule_due = _due.schedule  # per event: bound once


def threshold_lookup() -> health.ThresholdFn:
    """settings.staleness_threshold_s, asked for every event's feeds (settings are fixed
    while a worker runs): without per-scope overrides a feed's default, one read of a
    small dict; with them, memoised per scope and feed (bounded, since scopes come and go
    over a worker's life: an LRU cache costs more per read than the small dict)."""
    if settings.staleness_overrides_s:
        return functools.lru_cache(maxsize=65536)(settings.staleness_threshold_s)
    defaults, fallback = dict(settings.staleness_thresholds_s), settings.staleness_default_s

    def feed_default(scope: str, feed: str) -> float:
        return defaults.get(feed, fallback)

    return feed_default


_THRESHOLD_S = threshold_lookup()
_MISS_FACTOR = settings.heartbeat_miss_factor


def _schedule(scope: str, state: dict[str, Any]) -> None:
    _due.schedule(scope, health.next_change_ms(state, scope, _THRESHOLD_S, _MISS_FACTOR))


def _keep(state: dict[str, Any], scope: str) -> None:
    """Keep the state and schedule its next check."""
    store(scope_health, scope, state, state["partition"])
    _schedule(scope, state)


async def _decide(state: dict[str, Any], scope: str, transitions: list[AlertTransition],
                  now_ms: int) -> None:
    """Keep the state, schedule its next check and act on the transitions."""
    _keep(state, scope)
    await apply_alerts(scope, state["partition"], transitions, now_ms, SOURCE)


async def _act(scope: str, partition: int, transitions: list[AlertTransition],
               now_ms: int) -> None:
    await apply_alerts(scope, partition, transitions, now_ms, SOURCE)
    await event_time_advanced(now_ms)


# partition -> (offset, timestamp) of the last health event processed on it
_progress: dict[int, tuple[int, int]] = {}
# partition -> when a partition with nothing processed on it was first judged here
_untouched_since: dict[int, int] = {}


def catching_up(partition: int, now_ms: int) -> bool:
    """True while fresh updates of the partition's scopes may still be waiting in its
    backlog (after a start, a rebalance or a stall), so silence proves nothing yet:
    nothing processed on it since it was first judged here (for up to
    ``catch_up_grace_s``: its state was just recovered, its backlog comes next), or an
    unprocessed backlog older than ``catch_up_tolerance_s``."""
    if settings.clock != "wall":
        return False
    offset, stamp = _progress.get(partition, (-1, 0))
    if offset < 0:
        since = _untouched_since.setdefault(partition, now_ms)
        return now_ms - since < settings.catch_up_grace_s * 1000
    if now_ms - stamp <= settings.catch_up_tolerance_s * 1000:
        return False  # processed something recent: whatever waits is not old yet
    try:
        high = app.consumer.highwater(TP(topics.health_events.get_topic_name(), partition))
    except Exception:  # not fetched yet
        return False
    return high is not None and high > offset + 1


# partition -> when this worker took it (expected feeds that never reported count from then)
_assigned_at: dict[int, int] = {}


@app.on_partitions_assigned.connect
async def restart_catch_up_grace(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
    """A partition taken over from a dead worker comes with that worker's last state
    and a backlog: its grace starts when it is first judged here, not when this worker
    started (or it is paused at once for data that is only waiting to be read)."""
    topic = topics.health_events.get_topic_name()
    for tp in assigned:
        if tp.topic == topic:
            _untouched_since.pop(tp.partition, None)
            _assigned_at.pop(tp.partition, None)


# expected scope -> (its partition on health.events, the feeds that must report)
_EXPECTED = {scope: (keying.partition_for(scope.encode(), topics.health_events.partitions,
                                          settings.input_partitioner), feeds)
             for scope, feeds in settings.expected_feeds.items()}


@every(1.0)
async def expect_feeds(now_ms: int) -> None:
    """Expected feeds (setting ``expected_feeds``) of the scopes on this worker's
    partitions that have never reported get a clock from when the partition was taken,
    so a feed that never starts goes stale (after the catch-up grace) like any other."""
    if not _EXPECTED:
        return
    owned = owned_partitions(topics.health_events)
    for scope, (partition, feeds) in _EXPECTED.items():
        if partition not in owned:
            continue
        since = _assigned_at.setdefault(partition, now_ms)
        state = _states.get(scope) or health.new_scope_state(partition)
        if health.expect(state, feeds, since, _DEFAULT_HEARTBEAT_MS):
            state["partition"] = partition
            _keep(state, scope)


def on_health_event(record: HealthEvent, message: InputMessage) -> Awaitable[None] | None:
    """Handle one event; what is left to await (publishing, event-time ticks) is
    returned, None for most events (nothing to publish: no coroutine to run)."""
    scope, kind, event_time_ms = record.scope, record.kind, record.event_time_ms
    partition = message.partition
    now_ms = clock_ms()
    ahead_ms = event_time_ms - now_ms
    if ahead_ms > _MAX_SKEW_MS or -ahead_ms > _MAX_AGE_MS:  # the check's own test, inline
        check_event_time(event_time_ms, now_ms)
    _progress[partition] = (message.offset, message.timestamp or event_time_ms)
    _last_input[scope] = message  # what a decision on the scope names (parsed only then)
    if EVENT_CLOCK:  # the event may move it on
        observe_clock(event_time_ms, message)
        now_ms = clock_ms()
    state = _state_of(scope)
    if state is None:
        state = health.new_scope_state(partition)
    state["partition"] = partition
    probe_transitions = (_observe_probe(record, partition, now_ms)
                         if kind is _SLO_PROBE else None)
    # a StrEnum member is its value (what the summary shows, and what JSON keeps)
    transitions, due_now, due = health.observe_event(
        state, scope, kind, record.event_id, event_time_ms, record.sequence, record.source,
        record.feed, record.heartbeat_interval_ms or _DEFAULT_HEARTBEAT_MS, now_ms,
        _THRESHOLD_S, _MISS_FACTOR)
    if probe_transitions:
        transitions += probe_transitions
    # most events leave nothing to publish; an old backlog event proves nothing
    if due_now and not catching_up(partition, now_ms):
        transitions += health.evaluate(state, scope, now_ms, _THRESHOLD_S, _MISS_FACTOR)
        _keep(state, scope)  # the evaluation may have changed when it is next due
    else:
        store(scope_health, scope, state, partition)
        _schedule_due(scope, due)
    if transitions or EVENT_CLOCK or holding(scope):
        return _act(scope, partition, transitions, now_ms)
    return None


# SLO -> the pause scopes its page-level burns pause besides the probe's own (setting
# slos' "endangers"), and the re-keyed stream that takes each burn to their latches
_ENDANGERED = {slo: slos.pause_scopes(declared.endangers)
               for slo, declared in settings.slos.items() if declared.endangers}
slo_endangered = app.topic(
    f"{settings.group_id}-slo.endangered-repartition",
    partitions=topics.health_events.partitions, key_type=bytes, key_serializer="raw",
    value_serializer="raw", internal=True, replicas=settings.replication_factor,
)
_envelopes = codecs["ReportEnvelope"]


def _observe_probe(record: HealthEvent, partition: int, now_ms: int) -> list[AlertTransition]:
    assert record.slo is not None and record.healthy is not None  # validated for SLO_PROBE
    key = f"{record.scope}|{record.slo}"
    state = _slo_states.get(key) or health.new_slo_state(partition, record.scope,
                                                              record.slo, record.owner)
    # the declared owner wins; else the probes' own (the latest)
    state["owner"] = settings.slo_owner(record.slo) or record.owner or state["owner"]
    state["endangers"] = _ENDANGERED.get(record.slo, ())  # shown by GET /api/slos
    transitions = health.observe_probe(
        state, record.event_time_ms, record.healthy, now_ms, settings.slo_target(record.slo),
        burn_rules, settings.slo_min_events, settings.slo_bucket_s * 1000)
    store(slo_windows, key, state, partition)
    if transitions and record.slo in _ENDANGERED:
        _forward_burns(transitions, _ENDANGERED[record.slo], record.scope, now_ms)
    return transitions


def _forward_burns(transitions: list[AlertTransition], targets: tuple[str, ...],
                   own_scope: str, now_ms: int) -> None:
    """Each page-level burn transition, re-keyed by every scope the SLO endangers: the
    latch of a scope lives on that scope's partition (streams.agents.latches), so the
    burn reaches it there (sent with the batch's other output, before its offsets are
    acknowledged)."""
    for target, transition in slos.endangered_pauses(transitions, targets, own_scope):
        condition = transition.condition
        envelope = alert_envelope(
            alert_id=transition.alert_id, status=transition.status, scope=target,
            reason_code=condition.reason_code, metric=condition.metric,
            value=condition.value, threshold=condition.threshold, window_s=condition.window_s,
            message=f"{condition.message}; endangers {target}", source=SOURCE,
            observed_ms=now_ms, event_time_ms=condition.event_time_ms,
            config_version=settings.config_version, cause=causes.of(own_scope))
        enqueue(slo_endangered, target.encode(), _envelopes.encode_record(envelope))


async def on_endangered_burn(envelope: ReportEnvelope, message: InputMessage) -> None:
    """A page-level burn of an SLO that endangers this scope: the scope's latch holds it
    (policy from pause_policies), or releases it when the burn resolved. The alert itself
    was published by the probe's scope."""
    payload = envelope.payload
    if not isinstance(payload, AlertPayload) or envelope.reason_code != slos.SLO_BURN:
        raise InvalidInput(f"expected a {slos.SLO_BURN} alert, got {envelope.reason_code} "
                           f"({type(payload).__name__})")
    condition = Condition(
        scope=envelope.scope, subject=envelope.scope, reason_code=envelope.reason_code,
        firing=payload.status is AlertStatus.FIRING, metric=payload.metric,
        value=payload.value, threshold=payload.threshold, window_s=payload.window_s,
        cause=envelope.envelope_id, event_time_ms=envelope.event_time_ms,
        message=payload.message)
    transition = AlertTransition(envelope.envelope_id, payload.status, condition,
                                 envelope.envelope_id)
    with causes.caused_by(envelope):  # the probe's input, carried on the envelope
        await apply_alerts(envelope.scope, message.partition, [transition], clock_ms(),
                           SOURCE, publish_alerts=False)


consume(slo_endangered, "ReportEnvelope", on_endangered_burn)


consume(topics.health_events, "HealthEvent", on_health_event)


@every_tick
async def evaluate_silence(now_ms: int) -> None:
    """Stale feeds and missed heartbeats, with no event needed: a dead feed sends nothing."""
    waiting = []
    due = list(_due.pop_due(now_ms))  # all first: evaluating reschedules
    owned = owned_partitions(topics.health_events) if due else set()
    for scope in due:
        state = _states.get(scope)
        if state is None or state["partition"] not in owned:
            continue  # given up in a rebalance: its new owner judges it
        if catching_up(state["partition"], now_ms):
            waiting.append((scope, state))
            continue
        transitions = health.evaluate(state, scope, now_ms, _THRESHOLD_S, _MISS_FACTOR)
        await _decide(state, scope, transitions, now_ms)
    for scope, state in waiting:  # judged once the partition has caught up
        _schedule(scope, state)


@every(2.0)
async def index_recovered_scopes(now_ms: int) -> None:
    """Scopes whose state came from the changelog (restart, rebalance) and has not been
    touched by an event here yet."""
    owned = owned_partitions(topics.health_events)
    for scope, state in list(_states.items()):
        if state is not None and scope not in _due and state["partition"] in owned:
            _schedule(scope, state)
