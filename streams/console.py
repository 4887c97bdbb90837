"""Avro console tools, as Kafka users know them from kafka-avro-console-producer and
-consumer: JSON lines in, validated Avro records out, and back."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition
from pydantic import ValidationError

from streams.codec import AvroCodec, CodecError, describe_validation_error
from streams.kafka_security import librdkafka_config
from streams.records import Record
from streams.topics import TopicSpec


class InputError(ValueError):
    """Input lines that cannot be sent; ``problems`` says which and why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def record_key(record: Record, key_field: str) -> bytes:
    """The message key: the spec's key field, found on the record or in its payload."""
    for holder in (record, getattr(record, "payload", None)):
        value = getattr(holder, key_field, None)
        if value is not None:
            return str(value).encode()
    raise ValueError(f"record has no {key_field!r} field to use as the key")


def encode_json_lines(
    lines: Iterable[str], spec: TopicSpec, codec: AvroCodec, max_problems: int = 20
) -> list[tuple[bytes, bytes]]:
    """Validate every line first, so that bad input sends nothing (all or nothing)."""
    messages: list[tuple[bytes, bytes]] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = codec.record_type.model_validate_json(line)
            datum = record.to_avro()
            codec.validate(datum)
            messages.append((record_key(record, spec.key), codec.encode(datum)))
        except ValidationError as exc:
            problems.append(f"line {number}: {describe_validation_error(exc)}")
        except (CodecError, ValueError) as exc:
            problems.append(f"line {number}: {exc}")
        if len(problems) >= max_problems:
            problems.append(f"(stopped after {max_problems} problems)")
            break
    if problems:
        raise InputError(problems)
    return messages


def kafka_producer(bootstrap: str, **extra: Any) -> Producer:
    """An idempotent acks=all producer that partitions keys like the Java client, aiokafka
    and Faust do (murmur2), so every producer of the platform agrees on where a scope's
    messages go."""
    return Producer({
        **librdkafka_config(bootstrap), "acks": "all", "enable.idempotence": True,
        "linger.ms": 5, "partitioner": "murmur2_random", **extra,
    })


def send_all(producer: Producer, topic: str, messages: Iterable[tuple[bytes | None, bytes]],
             timeout_s: float = 30.0) -> int:
    """Send and wait for every delivery; raises on the first failed delivery."""
    failures: list[str] = []

    def on_delivery(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(f"{message.topic()}: {error}")

    count = 0
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
        count += 1
        producer.poll(0)
    remaining = producer.flush(timeout_s)
    if remaining:
        raise KafkaException(f"{remaining} messages not delivered to {topic} in {timeout_s}s")
    if failures:
        raise KafkaException(f"{len(failures)} deliveries failed, first: {failures[0]}")
    return count


@dataclass(frozen=True)
class Consumed:
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


def read_topic(bootstrap: str, topic: str, from_beginning: bool = True,
               max_messages: int | None = None, idle_timeout_s: float = 5.0,
               security: Mapping[str, str] | None = None) -> Iterator[Consumed]:
    """Messages of every partition of ``topic``, until ``max_messages`` or nothing new
    arrives for ``idle_timeout_s``. Reads without a consumer group: nothing committed.
    ``security``: librdkafka security keys instead of this process's settings."""
    consumer = Consumer({
        **librdkafka_config(bootstrap), **(security or {}),
        "group.id": f"polymon-console-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "enable.partition.eof": False,
    })
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise KafkaException(f"topic {topic} does not exist on {bootstrap}")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([KafkaTopicPartition(topic, p, start) for p in described.partitions])
        seen = 0
        last_activity = time.monotonic()
        while max_messages is None or seen < max_messages:
            message = consumer.poll(0.2)
            if message is None:
                if time.monotonic() - last_activity > idle_timeout_s:
                    return
                continue
            if message.error() is not None:
                raise KafkaException(message.error())
            last_activity = time.monotonic()
            seen += 1
            kind, stamp = message.timestamp()
            yield Consumed(message.partition(), message.offset(), stamp if kind else None,
                           message.key(), message.value())
    finally:
        consumer.close()


def to_json_line(record: Record) -> str:
    return json.dumps(record.model_dump(mode="json"), sort_keys=False)
