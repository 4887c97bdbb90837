"""Replay from topic offsets or times into a replay namespace, and compare with live.

The recorded input topics of a window are copied (key, value, partition and timestamp
untouched) into topics under a replay prefix; a worker runs the pipeline there with
its own consumer group and the event-time clock; then its alerts, pauses and incidents
are matched with the live ones of the same window by their deterministic ids.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from streams.codec import CodecError, Codecs, SchemaCatalog
from streams.console import kafka_producer, send_all
from streams.kafka_security import librdkafka_config
from streams.records import PauseState, ReportEnvelope
from streams.topics import admin_client, create_topics, load_topic_specs
from streams.worker_process import WorkerProcess

INPUT_TOPICS = ("health.events", "exec.fills", "model.scores", "model.features",
                "model.profiles", "model.evaluations", "ops.commands")
OUTPUT_TOPICS = ("monitor.alerts", "control.pauses", "monitor.incidents")


class ReplayError(ValueError):
    """A replay request that cannot be carried out as asked (exit 2)."""


Bound = int | datetime  # an offset (per partition) or a time


def parse_bound(text: str) -> Bound:
    """An integer offset, or an ISO-8601 time (UTC when no zone is given)."""
    if re.fullmatch(r"\d+", text.strip()):
        return int(text)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(f"{text!r} is neither an offset nor an ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class Window:
    """Per topic and partition: [start, end) offsets; plus the time span covered."""

    ranges: dict[str, dict[int, tuple[int, int]]]
    first_ms: int
    last_ms: int

    @property
    def size(self) -> int:
        return sum(end - start for parts in self.ranges.values() for start, end in parts.values())


def _consumer(bootstrap: str) -> Consumer:
    return Consumer({**librdkafka_config(bootstrap), "group.id": "polymon-replay-reader",
                     "enable.auto.commit": False, "enable.partition.eof": True})


def resolve_window(bootstrap: str, prefix: str, topics: list[str], start: Bound,
                   end: Bound) -> Window:
    if isinstance(start, datetime) and isinstance(end, datetime) and start >= end:
        raise ReplayError(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
    if isinstance(start, int) and isinstance(end, int) and start >= end:
        raise ReplayError(f"--from offset {start} is not before --to offset {end}")
    unknown = [t for t in topics if t not in INPUT_TOPICS]
    if unknown:
        raise ReplayError(f"unknown input topic(s): {', '.join(unknown)} "
                          f"(replayable: {', '.join(INPUT_TOPICS)})")
    consumer = _consumer(bootstrap)
    try:
        ranges: dict[str, dict[int, tuple[int, int]]] = {}
        for topic in topics:
            name = prefix + topic
            metadata = consumer.list_topics(name, timeout=10).topics.get(name)
            if metadata is None or metadata.error is not None:
                raise ReplayError(f"topic {name} does not exist on {bootstrap}")
            ranges[topic] = {}
            for partition in sorted(metadata.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(name, partition),
                                                           timeout=10)
                first = _offset(consumer, name, partition, start, low, high)
                last = _offset(consumer, name, partition, end, low, high)
                if last > first:
                    ranges[topic][partition] = (first, last)
        window = Window(ranges, 0, 0)
        if window.size == 0:
            raise ReplayError("the window holds no messages: nothing to replay")
        window.first_ms, window.last_ms = _time_span(consumer, prefix, window)
        return window
    finally:
        consumer.close()


def _offset(consumer: Consumer, topic: str, partition: int, bound: Bound, low: int,
            high: int) -> int:
    if isinstance(bound, int):
        return max(low, min(bound, high))
    [found] = consumer.offsets_for_times([TopicPartition(topic, partition, _ms(bound))],
                                         timeout=10)
    return high if found.offset < 0 else max(low, found.offset)


def _time_span(consumer: Consumer, prefix: str, window: Window) -> tuple[int, int]:
    stamps = []
    for topic, parts in window.ranges.items():
        for partition, (start, end) in parts.items():
            for offset in (start, end - 1):
                consumer.assign([TopicPartition(prefix + topic, partition, offset)])
                message = consumer.poll(10)
                if message is not None and message.error() is None:
                    stamps.append(message.timestamp()[1])
    return min(stamps), max(stamps)


def copy_window(bootstrap: str, source_prefix: str, target_prefix: str, window: Window,
                on_progress: Callable[[int], None]) -> int:
    """Copy the window's messages into the one-partition replay topics, merged in
    timestamp order, so the replay consumes them in one total event-time order."""
    producer = kafka_producer(bootstrap, **{"linger.ms": 20})
    consumer = _consumer(bootstrap)
    copied = 0
    try:
        for topic, parts in window.ranges.items():
            messages = []
            for partition, (start, end) in parts.items():
                consumer.assign([TopicPartition(source_prefix + topic, partition, start)])
                offset = start
                while offset < end:
                    message = consumer.poll(5)
                    if message is None:
                        raise ReplayError(f"{source_prefix + topic}[{partition}] stopped at "
                                          f"offset {offset} before {end}")
                    if message.error() is not None:
                        continue  # partition EOF notices
                    offset = message.offset() + 1
                    messages.append((message.timestamp()[1], partition, message.offset(),
                                     message.key(), message.value()))
            messages.sort(key=lambda m: m[:3])
            for stamp, _, _, key, value in messages:
                producer.produce(target_prefix + topic, key=key, value=value, partition=0,
                                 timestamp=stamp)
                copied += 1
                if copied % 500 == 0:
                    producer.poll(0)
                    on_progress(500)
        send_all(producer, target_prefix + "health.events", [])  # flush, check deliveries
        on_progress(copied % 500)
    finally:
        consumer.close()
    return copied


def committed_lag(bootstrap: str, group: str, prefix: str, window: Window) -> int:
    """How many replayed messages the replay group has not committed yet."""
    consumer = Consumer({**librdkafka_config(bootstrap), "group.id": group,
                         "enable.auto.commit": False})
    try:
        wanted = [TopicPartition(prefix + topic, 0) for topic in window.ranges]
        committed = consumer.committed(wanted, timeout=10)
        sizes = {prefix + topic: sum(end - start for start, end in parts.values())
                 for topic, parts in window.ranges.items()}
        return sum(max(0, sizes[tp.topic] - max(tp.offset, 0)) for tp in committed)
    finally:
        consumer.close()


@dataclass
class Outputs:
    """Decisions by kind, by deterministic id, with a one-line description."""

    by_kind: dict[str, dict[str, str]] = field(default_factory=dict)

    def count(self) -> int:
        return sum(len(ids) for ids in self.by_kind.values())


def read_outputs(bootstrap: str, prefix: str, since_ms: int | None = None,
                 until_ms: int | None = None) -> Outputs:
    """Alerts, pauses and incidents under ``prefix``; with bounds, only the decisions made
    between them (on the deciding worker's clock)."""
    from streams.console import read_topic

    specs = load_topic_specs()
    codecs = Codecs(SchemaCatalog())
    outputs = Outputs({topic: {} for topic in OUTPUT_TOPICS})
    for topic in OUTPUT_TOPICS:
        codec = codecs[specs[topic].schema]
        for message in read_topic(bootstrap, prefix + topic, True, None, idle_timeout_s=1.0):
            try:
                record = codec.decode_record(message.value)
            except (CodecError, ValueError):
                continue
            if isinstance(record, PauseState):
                decided, ident = record.updated_ms, record.state_id
                text = f"{record.scope} {'paused' if record.paused else 'resumed'} " \
                       f"{record.reason_code or ''}"
            elif isinstance(record, ReportEnvelope):
                decided, ident = record.observed_time_ms, record.envelope_id
                status = getattr(record.payload, "status", getattr(record.payload, "state", ""))
                text = f"{record.scope} {record.reason_code} {getattr(status, 'value', status)}"
            else:
                continue
            if (since_ms is None or decided >= since_ms) and (
                    until_ms is None or decided <= until_ms):
                outputs.by_kind[topic][ident] = text
    return outputs


@dataclass
class Comparison:
    matched: dict[str, int]
    only_live: dict[str, dict[str, str]]
    only_replay: dict[str, dict[str, str]]

    @property
    def identical(self) -> bool:
        return not any(self.only_live.values()) and not any(self.only_replay.values())


def compare(live: Outputs, replay: Outputs) -> Comparison:
    matched, only_live, only_replay = {}, {}, {}
    for kind in OUTPUT_TOPICS:
        a, b = live.by_kind.get(kind, {}), replay.by_kind.get(kind, {})
        matched[kind] = len(a.keys() & b.keys())
        only_live[kind] = {k: a[k] for k in sorted(a.keys() - b.keys())}
        only_replay[kind] = {k: b[k] for k in sorted(b.keys() - a.keys())}
    return Comparison(matched, only_live, only_replay)


@dataclass
class ReplayRun:
    prefix: str
    window: Window
    copied: int
    replay: Outputs
    comparison: Comparison


def run_replay(
    bootstrap: str, source_prefix: str, target_prefix: str, topics: list[str], start: Bound,
    end: Bound, state_dir: Path, on_stage: Callable[[str], None],
    on_progress: Callable[[int, int], None], worker_settings: dict | None = None,
    timeout_s: float = 300.0,
) -> ReplayRun:
    window = resolve_window(bootstrap, source_prefix, topics, start, end)
    on_stage(f"window: {window.size} messages, "
             f"{datetime.fromtimestamp(window.first_ms / 1000, UTC).isoformat()} → "
             f"{datetime.fromtimestamp(window.last_ms / 1000, UTC).isoformat()}")
    create_topics(admin_client(bootstrap), load_topic_specs(partitions=1), target_prefix)
    total, done = window.size, 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        on_progress(done, total)

    copied = copy_window(bootstrap, source_prefix, target_prefix, window, advance)
    on_stage(f"copied {copied} messages to {target_prefix}*; running the pipeline")
    run_dir = state_dir / "replays" / target_prefix.strip(".")
    shutil.rmtree(run_dir, ignore_errors=True)
    worker = WorkerProcess(bootstrap, run_dir, worker_id=f"replay-{target_prefix.strip('.')}",
                           topic_prefix=target_prefix, clock="event", partitions=1,
                           **(worker_settings or {}))
    try:
        worker.start().wait_ready(timeout_s=120)
        group = f"{target_prefix}polymon"
        deadline = time.monotonic() + timeout_s
        while (lag := committed_lag(bootstrap, group, target_prefix, window)) > 0:
            on_progress(total - lag, total)
            if time.monotonic() > deadline:
                raise TimeoutError(f"replay worker still {lag} messages behind after "
                                   f"{timeout_s}s (log: {worker.log_path})")
            time.sleep(0.5)
        on_progress(total, total)
        time.sleep(2.0)  # let timers act on the final watermark and outputs flush
    finally:
        worker.stop()
    replay = read_outputs(bootstrap, target_prefix)
    live = read_outputs(bootstrap, source_prefix, window.first_ms, window.last_ms)
    return ReplayRun(target_prefix, window, copied, replay, compare(live, replay))
