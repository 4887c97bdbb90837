"""The loop of every input agent: bytes to a validated record, handed to the agent's
handler; anything that cannot be decoded, validated or processed goes to the
dead-letter topic with its bytes and the reason, and the stream keeps going."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from faust.types import TP

from streams.agents.outputs import enqueue, flush_outbox_if_due
from streams.app import codecs, metrics, settings, topics
from streams.codec import (
    InputMessage,
    Rejection,
    encode_dead_letter,
    rejecting_decoder,
)
from streams.delivery import handle_batches
from streams.records import DeadLetterStage, Record

log = logging.getLogger(__name__)

Handler = Callable[[Any, InputMessage], Awaitable[None] | None]


class InvalidInput(ValueError):
    """Raised by a handler for a record that decodes but must not be used (e.g. an event
    time far outside the accepted skew): it is dead-lettered at the VALIDATE stage."""


# A flood of bad input must not become a flood of log lines (formatting one costs more
# than the dead letter): every letter is on the topic and counted in the metric; the log
# shows the first per source topic and stage in each interval, and how many followed.
DEAD_LETTER_LOG_INTERVAL_S = 10.0
# (source topic, stage) -> [logged at, letters not logged since]
_logged: dict[tuple[str, DeadLetterStage], list[float]] = {}


@functools.lru_cache(maxsize=1024)
def _dead_letter_counter(source_topic: str, stage: DeadLetterStage) -> Any:
    return metrics.dead_letters.labels(source_topic, stage.value)


_letters = codecs["DeadLetter"]


@functools.lru_cache(maxsize=1024)
def _topic_key(source_topic: str) -> bytes:
    return source_topic.encode()


def publish_dead_letter(message: InputMessage, stage: DeadLetterStage, error: str) -> None:
    """Queue the message's dead letter (Avro, keyed by its source topic) with the batch's
    other output: it is sent before the batch's offsets are acknowledged, so no input is
    lost."""
    enqueue(topics.dead_letters, _topic_key(message.topic), encode_dead_letter(
        _letters, message, stage, error, settings.worker_id, int(time.time() * 1000)))
    _dead_letter_counter(message.topic, stage).inc()
    # the log is throttled per origin (a flood of garbage makes this path hot)
    origin = (message.topic, stage)
    now = time.monotonic()
    logged = _logged.get(origin)
    if logged is not None and now - logged[0] < DEAD_LETTER_LOG_INTERVAL_S:
        logged[1] += 1
        return
    quiet = int(logged[1]) if logged is not None else 0
    _logged[origin] = [now, 0]
    log.warning("dead-lettered %s[%d]@%d (%s): %s%s", message.topic, message.partition,
                message.offset, stage.value, error,
                f" (and {quiet} more since the last logged)" if quiet else "")


def consume(topic: faust.TopicT, schema: str, handler: Handler,
            after_batch: Callable[[], Awaitable[None]] | None = None) -> None:
    """Subscribe to ``topic`` and run ``handler(record, message)`` for every valid record,
    in offset order per partition. The consumer hands over each fetched batch of a
    partition at once (streams.delivery); table changes made while handling it reach
    their changelogs before its offsets are acknowledged (every
    ``changelog_flush_interval_s``). ``after_batch`` runs once the batch is handled."""
    decode = rejecting_decoder(codecs[schema])
    processed = metrics.events_processed.labels(topic.get_topic_name())

    async def on_batch(tp: TP, batch: Sequence[InputMessage]) -> None:
        count = 0
        # Dead letters are published together once the records are handled: published
        # one at a time between valid records, the rare path runs cold and slows the
        # valid records around it.
        rejected: list[tuple[InputMessage, DeadLetterStage, str]] = []
        try:
            for message in batch:
                record = decode(message.value)
                if isinstance(record, Rejection):
                    rejected.append((message, record.stage, record.error))
                    continue
                # inline, not a helper coroutine: one per record would cost more than this
                try:
                    outcome = handler(record, message)
                    if outcome is not None:
                        await outcome
                except InvalidInput as exc:
                    rejected.append((message, DeadLetterStage.VALIDATE, str(exc)))
                    continue
                except Exception as exc:  # a bug must not stop monitoring: keep the input
                    log.exception("processing %s[%d]@%d failed", message.topic,
                                  message.partition, message.offset)
                    rejected.append((message, DeadLetterStage.PROCESS, repr(exc)))
                    continue
                count += 1
        finally:  # queued before the batch's offsets can be acknowledged
            for message, stage, error in rejected:
                publish_dead_letter(message, stage, error)
        if after_batch is not None:
            try:
                await after_batch()
            except Exception:  # a bug must not stop monitoring: the records are counted
                log.exception("after a batch of %s[%d] failed", tp.topic, tp.partition)
        await flush_outbox_if_due()
        processed.inc(count)

    handle_batches(topic, on_batch)


__all__ = ["InvalidInput", "Record", "consume", "publish_dead_letter"]
