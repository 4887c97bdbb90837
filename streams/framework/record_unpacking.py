"""Fetched records unpacked in compiled code, for every aiokafka consumer of a worker.

aiokafka unpacks a fetched partition in its consumer thread, record by record, in
interpreted Python: a generator step through ``PartitionRecords.__next__``, a Cython
record object and its property reads, a call to ``_consumer_record`` and a
``ConsumerRecord`` dataclass built by its Python ``__init__`` (most of a raw aiokafka
loop's cost, and a large share of a worker's cost per event). Here each record is a
:data:`FetchedRecord` (a named tuple with ``ConsumerRecord``'s fields, in its order):
readers of a record (Faust's consumer, polymon's batch handlers, the console's readers)
only read its fields, which keep their names.

- The common case (no deserializers, isolation level read_uncommitted: Faust's and
  polymon's) reads the fetched bytes in C (``read_batches`` of streams/_native/batches.c),
  a run of record batches per call: plain, uncompressed v2 batches, with their CRC
  checked. Any other batch (compressed, an older format, malformed) is read by
  aiokafka's own code, one batch at a time (:class:`BatchReader`).
- Otherwise :func:`unpack_by_record` runs: aiokafka 0.14's
  ``PartitionRecords._unpack_records``, line for line, compiled with the hot path
  (streams.compiled.MODULES): transactional aborts and deserializers as there.

:func:`getall` is aiokafka's ``FetchResult.getall``; records, positions and errors
are aiokafka's either way (tests/unit/framework/test_record_unpacking.py compares them on the same
batches). Private parts of aiokafka it relies on (streams.framework.gate checks each,
and the exact aiokafka version): ``PartitionRecords._unpack_records`` (replaced) and
the partition's ``_records``, ``_tp``, deserializers, isolation level, CRC check and
aborted-transaction helpers; ``FetchResult.getall`` (replaced) with its
``_partition_records`` and ``_update_position``; the fetcher module's
``MemoryRecords`` (replaced). The bench's raw aiokafka loop runs in a process that
never installs this: it stays stock aiokafka (``polymon bench`` refuses to measure it
otherwise).
"""

from __future__ import annotations

import dataclasses
import logging
import struct
from collections import namedtuple
from collections.abc import Iterator
from itertools import islice
from typing import Any

from aiokafka import errors
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer.fetcher import READ_COMMITTED, FetchResult, PartitionRecords
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord

from streams import compiled

log = logging.getLogger(__name__)

# aiokafka's own, kept for comparison and for a process that uninstalls
STOCK_UNPACK = PartitionRecords._unpack_records
STOCK_GETALL = FetchResult.getall
STOCK_MEMORY_RECORDS = aiokafka_fetcher.MemoryRecords

FetchedRecord = namedtuple(  # type: ignore[misc]
    "FetchedRecord", [field.name for field in dataclasses.fields(ConsumerRecord)])
_new_record = tuple.__new__  # a named tuple from its fields without a Python frame

# the C reader of record batches, unless it is off (POLYMON_NO_EXTENSIONS) or not built
_read_batches = getattr(compiled.extension("streams._batches"), "read_batches", None)
# read_batches' status: the end of the bytes (or of their last whole batch); a batch
# aiokafka is to read; a batch whose CRC is wrong; the records asked for are read
BATCHES_END, BATCHES_PYTHON, BATCHES_CRC, BATCHES_LIMIT = 0, 1, 2, 3
_BATCH_LENGTH = struct.Struct(">i")  # after the batch's base offset
_BATCH_OVERHEAD = 12  # base offset and length


class FetchedBytes(MemoryRecords):  # type: ignore[misc]
    """aiokafka's MemoryRecords of a fetched partition, keeping the bytes it reads (the
    fetcher makes one per partition and fetch)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.raw = data


def unpack_records(self: PartitionRecords) -> Iterator[FetchedRecord]:
    """The iterator of a PartitionRecords' records (its ``_records_iterator``)."""
    raw = getattr(self._records, "raw", None)
    if (raw is not None and _read_batches is not None and type(raw) is bytes
            and self._key_deserializer is None and self._value_deserializer is None
            and self._isolation_level != READ_COMMITTED):
        return BatchReader(self, raw)
    return unpack_by_record(self)


def unpack_by_record(self: PartitionRecords) -> Iterator[FetchedRecord]:
    tp = self._tp
    topic, partition = tp.topic, tp.partition
    records = self._records
    key_deserializer, value_deserializer = self._key_deserializer, self._value_deserializer
    while records.has_next():
        next_batch = records.next_batch()
        if self._check_crcs and not next_batch.validate_crc():
            # the iterator is closed by the exception; the batches are fetched again
            raise errors.CorruptRecordException(f"Invalid CRC - {tp}")
        if self._isolation_level == READ_COMMITTED and next_batch.producer_id is not None:
            self._consume_aborted_up_to(next_batch.base_offset)
            if next_batch.is_control_batch and self._contains_abort_marker(next_batch):
                self._aborted_producers.discard(next_batch.producer_id)
            if (next_batch.is_transactional
                    and next_batch.producer_id in self._aborted_producers):
                log.debug("Skipping aborted record batch from partition %s with producer_id"
                          " %s and offsets %s to %s", tp, next_batch.producer_id,
                          next_batch.base_offset, next_batch.next_offset - 1)
                self.next_fetch_offset = next_batch.next_offset
                continue
        if next_batch.is_control_batch:  # skipped whatever the isolation level
            self.next_fetch_offset = next_batch.next_offset
            continue
        for record in next_batch:
            offset = record.offset
            if offset < self.next_fetch_offset:  # a compressed message set's head
                continue
            key, value = record.key, record.value
            fetched = _new_record(FetchedRecord, (
                topic, partition, offset, record.timestamp, record.timestamp_type,
                key_deserializer(key) if key_deserializer else key,
                value_deserializer(value) if value_deserializer else value,
                record.checksum,
                -1 if key is None else len(key),
                -1 if value is None else len(value),
                tuple(record.headers)))
            self.next_fetch_offset = offset + 1
            yield fetched
        # format v2 keeps a batch's last offset when compaction removed its record: the
        # next fetch starts after the batch, not inside it again
        self.next_fetch_offset = next_batch.next_offset


class BatchReader:
    """The records of a fetched partition read from its bytes, a run of batches at a
    time (``read_batches``); a batch the C reader leaves is read by aiokafka. Handed out
    as :func:`unpack_by_record` hands them out: the partition's ``next_fetch_offset``
    is, whenever records were taken, one past the last of them, and once all are taken,
    the end of the last batch (``take``: many at once, without a step per record)."""

    __slots__ = ("after", "index", "owner", "pending", "pos", "raw", "status")

    def __init__(self, owner: PartitionRecords, raw: bytes) -> None:
        self.owner, self.raw, self.pos = owner, raw, 0
        self.pending: list[FetchedRecord] = []  # read, not taken yet (from index on)
        self.index = 0
        self.after: int | None = None  # next_fetch_offset once pending is taken
        self.status: int | None = None  # of the last run read (None, LIMIT: read on)

    def __iter__(self) -> BatchReader:
        return self

    def __next__(self) -> FetchedRecord:
        taken = self.take(1)
        if not taken:
            raise StopIteration
        return taken[0]

    def take(self, limit: int | None) -> list[FetchedRecord]:
        """The next ``limit`` records (None: all), fewer once none are left."""
        owner, taken = self.owner, []
        while True:
            pending, index = self.pending, self.index
            if index < len(pending):
                wanted = len(pending) - index if limit is None else limit - len(taken)
                if index == 0 and wanted >= len(pending) and not taken:
                    taken, self.pending = pending, []  # the whole run, as it is
                else:
                    taken.extend(pending[index:index + wanted])
                    self.index = index + wanted
                if limit is not None and len(taken) >= limit:
                    owner.next_fetch_offset = taken[-1].offset + 1
                    return taken
            if self.after is not None:
                owner.next_fetch_offset, self.after = self.after, None
            if not self._read_more(None if limit is None else limit - len(taken)):
                return taken

    def _read_more(self, wanted: int | None) -> bool:
        """The next run of batches into ``pending`` (batches until ``wanted`` records
        are read, or all: a fetch may hold many more than are taken at once, and
        records read ahead only take memory); False when none is left."""
        status, owner = self.status, self.owner
        if status == BATCHES_END:
            return False
        if status == BATCHES_CRC:
            self.status = BATCHES_END  # closed by the exception, as aiokafka's generator
            raise errors.CorruptRecordException(f"Invalid CRC - {owner._tp}")
        if status == BATCHES_PYTHON:
            self.status = BATCHES_END  # an error closes the reader, as aiokafka's generator
            self.pending, self.after = self._read_by_aiokafka()
            self.status = None
        else:
            tp = owner._tp
            self.pending, self.pos, self.after, self.status = _read_batches(
                self.raw, self.pos, owner.next_fetch_offset, tp.topic, tp.partition,
                FetchedRecord, owner._check_crcs, wanted)
        self.index = 0
        return True

    def _read_by_aiokafka(self) -> tuple[list[FetchedRecord], int]:
        """The batch at ``pos`` read by :func:`unpack_by_record` (aiokafka's reading, its
        errors included): its records and the next fetch offset after it."""
        owner, raw, pos = self.owner, self.raw, self.pos
        size = _BATCH_OVERHEAD + _BATCH_LENGTH.unpack_from(raw, pos + 8)[0]
        whole = size >= _BATCH_OVERHEAD  # else aiokafka judges the rest of the bytes
        self.pos = pos + size if whole else len(raw)
        batch = PartitionRecords(
            owner._tp, MemoryRecords(raw[pos:pos + size] if whole else raw[pos:]), [],
            owner.next_fetch_offset, None, None, owner._check_crcs, owner._isolation_level)
        records = list(unpack_by_record(batch))
        return records, batch.next_fetch_offset


def getall(self: FetchResult, max_records: int | None = None) -> list[Any]:
    tp = self._topic_partition
    if not self.check_assignment(tp) or not self.has_more():
        return []
    partition_records = self._partition_records
    unpacked = partition_records._records_iterator or iter(())
    if type(unpacked) is BatchReader:
        fetched = unpacked.take(None if max_records is None else max(max_records, 1))
        if max_records is not None and len(fetched) >= max(max_records, 1):
            self._update_position()  # there may be more: the partition stays readable
            return fetched
    elif max_records is None:
        fetched = list(unpacked)
    else:
        limit = max(max_records, 1)  # as aiokafka's: the check follows the first append
        fetched = list(islice(unpacked, limit))
        if len(fetched) >= limit:  # there may be more: the partition stays readable
            self._update_position()
            return fetched
    partition_records._records_iterator = None
    self._update_position()
    self._partition_records = None
    return fetched


def install() -> None:
    """Every aiokafka consumer of this process unpacks with these (process-wide,
    idempotent; streams.framework.install checks the aiokafka version first)."""
    PartitionRecords._unpack_records = unpack_records  # type: ignore[method-assign]
    FetchResult.getall = getall  # type: ignore[method-assign]
    aiokafka_fetcher.MemoryRecords = FetchedBytes  # type: ignore[misc]


def installed() -> bool:
    return PartitionRecords._unpack_records is unpack_records


def uninstall() -> None:
    PartitionRecords._unpack_records = STOCK_UNPACK  # type: ignore[method-assign]
    FetchResult.getall = STOCK_GETALL  # type: ignore[method-assign]
    aiokafka_fetcher.MemoryRecords = STOCK_MEMORY_RECORDS  # type: ignore[misc]
