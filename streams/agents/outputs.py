"""What agents publish: alerts, pauses and their audit entries; and table writes that
also work from timers (outside a stream, the changelog partition is given explicitly).

One place turns pure-core decisions into envelopes, so every agent publishes the same
way and every decision is audited."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import faust
import ujson

from streams import otel
from streams.agents import causes
from streams.app import app, settings, topics
from streams.control.alerts import AlertTransition
from streams.control.keying import partition_for
from streams.control.pauses import PauseChange
from streams.delivery import (
    YIELD_EVERY,
    DeliveryFailed,
    acknowledge_every,
    deciders_midway,
    none_deciding,
    pending,
)
from streams.envelope import alert_envelope, audit_envelope
from streams.framework.clients import aiokafka_producer
from streams.records import AlertStatus, PauseState
from streams.stores import MemoryStore
from streams.tracing import Cause

log = logging.getLogger(__name__)
# no headers: aiokafka's record builder takes a list only, and makes one per None (never
# mutated, like aiokafka's own default)
_NO_HEADERS: list[tuple[str, bytes]] = []
# an encoded message: (key, value), or (key, value, Kafka headers)
OutMessage = tuple[bytes | None, bytes | None] | tuple[
    bytes | None, bytes | None, list[tuple[str, bytes]]]

def track(topic: str, future: Any) -> None:
    """Keep the delivery future of a message or batch sent to ``topic``: the next flush
    waits for the broker's acknowledgement (streams.delivery.PendingDeliveries)."""
    pending.track(topic, future)


async def send(topic: faust.TopicT, key: bytes, value: Any) -> None:
    """``topic.send``, its delivery tracked: Faust's send returns once the message is
    queued, and nothing else would notice that the broker never took it."""
    name = topic.get_topic_name()
    track(name, await topic.send(key=key, value=value))
    if otel.active is not None:  # a span per decision (optional exporter)
        otel.active.sent(name, value)


def owned_partitions(topic: faust.TopicT) -> set[int]:
    """Partition numbers of ``topic`` this worker actively owns (standby table copies are
    not ours to act on). Inputs are co-partitioned, so any input topic answers for all."""
    name = topic.get_topic_name()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name}


# (changelog topic, partition) -> {key: latest value} not yet sent to the changelog
_unsent: dict[tuple[str, int], dict[str, Any]] = {}
_flushing = asyncio.Lock()


# id(table) -> (table, its rows, its rows' partitions, its changelog topic name): stores
# are the hottest writes, and Faust derives the name anew on every call (tables are not
# hashable). A plain tuple: cheaper to unpack than a NamedTuple.
_sinks: dict[int, tuple[faust.Table, dict[Any, Any], dict[Any, int], str]] = {}
# read for every store: bound once (a method looked up per call costs more than the read)
_sink_get, _unsent_get = _sinks.get, _unsent.get


def _sink_of(table: faust.Table) -> tuple[faust.Table, dict[Any, Any], dict[Any, int], str]:
    known = _sinks.get(id(table))
    if known is None or known[0] is not table:
        memory: MemoryStore = table.data
        known = _sinks[id(table)] = (table, memory.data, memory.key_partitions,
                                     table.changelog_topic.get_topic_name())
    return known


def rows_of(table: faust.Table) -> dict[Any, Any]:
    """The rows of ``table``: its store's own dict, which lasts the table's life. Agents
    bind it once: ``table.data`` is a Python property behind mode's attribute hook, and
    the handlers read tables several times per event."""
    return _sink_of(table)[1]


def _unsent_of(table: faust.Table, partition: int) -> dict[str, Any]:
    target = (_sink_of(table)[3], partition)
    changes = _unsent.get(target)
    if changes is None:
        changes = _unsent[target] = {}
    return changes


def store(table: faust.Table, key: str, value: Any, partition: int) -> None:
    """Write ``table[key]`` now, and its changelog record to ``partition`` (the partition
    of the input that owns the key) at the next flush_changelogs(): a key changed many
    times in one batch costs one changelog record, not one per event."""
    sink = _sink_get(id(table))
    if sink is None or sink[0] is not table:
        sink = _sink_of(table)
    sink[1][key] = value  # MemoryStore.put, inline: this runs for every event
    sink[2][key] = partition
    target = (sink[3], partition)
    changes = _unsent_get(target)
    if changes is None:
        changes = _unsent[target] = {}
    changes[key] = value


def forget(table: faust.Table, key: str, partition: int) -> None:
    """Delete ``table[key]`` and tombstone it in the changelog at the next flush."""
    table.data.drop(key)
    _unsent_of(table, partition)[key] = None


async def send_raw(topic: str, partition: int, messages: Iterable[OutMessage]) -> int:
    """Hand encoded (key, value) messages for one partition to the producer in record
    batches: one accumulator call per batch instead of one per message (Faust's send
    wraps every message in its own bookkeeping). A message may carry Kafka headers as a
    third item. Returns how many were handed over."""
    producer = aiokafka_producer(app)
    if producer is None:  # the framework patches off: Faust's own send, one by one
        return await _send_one_by_one(topic, partition, messages)
    batch, count = producer.create_batch(), 0
    for message in messages:
        if len(message) == 2:
            key, value = message  # type: ignore[misc]
            headers = _NO_HEADERS
        else:
            key, value, headers = message  # type: ignore[misc]
        if count and count % YIELD_EVERY == 0:  # a second of changes is thousands: let
            await asyncio.sleep(0)  # the staleness timer run between them
        while batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            if batch.record_count() == 0:  # larger than a whole batch: on its own
                track(topic, await producer.send(topic, value, key=key, partition=partition,
                                                 headers=headers))
                break
            track(topic, await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
        count += 1
    if batch.record_count():
        track(topic, await producer.send_batch(batch, topic, partition=partition))
    return count


async def _send_one_by_one(topic: str, partition: int, messages: Iterable[OutMessage]) -> int:
    futures = [await app.producer.send(topic, message[0], message[1], partition, None,
                                       message[2] if len(message) > 2 else None)
               for message in messages]
    for sent in futures:  # handed over only once the broker has them
        await sent
    return len(futures)


def encode_json(value: Any) -> bytes:
    """JSON of a table key or value, for its changelog: what json.dumps writes (NaN and
    Infinity as json writes them, for json.loads to read back), in a third of the time
    (changelog records were the largest single cost per event after decoding)."""
    return ujson.dumps(value, escape_forward_slashes=False).encode()


# (topic, partition) -> encoded (key, value[, headers]) messages queued by handlers, in order
_outbox: dict[tuple[str, int], list[OutMessage]] = {}


@functools.lru_cache(maxsize=65536)
def _target_of(topic: faust.TopicT, key: bytes) -> tuple[str, int]:
    """The topic's name and the partition the input producers would pick for ``key``
    (setting ``input_partitioner``), so re-keyed messages meet the inputs keyed alike."""
    return (topic.get_topic_name(),
            partition_for(key, topic.partitions or 1, settings.input_partitioner))


def enqueue(topic: faust.TopicT, key: bytes, value: bytes | None,
            headers: list[tuple[str, bytes]] | None = None) -> None:
    """Queue an encoded message for ``topic``, on the partition of ``key``; it is handed
    to the producer (in order, batched) at the next flush (flush_outbox_if_due), and
    before the offsets of its input are acknowledged, so a commit never covers a
    message not sent."""
    target = _target_of(topic, key)
    queued = _outbox.get(target)
    if queued is None:
        queued = _outbox[target] = []
    queued.append((key, value) if not headers else (key, value, headers))


async def _send_outbox() -> int:
    """Send what is queued (the caller holds ``_flushing``). What could not be handed
    over goes back in front of anything queued since, for the next flush: nothing
    queued is dropped, and an acknowledgement waits until it is sent."""
    sent = 0
    while _outbox:
        target, messages = _outbox.popitem()
        try:
            sent += await send_raw(*target, messages)
        except BaseException:
            _outbox[target] = messages + _outbox.get(target, [])  # resent: at-least-once
            raise
    return sent


_outbox_sent_at = 0.0  # time.monotonic() of the last flush_outbox


async def flush_outbox() -> int:
    """Hand every queued message to the producer (table changes wait for
    flush_changelogs)."""
    global _outbox_sent_at
    _outbox_sent_at = time.monotonic()
    async with _flushing:  # one flusher at a time keeps each partition's order
        return await _send_outbox()


async def flush_outbox_if_due() -> int:
    """flush_outbox, when ``outbox_linger_s`` has passed since the last one (after each
    input batch). Each flush is a produce request per partition, which costs the
    worker and the broker more than its messages when batches are small: with a flood
    of garbage, flushing after every batch cost about 8 % of the worker's CPU."""
    if _outbox and time.monotonic() - _outbox_sent_at >= settings.outbox_linger_s:
        return await flush_outbox()
    return 0


def changelog_messages(changes: dict[str, Any]) -> Iterator[tuple[bytes, bytes | None]]:
    """Table changes as changelog (key, value) messages: JSON, as the tables' schema
    reads them back on recovery; a deleted key is a tombstone."""
    for key, value in changes.items():
        yield encode_json(key), None if value is None else encode_json(value)


_stopping = False  # a delivery failed: the worker stops


async def settle_deliveries() -> int:
    """Wait until the broker has acknowledged everything sent so far (the producer
    retries meanwhile). A delivery that failed stops the worker, loudly: the offsets of
    its cause are never committed, so the restarted worker decides again."""
    global _stopping
    try:
        return await pending.settle()
    except DeliveryFailed as exc:
        if _stopping:  # said once; every later flush refuses as well
            raise
        _stopping = True
        log.critical("polymon worker stopping: %s. No offset after its cause is "
                     "committed; a restart re-processes it (and re-publishes every pause "
                     "latch's state)", exc)
        await app.crash(exc)
        raise


async def flush_changelogs(wait_for_deciders: bool = True) -> int:
    """Hand every queued message and every unsent table change to the producer (changes
    as JSON, as the tables' schema reads them back on recovery), and wait for the
    broker's acknowledgement of all of them. Called before handled offsets are
    acknowledged (so a commit never covers a decision the broker has not got, nor a
    change its changelog has not got) and every ``changelog_flush_interval_s``.
    Decisions are acknowledged before the table changes that record them are sent: a
    crash in between leaves the state from before, and the re-processed input decides
    again (same ids)."""
    sent = 0
    while True:  # (never waiting for deciders under the lock: they flush the outbox)
        if wait_for_deciders:  # (not from within a decider: it would wait for itself)
            await none_deciding()
        await _flushing.acquire()  # a caller returns only when nothing popped is unsent
        if not wait_for_deciders or not deciders_midway():
            break
        _flushing.release()
    try:
        # taken with no handler or tick midway (no await since): every decision these
        # changes record is already sent, so settled below before they are
        changes_now = dict(_unsent)
        _unsent.clear()
        try:
            sent += await _send_outbox()
            await settle_deliveries()
            for target in list(changes_now):
                sent += await send_raw(*target, changelog_messages(changes_now[target]))
                del changes_now[target]  # (a target cut short is sent again, whole)
        except BaseException:  # kept for the next flush; newer values win
            for target, changes in changes_now.items():
                _unsent[target] = {**changes, **_unsent.get(target, {})}
            raise
        await settle_deliveries()
    finally:
        _flushing.release()
    return sent


acknowledge_every(settings.changelog_flush_interval_s, flush_changelogs)


@app.timer(interval=settings.changelog_flush_interval_s)
async def flush_changelogs_periodically() -> None:
    """For changes made outside a batch or a tick (e.g. a table written on rebalance)."""
    await flush_changelogs()


@app.timer(interval=max(settings.outbox_linger_s / 2, 0.01))
async def flush_outbox_when_input_pauses() -> None:
    """What the last batches queued, when no further batch comes to send it."""
    await flush_outbox_if_due()


async def publish_alert(transition: AlertTransition, source: str, now_ms: int,
                        cause: Cause | None = None) -> None:
    """The alert and its audit entry, naming its cause (by default the scope's: see
    streams.agents.causes)."""
    condition = transition.condition
    cause = causes.of(condition.scope) if cause is None else cause
    envelope = alert_envelope(
        alert_id=transition.alert_id, status=transition.status, scope=condition.scope,
        reason_code=condition.reason_code, metric=condition.metric, value=condition.value,
        threshold=condition.threshold, window_s=condition.window_s, message=condition.message,
        source=source, observed_ms=now_ms, event_time_ms=condition.event_time_ms,
        config_version=settings.config_version, cause=cause,
    )
    await send(topics.alerts, envelope.dedup_key.encode(), envelope)
    firing = transition.status is AlertStatus.FIRING
    await send(topics.audit, condition.scope.encode(), audit_envelope(
        decision_id=transition.alert_id, scope=condition.scope,
        reason_code=condition.reason_code, action="alert", actor=source,
        decision="firing" if firing else "resolved",
        evidence={"alert_id": transition.fired_alert_id, "metric": condition.metric,
                  "value": condition.value, "threshold": condition.threshold,
                  "subject": condition.subject, "message": condition.message},
        source=source, observed_ms=now_ms, event_time_ms=condition.event_time_ms,
        config_version=settings.config_version, cause=cause,
    ))


def pause_state(change: PauseChange, now_ms: int, cause: Cause | None = None) -> PauseState:
    """What control.pauses carries for ``change``, made at ``now_ms``, caused by ``cause``."""
    return PauseState(
        **({} if cause is None else cause.fields()),
        scope=change.scope, paused=change.paused, reason_code=change.reason_code,
        since_ms=change.since_ms, cause_id=change.cause_id, policy=change.policy,
        actor=change.actor, updated_ms=now_ms, state_id=change.state_id,
    )


async def send_pause_state(state: PauseState) -> None:
    """Send a scope's pause state to control.pauses (tracked until acknowledged)."""
    await send(topics.pauses, state.scope.encode(), state)


async def publish_pause(change: PauseChange, source: str, now_ms: int,
                        cause: Cause | None = None) -> None:
    cause = causes.of(change.scope) if cause is None else cause
    await send_pause_state(pause_state(change, now_ms, cause))
    await send(topics.audit, change.scope.encode(), audit_envelope(
        decision_id=change.state_id, scope=change.scope,
        reason_code=change.reason_code or "GOV_OPERATOR_ACTION",
        action="pause" if change.paused else "resume", actor=change.actor,
        decision="paused" if change.paused else "resumed",
        before=change.before, after=change.after,
        evidence={"cause_id": change.cause_id, "policy": change.policy},
        source=source, observed_ms=now_ms, event_time_ms=now_ms,
        config_version=settings.config_version, cause=cause,
    ))
