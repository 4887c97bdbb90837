"""The loop of every input agent: bytes to a validated record, handed to the agent's
handler; anything that cannot be decoded, validated or processed goes to the
dead-letter topic with its bytes and the reason, and the stream keeps going."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from streams.app import codecs, metrics, settings, topics
from streams.codec import InputMessage, dead_letter, decode_or_dead_letter
from streams.records import DeadLetter, DeadLetterStage, Record

log = logging.getLogger(__name__)

Handler = Callable[[Any, InputMessage], Awaitable[None] | None]


class InvalidInput(ValueError):
    """Raised by a handler for a record that decodes but must not be used (e.g. an event
    time far outside the accepted skew): it is dead-lettered at the VALIDATE stage."""


def input_message(event: faust.EventT) -> InputMessage:
    message = event.message
    timestamp = message.timestamp
    return InputMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(timestamp * 1000) if timestamp else None,
        key=message.key,
        value=message.value,
    )


async def publish_dead_letter(letter: DeadLetter) -> None:
    await topics.dead_letters.send(key=letter.source_topic.encode(), value=letter)
    metrics.dead_letters.labels(letter.source_topic, letter.stage.value).inc()
    log.warning("dead-lettered %s[%d]@%d (%s): %s", letter.source_topic, letter.source_partition,
                letter.source_offset, letter.stage.value, letter.error)


async def for_each_record(stream: faust.StreamT, schema: str, handler: Handler) -> None:
    """Run ``handler(record)`` for every valid record of ``stream``."""
    codec = codecs[schema]
    async for event in stream.events():
        message = input_message(event)
        record = decode_or_dead_letter(codec, message, settings.worker_id)
        if isinstance(record, DeadLetter):
            await publish_dead_letter(record)
            continue
        try:
            outcome = handler(record, message)
            if outcome is not None:
                await outcome
        except InvalidInput as exc:
            await publish_dead_letter(
                dead_letter(message, DeadLetterStage.VALIDATE, str(exc), settings.worker_id)
            )
            continue
        except Exception as exc:  # a bug must not stop monitoring: keep the input, go on
            log.exception("processing %s[%d]@%d failed", message.topic, message.partition,
                          message.offset)
            await publish_dead_letter(
                dead_letter(message, DeadLetterStage.PROCESS, repr(exc), settings.worker_id)
            )
            continue
        metrics.events_processed.labels(message.topic).inc()


__all__ = ["InvalidInput", "Record", "for_each_record", "publish_dead_letter"]
