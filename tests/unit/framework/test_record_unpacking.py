"""streams.framework.record_unpacking against aiokafka's own unpacking, on the same
record batches."""

from __future__ import annotations

import dataclasses
import gc
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from aiokafka import errors
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer.fetcher import READ_COMMITTED, FetchResult, PartitionRecords
from aiokafka.record.control_record import _SCHEMA as CONTROL_KEY
from aiokafka.record.default_records import DefaultRecordBase, DefaultRecordBatchBuilder
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import ConsumerRecord, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import compiled
from streams.framework import record_unpacking

TP = TopicPartition("health.events", 3)
ABORT, COMMIT = 0, 1
GZIP = 1


@pytest.fixture(autouse=True)
def stock_afterwards() -> Iterator[None]:
    yield
    record_unpacking.uninstall()


def batch(base: int, offsets: Sequence[int], *, producer_id: int = -1,
          transactional: bool = False, control: int | None = None, compression: int = 0,
          headers: Sequence[tuple[str, bytes]] = ()) -> bytes:
    """One record batch as the broker stores it: ``offsets`` relative to ``base`` (a
    gap is a record compaction removed), a control batch's single record the marker."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=compression,
                                        is_transactional=int(transactional),
                                        producer_id=producer_id, producer_epoch=0,
                                        base_sequence=-1, batch_size=1 << 20)
    for delta in offsets:
        if control is None:
            key = None if delta % 3 == 0 else b"scope-%d" % delta
            value = None if delta % 7 == 6 else b"v" * (delta % 50)
        else:
            key, value = CONTROL_KEY.pack(0, control), b"\x00\x00\x00\x00\x00\x00"
        builder.append(delta, timestamp=1_700_000_000_000 + delta, key=key, value=value,
                       headers=list(headers))
    data = builder.build()
    struct.pack_into(">q", data, 0, base)  # BaseOffset: set by the broker
    if control is not None:  # only a broker writes control batches
        attributes_at = DefaultRecordBase.ATTRIBUTES_OFFSET
        attributes = struct.unpack_from(">h", data, attributes_at)[0]
        struct.pack_into(">h", data, attributes_at,
                         attributes | DefaultRecordBase.CONTROL_MASK)
    crc = calc_crc32c(bytes(data[DefaultRecordBase.ATTRIBUTES_OFFSET:]))
    struct.pack_into(">I", data, DefaultRecordBase.CRC_OFFSET, crc)
    return bytes(data)


def partition_records(data: bytes, *, fetch_offset: int = 0,
                      aborted: Sequence[tuple[int, int]] = (), read_committed: bool = False,
                      deserialize: bool = False) -> PartitionRecords:
    # as the fetcher makes them (installed: the kind that keeps the bytes it reads)
    return PartitionRecords(
        TP, aiokafka_fetcher.MemoryRecords(data), list(aborted), fetch_offset,
        (lambda key: b"k:" + key if key else key) if deserialize else None,
        (lambda value: len(value) if value is not None else None) if deserialize else None,
        True, READ_COMMITTED if read_committed else 0)


def fields(record: Any) -> tuple[Any, ...]:
    return tuple(getattr(record, name) for name in record_unpacking.FetchedRecord._fields)


def unpacked(data: bytes, **options: Any) -> list[tuple[tuple[Any, ...], int]]:
    """Each record's fields, with the partition's next fetch offset once it was read."""
    records = partition_records(data, **options)
    return [(fields(record), records.next_fetch_offset) for record in records]


def both(data: bytes, **options: Any) -> tuple[list[Any], list[Any]]:
    stock = unpacked(data, **options)
    record_unpacking.install()
    ours = unpacked(data, **options)
    record_unpacking.uninstall()
    return stock, ours


def test_a_fetched_record_has_a_consumer_records_fields_in_its_order() -> None:
    assert record_unpacking.FetchedRecord._fields == tuple(
        field.name for field in dataclasses.fields(ConsumerRecord))


def test_plain_batches_unpack_as_aiokafkas() -> None:
    data = batch(0, range(20), headers=[("trace", b"1")]) + batch(20, range(15))
    stock, ours = both(data)
    assert len(ours) == 35
    assert ours == stock
    first, _ = ours[0]
    assert first[:3] == ("health.events", 3, 0)
    assert first[-1] == (("trace", b"1"),)


def test_records_below_the_fetch_offset_and_compacted_gaps() -> None:
    data = batch(100, [0, 1, 4, 5, 9], compression=GZIP) + batch(110, [0, 3])
    stock, ours = both(data, fetch_offset=104)
    assert [record[2] for record, _ in ours] == [104, 105, 109, 110, 113]
    assert ours == stock


def test_deserializers_apply_and_sizes_are_of_the_serialized_bytes() -> None:
    stock, ours = both(batch(0, range(10)), deserialize=True)
    assert ours == stock
    record, _ = ours[1]
    assert record[5] == b"k:scope-1" and record[6] == 1 and record[8:10] == (7, 1)


def test_control_and_aborted_transactional_batches_are_skipped_as_aiokafka_does() -> None:
    data = (batch(0, range(3), producer_id=7, transactional=True)
            + batch(3, [0], producer_id=7, transactional=True, control=ABORT)
            + batch(4, range(2), producer_id=8, transactional=True)
            + batch(6, [0], producer_id=8, transactional=True, control=COMMIT)
            + batch(7, range(2)))
    for read_committed in (False, True):
        stock, ours = both(data, aborted=[(7, 0)], read_committed=read_committed)
        assert ours == stock
        offsets = [record[2] for record, _ in ours]
        assert offsets == ([4, 5, 7, 8] if read_committed else [0, 1, 2, 4, 5, 7, 8])


def test_a_corrupt_batch_raises_as_aiokafkas() -> None:
    data = bytearray(batch(0, range(5)))
    data[-1] ^= 0xFF
    for install in (False, True):
        if install:
            record_unpacking.install()
        with pytest.raises(errors.CorruptRecordException):
            list(partition_records(bytes(data)))


def legacy_batch(base: int, offsets: Sequence[int]) -> bytes:
    """A message set of format v1 (as an older producer or broker wrote it)."""
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    for delta in offsets:
        builder.append(delta, timestamp=1_700_000_000_000 + delta, key=b"k%d" % delta,
                       value=b"v" * delta)
    data = builder.build()
    position = 0
    while position < len(data):  # each v1 message carries its own absolute offset
        offset, size = struct.unpack_from(">qi", data, position)
        struct.pack_into(">q", data, position, base + offset)
        position += 12 + size
    return bytes(data)


# the C record-batch reader, unless the native parts are switched off
_native = pytest.mark.skipif(compiled.NO_EXTENSIONS, reason="POLYMON_NO_EXTENSIONS is set")


@_native
@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 30), min_size=1, max_size=12, unique=True),
                          st.sampled_from(["plain", "gzip", "v1", "control"])),
                min_size=1, max_size=5),
       st.integers(0, 40), st.lists(st.integers(1, 10_000), max_size=5), st.integers(0, 30))
def test_getall_in_steps_returns_what_aiokafka_returns(
        layout: list[tuple[list[int], str]], fetch_offset: int, steps: list[int],
        cut: int) -> None:
    """Batches of every kind in any order, read in steps of any size, with the fetch
    ending anywhere in the last batch (a partial batch is left for the next fetch)."""
    data, base = b"", 0
    for offsets, kind in layout:
        offsets = sorted(offsets)
        data += (legacy_batch(base, range(len(offsets))) if kind == "v1"
                 else batch(base, [0], control=COMMIT) if kind == "control"
                 else batch(base, offsets, compression=GZIP if kind == "gzip" else 0))
        base += (len(offsets) if kind == "v1" else 1 if kind == "control"
                 else max(offsets) + 1)
    data = data[:len(data) - cut]

    def drain() -> list[Any]:
        consumed: list[int] = []

        class Assignment:
            def state_value(self, tp: TopicPartition) -> Any:
                return self

            def consumed_to(self, offset: int) -> None:
                consumed.append(offset)

        result = FetchResult(TP, assignment=Assignment(),
                             partition_records=partition_records(data, fetch_offset=fetch_offset),
                             backoff=0)
        result.check_assignment = lambda tp: True  # type: ignore[method-assign]
        seen: list[Any] = []
        try:
            for step in [*steps, None]:
                seen.append(([fields(record) for record in result.getall(step)],
                             result.has_more()))
        except Exception as exc:  # aiokafka's error on a malformed cut: the same expected
            seen.append((type(exc), str(exc)))
        return [seen, consumed]

    stock = drain()
    record_unpacking.install()
    assert drain() == stock


@_native
def test_plain_batches_are_read_in_c_and_their_records_are_not_tracked_by_the_gc() -> None:
    record_unpacking.install()
    records = partition_records(batch(0, range(5)) + batch(5, range(5), headers=[("h", b"1")]))
    assert type(records._records_iterator) is record_unpacking.BatchReader
    taken = records._records_iterator.take(None)
    assert [record.offset for record in taken] == list(range(10))
    assert taken[-1].headers == (("h", b"1"),)
    # only strings, numbers and bytes inside: no reference cycle possible
    assert not any(gc.is_tracked(record) or gc.is_tracked(record.headers) for record in taken)


@_native
def test_the_c_reader_stops_where_aiokafka_is_to_read_or_the_crc_is_wrong() -> None:
    read = record_unpacking._read_batches
    assert read is not None
    plain, gzip = batch(0, range(3)), batch(3, range(3), compression=GZIP)
    args = ("t", 0, record_unpacking.FetchedRecord, True, None)
    records, pos, next_offset, status = read(plain + gzip, 0, 0, *args)
    assert ([r.offset for r in records], pos, next_offset, status) == (
        [0, 1, 2], len(plain), 3, record_unpacking.BATCHES_PYTHON)
    records, pos, next_offset, status = read(plain + plain[:30], 0, 0, *args)
    assert (len(records), pos, status) == (3, len(plain), record_unpacking.BATCHES_END)
    corrupt = bytearray(plain)
    corrupt[-1] ^= 0xFF
    assert read(plain + bytes(corrupt), 0, 0, *args)[1:] == (
        len(plain), 3, record_unpacking.BATCHES_CRC)
    assert read(bytes(corrupt), 0, 0, "t", 0, record_unpacking.FetchedRecord, False, None)[3] == (
        record_unpacking.BATCHES_PYTHON)  # not checked: the record's bytes are then malformed
    # a limit: no batch is begun once that many records are read
    three = plain + batch(3, range(3)) + batch(6, range(3))
    records, pos, next_offset, status = read(three, 0, 0, "t", 0, record_unpacking.FetchedRecord,
                                             True, 4)
    assert (len(records), pos, next_offset, status) == (
        6, 2 * len(plain), 6, record_unpacking.BATCHES_LIMIT)
    assert read(three, pos, next_offset, *args)[1:] == (3 * len(plain), 9,
                                                        record_unpacking.BATCHES_END)
    assert read(legacy_batch(0, range(2)), 0, 0, *args)[3] == record_unpacking.BATCHES_PYTHON
    with pytest.raises(TypeError):
        read(bytearray(plain), 0, 0, *args)


def test_install_is_idempotent_and_uninstall_restores_aiokafkas_own() -> None:
    assert not record_unpacking.installed()
    record_unpacking.install()
    record_unpacking.install()
    assert record_unpacking.installed()
    assert PartitionRecords._unpack_records is record_unpacking.unpack_records
    assert aiokafka_fetcher.MemoryRecords is record_unpacking.FetchedBytes
    record_unpacking.uninstall()
    assert not record_unpacking.installed()
    assert FetchResult.getall is record_unpacking.STOCK_GETALL
    assert aiokafka_fetcher.MemoryRecords is record_unpacking.STOCK_MEMORY_RECORDS


def test_the_bench_refuses_to_time_a_raw_loop_with_this_installed() -> None:
    from streams.devtools import bench

    record_unpacking.install()
    with pytest.raises(bench.BenchError, match="raw loop"):
        bench.measure_raw("127.0.0.1:9", "unused.", 1)  # refused before any connection
