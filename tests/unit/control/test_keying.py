"""Key → partition, as the input producers compute it (re-keyed streams must agree)."""

from __future__ import annotations

import zlib

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from streams.control.keying import murmur2, partition_for


@given(st.binary(min_size=1, max_size=64))
def test_murmur2_is_kafkas(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key) & 0xFFFFFFFF


@given(st.binary(min_size=1, max_size=64), st.integers(1, 64))
def test_partitions_are_in_range_and_follow_the_partitioner(key: bytes, n: int) -> None:
    assert partition_for(key, n) == zlib.crc32(key) % n
    assert partition_for(key, n, "murmur2") == (aiokafka_murmur2(key) & 0x7FFFFFFF) % n


def test_known_values() -> None:
    # Kafka's own test vectors for murmur2 (org.apache.kafka.common.utils.UtilsTest).
    assert murmur2(b"21") & 0xFFFFFFFF == (-973932308) & 0xFFFFFFFF
    assert murmur2(b"foobar") & 0xFFFFFFFF == (-790332482) & 0xFFFFFFFF


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="empty key"):
        partition_for(b"", 4)
    with pytest.raises(ValueError, match="partitions"):
        partition_for(b"k", 0)
    with pytest.raises(ValueError, match="unknown partitioner"):
        partition_for(b"k", 4, "random")  # type: ignore[arg-type]
