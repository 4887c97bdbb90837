"""Fetched records unpacked in compiled code, for every aiokafka consumer of a worker.

aiokafka unpacks a fetched partition in its consumer thread, record by record, in
interpreted Python: a generator step through ``PartitionRecords.__next__``, a call to
``_consumer_record`` and a ``ConsumerRecord`` dataclass built by its Python
``__init__`` (about 1.2 µs a record measured here, most of a raw aiokafka loop's cost
and about a seventh of a worker's whole cost per event). The same steps, compiled with
the hot path (streams.compiled.MODULES), and each record a :data:`FetchedRecord` (a
named tuple with ``ConsumerRecord``'s fields, in its order) made in one C call, cost
about half as much. Readers of a record (Faust's consumer, polymon's batch handlers,
the console's readers) only read its fields, which keep their names.

:func:`unpack_records` and :func:`getall` are aiokafka 0.14's
``PartitionRecords._unpack_records`` and ``FetchResult.getall``, line for line
otherwise: CRC checks, transactional aborts, control batches and compacted offsets are
handled as there (tests/unit/test_fetching.py compares both on the same batches).
aiokafka is pinned to that minor version (pyproject.toml); :func:`install` does
nothing for another one. The bench's raw aiokafka loop runs in a process that never
installs this: it stays stock aiokafka (``polymon bench`` refuses to measure it
otherwise).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import namedtuple
from collections.abc import Iterator
from itertools import islice
from typing import Any

import aiokafka
from aiokafka import errors
from aiokafka.consumer.fetcher import READ_COMMITTED, FetchResult, PartitionRecords
from aiokafka.structs import ConsumerRecord

log = logging.getLogger(__name__)

SUPPORTED_AIOKAFKA = "0.14."
# aiokafka's own, kept for comparison and for a process that uninstalls
STOCK_UNPACK = PartitionRecords._unpack_records
STOCK_GETALL = FetchResult.getall

FetchedRecord = namedtuple(  # type: ignore[misc]
    "FetchedRecord", [field.name for field in dataclasses.fields(ConsumerRecord)])
_new_record = tuple.__new__  # a named tuple from its fields without a Python frame


def unpack_records(self: PartitionRecords) -> Iterator[FetchedRecord]:
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


def getall(self: FetchResult, max_records: int | None = None) -> list[Any]:
    tp = self._topic_partition
    if not self.check_assignment(tp) or not self.has_more():
        return []
    partition_records = self._partition_records
    unpacked = partition_records._records_iterator or iter(())
    if max_records is None:
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


def install() -> bool:
    """Every aiokafka consumer of this process unpacks with these (process-wide,
    idempotent). False, and aiokafka's own stay, for an aiokafka version they were not
    written against."""
    if not aiokafka.__version__.startswith(SUPPORTED_AIOKAFKA):
        log.warning("aiokafka %s: fetched records are unpacked by aiokafka's own code "
                    "(polymon's compiled unpacking follows %sx)", aiokafka.__version__,
                    SUPPORTED_AIOKAFKA)
        return False
    PartitionRecords._unpack_records = unpack_records  # type: ignore[method-assign]
    FetchResult.getall = getall  # type: ignore[method-assign]
    return True


def installed() -> bool:
    return PartitionRecords._unpack_records is unpack_records


def uninstall() -> None:
    PartitionRecords._unpack_records = STOCK_UNPACK  # type: ignore[method-assign]
    FetchResult.getall = STOCK_GETALL  # type: ignore[method-assign]
