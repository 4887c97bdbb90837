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

import asyncio
import contextlib
import logging
from collections import namedtuple
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
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
    "DeliveredMessage",
    ["topic", "partition", "offset", "timestamp", "key", "value", "headers"])


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
            async with deciding():
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
                            message.key, message.value, _header_pairs(message.headers))


def _header_pairs(headers: Any) -> tuple[tuple[str, bytes], ...]:
    """Kafka headers as the fetched records have them: (key, value) pairs."""
    if not headers:
        return ()
    return tuple(headers.items() if isinstance(headers, dict) else headers)


def acknowledge_every(interval_s: float, before: Callable[[], Awaitable[Any]]) -> None:
    """Handled offsets are acknowledged every ``interval_s``, each time after ``before``
    has been awaited."""
    global ack_interval_s, before_ack
    ack_interval_s, before_ack = interval_s, before


class DeliveryFailed(RuntimeError):
    """The broker did not acknowledge a message polymon sent (after the producer's own
    retries): the offsets of its cause must not be committed."""


class PendingDeliveries:
    """The delivery futures of sent messages (decisions, outbox batches, changelog
    batches) until the broker has acknowledged them: :meth:`settle` is awaited before
    handled offsets are acknowledged, so a commit never covers a message the broker does
    not have. Faust's ``send()`` and aiokafka's ``send_batch()`` return once a message
    is queued, and the producer's ``flush()`` does not raise on a failed batch: only the
    futures tell."""

    def __init__(self) -> None:
        self._futures: list[tuple[str, asyncio.Future[Any]]] = []
        self.failure: DeliveryFailed | None = None  # once set, every settle raises it

    def __len__(self) -> int:
        return len(self._futures)

    def track(self, topic: str, future: Awaitable[Any]) -> None:
        """Keep ``future`` (a message or batch sent to ``topic``) until settled."""
        self._futures.append((topic, asyncio.ensure_future(future)))

    async def settle(self) -> int:
        """Wait until every tracked delivery is acknowledged (the producer retries
        meanwhile: a broker that cannot take a message blocks here). Returns how many
        were settled; raises :class:`DeliveryFailed` naming each topic whose delivery
        failed, then and on every later call: nothing is acknowledged after a loss (not
        even by the stop that follows), so the worker stops with its cause uncommitted."""
        if self.failure is not None:
            raise self.failure
        futures, self._futures = self._futures, []
        if not futures:
            return 0
        waiting = [future for _, future in futures if not future.done()]
        try:
            if waiting:
                await asyncio.wait(waiting)
        except BaseException:  # cancelled: whatever is not done yet is still pending
            self._futures = [item for item in futures if not item[1].done()] + self._futures
            raise
        failed: list[tuple[str, BaseException]] = []
        for topic, future in futures:
            if future.cancelled():
                failed.append((topic, asyncio.CancelledError("its delivery was cancelled")))
            elif (error := future.exception()) is not None:
                failed.append((topic, error))
        if failed:
            topics = sorted({topic for topic, _ in failed})
            first = failed[0][1]
            self.failure = DeliveryFailed(
                f"{len(failed)} of {len(futures)} sent messages or batches were not "
                f"acknowledged by the broker (topics: {', '.join(topics)}): {first!r}")
            self.failure.__cause__ = first
            raise self.failure
        return len(futures)


# every message polymon sends, until acknowledged (see PendingDeliveries)
pending = PendingDeliveries()


# Code midway between changing a table and sending the decisions the change records
_deciding = 0
_none_deciding = asyncio.Event()
_none_deciding.set()


@contextlib.asynccontextmanager
async def deciding() -> AsyncIterator[None]:
    """Around a handler or a tick: its table changes and the decisions they record are
    handed over as one. Changelogs are sent only while no such code is midway
    (:func:`none_deciding`), after the decisions already sent are acknowledged: a
    changelog never records a decision that is not yet sent."""
    global _deciding
    _deciding += 1
    _none_deciding.clear()
    try:
        yield
    finally:
        _deciding -= 1
        if not _deciding:
            _none_deciding.set()


def deciders_midway() -> int:
    """How many handlers or ticks are midway between a table change and its sends."""
    return _deciding


async def none_deciding() -> None:
    """Return when no handler or tick is midway between a table change and its sends."""
    while _deciding:
        await _none_deciding.wait()
