"""Input delivery as agents see it: each input topic registers one handler of its
records' batches, and what must be awaited before handled offsets are acknowledged.

Who calls the handlers depends on ``framework_patches`` (streams.framework):

- on: the batching consumer (streams.framework.batch_consumer) hands each fetched
  batch of a partition to its handler in one call, in chunks of :data:`YIELD_EVERY`,
  and acknowledges handled offsets every ``ack_interval_s``, after ``before_ack``;
- off: a Faust agent per topic hands the handler batches of one record, through Faust's
  own per-message path, and awaits ``before_ack`` after each (Faust acknowledges an
  event when its agent takes the next), so a commit still never covers a change its
  changelog lacks.
"""

from __future__ import annotations

import logging
from collections import namedtuple
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from faust.types import TP, Message

from streams import framework
from streams.codec import InputMessage

log = logging.getLogger(__name__)

BatchHandler = Callable[[TP, Sequence[InputMessage]], Awaitable[None]]
# A batch handler gives the event loop a turn at least this often, so that timers (the
# staleness ticks) and the web server are not starved by a long batch.
YIELD_EVERY = 500
# topic name -> handler of its batches
batch_handlers: dict[str, BatchHandler] = {}
# awaited before handled offsets are acknowledged (polymon: flush table changelogs)
before_ack: Callable[[], Awaitable[Any]] | None = None
ack_interval_s = 0.2

# A message as Faust's per-message path gives it, in the shape handlers read (Faust's
# Message has its timestamp in seconds; input messages carry Kafka's milliseconds).
DeliveredMessage = namedtuple(
    "DeliveredMessage", ["topic", "partition", "offset", "timestamp", "key", "value"])


def handle_batches(topic: faust.TopicT, handler: BatchHandler) -> None:
    """Subscribe the app to ``topic`` and deliver its records to ``handler``."""
    topic_name = topic.get_topic_name()
    if topic_name in batch_handlers:
        raise ValueError(f"topic {topic_name} already has a batch handler")
    batch_handlers[topic_name] = handler
    app = topic.app
    if framework.patched():
        app.topics.add(topic)  # the batching consumer reads it
        return

    async def deliver_one_by_one(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await handler(event.message.tp, [delivered(event.message)])
            if before_ack is not None:
                await before_ack()

    app.agent(topic, name=f"polymon.deliver.{topic_name}")(deliver_one_by_one)


def delivered(message: Message) -> DeliveredMessage:
    """A message of Faust's per-message path as handlers read it (its timestamp back in
    milliseconds)."""
    timestamp = message.timestamp
    return DeliveredMessage(message.topic, message.partition, message.offset,
                            None if timestamp is None else round(timestamp * 1000),
                            message.key, message.value)


def acknowledge_every(interval_s: float, before: Callable[[], Awaitable[Any]]) -> None:
    """Handled offsets are acknowledged every ``interval_s``, each time after ``before``
    has been awaited."""
    global ack_interval_s, before_ack
    ack_interval_s, before_ack = interval_s, before
