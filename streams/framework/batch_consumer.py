"""Faust's consumer delivering input topics in batches: the fix for Faust's per-event
ceiling.

Faust hands every consumed message to its streams one at a time: two new tasks and an
``asyncio.wait`` per message in ``Consumer._drain_messages``, a queue hop into the
agent, per-message sensors and acks: that path delivers a small fraction of what the
same fetches bring in (docs/benchmarks.md has the figures). polymon keeps everything
else of Faust (consumer group, partition assignment, table changelogs and recovery,
commits, timers, web) and replaces only that hand-off, for the topics that registered a
batch handler (streams.delivery): each fetched batch of a partition goes to its handler
in one call, then its offsets are acknowledged together. Topics without a handler keep
Faust's per-message path.

Private parts of faust-streaming's Consumer it relies on (streams.framework.gate checks
each): ``_drain_messages`` and ``_new_offset`` (overridden), ``_wait_next_records``,
``_add_gap``, ``_to_message``, and the bookkeeping ``_read_offset``, ``_acked``,
``_acked_index``, ``_committed_offset``, ``_gap``, ``_n_acked``, ``_commit_every``,
``_waiting_for_ack``, ``_buffered_partitions``; ``App._new_transport`` (overridden).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Sequence
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, TransportT
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from streams import delivery
from streams.delivery import YIELD_EVERY, BatchHandler
from streams.framework.producer import IdempotentProducer


class BatchingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, delivering registered topics batch by batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handled: dict[TP, list[int]] = {}  # handled offsets not yet acknowledged
        self._last_ack = 0.0

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # what was handled is acknowledged before the commit that ends the generation
        await self._maybe_ack_handled(force=True)
        await super().on_partitions_revoked(revoked)

    async def _drain_messages(self, fetcher: Any) -> None:
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active_partitions = await self._wait_next_records(1.0)
                await asyncio.sleep(0)
                await self._maybe_ack_handled()
                if not records or self.should_stop:
                    continue
                generation = self.app.consumer_generation_id
                for tp, batch in records.items():
                    if not self._still_ours(tp, active_partitions, generation):
                        continue
                    handler = delivery.batch_handlers.get(tp.topic)
                    if handler is None:
                        await self._deliver_one_by_one(tp, batch, generation)
                    else:
                        await self._deliver_batch(tp, batch, handler, generation)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    def _still_ours(self, tp: TP, active_partitions: set[TP] | None, generation: int) -> bool:
        """Stop delivering when a rebalance started (flow stopped, new generation): the
        rest of the batch is re-fetched from the committed offset by its new owner."""
        if not self.flow_active or self.app.consumer_generation_id != generation:
            return False
        return (active_partitions is None or tp in active_partitions
                or tp in self._buffered_partitions)

    def _unread(self, tp: TP, batch: Sequence[Any]) -> Sequence[Any]:
        read_offset = self._read_offset[tp]
        if read_offset is None or not batch or batch[0].offset >= read_offset:
            return batch  # the common case: a partition's records come in offset order
        return [record for record in batch if record.offset >= read_offset]

    async def _deliver_batch(self, tp: TP, batch: Sequence[Any], handler: BatchHandler,
                             generation: int) -> None:
        records = self._unread(tp, batch)
        if not records:
            return
        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
        for start in range(0, len(records), YIELD_EVERY):
            if not self._still_ours(tp, None, generation):
                return
            chunk = records[start:start + YIELD_EVERY]
            await self._add_gaps(tp, chunk)
            async with delivery.deciding():
                await handler(tp, chunk)
            lowest, highest = chunk[0].offset, chunk[-1].offset
            self._handled.setdefault(tp, []).extend(
                range(lowest, highest + 1) if highest - lowest + 1 == len(chunk)  # no gaps
                else (record.offset for record in chunk))
            self._read_offset[tp] = highest
            await self._maybe_ack_handled()
            await asyncio.sleep(0)

    async def _maybe_ack_handled(self, force: bool = False) -> None:
        """Acknowledge handled offsets once per ``ack_interval_s``, after ``before_ack``
        (the table changelog flush): a key changed by many events in that interval costs
        one changelog record, and a commit never covers a change its changelog lacks."""
        if not self._handled:
            return
        now = time.monotonic()
        if not force and now - self._last_ack < delivery.ack_interval_s:
            return
        self._last_ack = now
        before_ack = delivery.before_ack
        if before_ack is not None:
            await before_ack()
        handled, self._handled = self._handled, {}
        for tp, offsets in handled.items():
            self._ack_offsets(tp, offsets)
        await self._maybe_commit()

    async def _add_gaps(self, tp: TP, chunk: Sequence[Any]) -> None:
        """Offsets that will never arrive (compaction, transaction markers) count as
        acknowledged, or the committed offset would stop at the first of them."""
        if not self.app.topics.acks_enabled_for(tp.topic):
            return
        previous = self._read_offset[tp]
        if previous and chunk[-1].offset - previous == len(chunk):
            return  # offsets previous+1 .. previous+len(chunk), in order: no gap
        for record in chunk:
            if previous and record.offset - previous > 1:
                await self._add_gap(tp, previous + 1, record.offset)
            previous = record.offset

    def _ack_offsets(self, tp: TP, offsets: list[int]) -> None:
        """Faust's ``Consumer.ack`` for many offsets of one partition at once."""
        if not offsets or not self.app.topics.acks_enabled_for(tp.topic):
            return
        with ack_lock:
            committed = self._committed_offset[tp]
            acked_index = self._acked_index[tp]
            if ((committed is None or min(offsets) >= committed)
                    and acked_index.isdisjoint(offsets)):
                fresh = offsets  # the common case, tested at C speed
            else:
                fresh = [offset for offset in offsets
                         if (committed is None or offset >= committed)
                         and offset not in acked_index]
            acked_index.update(fresh)
            self._acked[tp].extend(fresh)
            self._n_acked += len(fresh)
            notify(self._waiting_for_ack)

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's: the offset to commit after the first run of consecutive acknowledged
        offsets. Faust finds that run with a Python call per offset (``groupby`` with a
        lambda), every offset once; here, when no gap intervals
        are to be merged (the common case; otherwise Faust's own runs), by bisection."""
        acked = self._acked[tp]
        if not acked or self._gap[tp]:
            return super()._new_offset(tp)
        acked.sort()
        committed = self._committed_offset[tp]
        if committed and acked[0] - committed > 1:
            return None  # the offsets right after the committed one are not acked yet
        run = first_run_length(acked)
        batch = acked[:run]
        del acked[:run]
        self._acked_index[tp].difference_update(batch)
        return batch[-1] + 1

    async def _maybe_commit(self) -> None:
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()

    async def _deliver_one_by_one(self, tp: TP, batch: Sequence[Any], generation: int) -> None:
        """Faust's own per-message path (as in ``Consumer._drain_messages``)."""
        for record in self._unread(tp, batch):
            if not self._still_ours(tp, None, generation):
                return
            await self._add_gaps(tp, [record])
            await self._maybe_commit()
            message = self._to_message(tp, record)
            await self.wait_first(self.callback(message), self.suspend_flow.wait())
            self._read_offset[tp] = record.offset


def first_run_length(numbers: Sequence[int]) -> int:
    """How many of ``numbers`` (sorted, distinct) run consecutively from the first: a
    position's number minus the first equals the position up to the end of that run."""
    first = numbers[0]
    if numbers[-1] - first == len(numbers) - 1:
        return len(numbers)  # the common case: all of them
    return bisect.bisect_left(range(len(numbers)), True,
                              key=lambda index: numbers[index] - first != index)


class BatchingTransport(faust_aiokafka.Transport):
    Consumer = BatchingConsumer
    Producer = IdempotentProducer


class BatchingApp(faust.App):
    """A Faust app whose consumer delivers input topics in batches."""

    def _new_transport(self) -> TransportT:
        return BatchingTransport(self.conf.broker_consumer, self)
