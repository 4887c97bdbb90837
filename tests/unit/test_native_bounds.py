"""The C record-batch reader on batches whose offsets or timestamps do not fit an int64
(found by the fuzzer under UBSan: ops/fuzz/run.sh): it computes none of them (signed
overflow is undefined behaviour in C) and hands the batch to aiokafka, which reads it
with Python's integers, so the records are aiokafka's."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.record.default_records import DefaultRecordBase, DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from streams.framework import record_unpacking

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
TP = TopicPartition("t", 0)
ARGS = ("t", 0, record_unpacking.FetchedRecord, True, None)

pytestmark = pytest.mark.skipif(record_unpacking._read_batches is None,
                                reason="the C reader streams._batches is not built or is off")


@pytest.fixture(autouse=True)
def stock_afterwards() -> Iterator[None]:
    yield
    record_unpacking.uninstall()


def batch(deltas: list[int], *, base: int = 0, last_offset_delta: int | None = None,
          first_timestamp: int | None = None) -> bytes:
    """A v2 batch of records at ``deltas`` from ``base`` (timestamps 5 ms apart), its
    header fields set as given and its CRC made right: only the sums are out of range."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=-1, producer_epoch=0, base_sequence=-1,
                                        batch_size=1 << 20)
    for index, delta in enumerate(deltas):
        builder.append(delta, timestamp=1_790_000_000_000 + 5 * index, key=b"k",
                       value=b"v%d" % index, headers=[])
    data = builder.build()
    struct.pack_into(">q", data, 0, base)
    if last_offset_delta is not None:
        struct.pack_into(">i", data, 23, last_offset_delta)
    if first_timestamp is not None:
        struct.pack_into(">q", data, 27, first_timestamp)
    crc = calc_crc32c(bytes(data[DefaultRecordBase.ATTRIBUTES_OFFSET:]))
    struct.pack_into(">I", data, DefaultRecordBase.CRC_OFFSET, crc)
    return bytes(data)


def unpacked(data: bytes) -> list[tuple[Any, ...]]:
    records = PartitionRecords(TP, aiokafka_fetcher.MemoryRecords(data), [], INT64_MIN,
                               None, None, True, 0)
    return [(tuple(getattr(record, name) for name in record_unpacking.FetchedRecord._fields),
             records.next_fetch_offset) for record in records]


def test_a_batch_whose_next_offset_overflows_is_aiokafkas() -> None:
    # the fuzzer's input: base offset INT64_MIN, last offset delta -1 (base + delta + 1)
    plain = batch([0])
    bad = batch([0], base=INT64_MIN, last_offset_delta=-1)
    records, pos, next_offset, status = record_unpacking._read_batches(
        plain + bad, 0, 0, *ARGS)
    assert ([r.offset for r in records], pos, next_offset, status) == (
        [0], len(plain), 1, record_unpacking.BATCHES_PYTHON)
    records, pos, _, status = record_unpacking._read_batches(
        batch([0], base=INT64_MAX, last_offset_delta=0), 0, 0, *ARGS)  # + 1 overflows
    assert (records, pos, status) == ([], 0, record_unpacking.BATCHES_PYTHON)


def test_a_record_whose_offset_overflows_is_aiokafkas() -> None:
    # the batch's own next offset fits; its record's (base + 20) does not
    data = batch([20], base=INT64_MAX - 10, last_offset_delta=0)
    records, pos, _, status = record_unpacking._read_batches(data, 0, INT64_MIN, *ARGS)
    assert (records, pos, status) == ([], 0, record_unpacking.BATCHES_PYTHON)
    stock = unpacked(data)
    record_unpacking.install()
    assert unpacked(data) == stock


def test_a_record_whose_timestamp_overflows_is_aiokafkas() -> None:
    # the first record's timestamp fits (delta 0), the second's (delta 5) does not: the
    # first is not kept either, the whole batch is aiokafka's
    data = batch([0, 1], first_timestamp=INT64_MAX - 2)
    records, pos, _, status = record_unpacking._read_batches(data, 0, 0, *ARGS)
    assert (records, pos, status) == ([], 0, record_unpacking.BATCHES_PYTHON)
    stock = unpacked(data)
    record_unpacking.install()
    assert unpacked(data) == stock


def test_timestamps_and_offsets_at_the_edges_of_int64_are_read_in_c() -> None:
    data = batch([0, 1], base=INT64_MAX - 2, first_timestamp=INT64_MAX - 5)
    records, pos, next_offset, status = record_unpacking._read_batches(data, 0, 0, *ARGS)
    assert ([(r.offset, r.timestamp) for r in records], pos, next_offset, status) == (
        [(INT64_MAX - 2, INT64_MAX - 5), (INT64_MAX - 1, INT64_MAX)], len(data), INT64_MAX,
        record_unpacking.BATCHES_END)


def varint(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag > 0x7F:
        out.append(zigzag & 0x7F | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def test_a_key_length_near_2_63_is_aiokafkas_and_allocates_nothing() -> None:
    # the fuzzer's finding (in aiokafka's reader, the harness's reference): a record whose
    # key length is far past the batch's end; the C reader checks it before any
    # allocation and hands the batch to aiokafka, which raises as it does unpatched
    body = b"\x00" + varint(0) + varint(0) + varint(2**63 - 40) + b"k" + varint(-1) + varint(0)
    records = varint(len(body)) + body
    data = bytearray(batch([0])[:61] + records)
    struct.pack_into(">i", data, 8, len(data) - 12)
    struct.pack_into(">I", data, DefaultRecordBase.CRC_OFFSET,
                     calc_crc32c(bytes(data[DefaultRecordBase.ATTRIBUTES_OFFSET:])))
    found, pos, _, status = record_unpacking._read_batches(bytes(data), 0, 0, *ARGS)
    assert (found, pos, status) == ([], 0, record_unpacking.BATCHES_PYTHON)
    with pytest.raises(MemoryError):
        unpacked(bytes(data))
    record_unpacking.install()
    with pytest.raises(MemoryError):
        unpacked(bytes(data))
