"""Which partition a key lands on: the rule that makes "the state of a scope lives on the
worker that owns the scope's partition" true across topics.

Every input topic is keyed by a scope string and has the same partition count, so all
events of one scope share a partition number, provided every producer hashes keys the
same way. polymon's own producers (CLI, demo, tests) use librdkafka's default
``consistent_random`` partitioner: CRC-32 of the key, modulo the partition count. The
Java client (and aiokafka, which Faust uses) default to murmur2 instead. When polymon
re-keys a stream (fills by bot, fills by model), it sends each message to the
partition the input producers would have chosen for the new key, computed here, so a
bot's fills meet the bot's heartbeats and pause latch on one worker.
"""

from __future__ import annotations

import zlib
from typing import Literal

Partitioner = Literal["consistent", "murmur2"]

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), unsigned 32 bit."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length % 4
    if rest >= 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int, partitioner: Partitioner = "consistent") -> int:
    """The partition a keyed message lands on with ``partitioner``.

    ``consistent``: librdkafka's default for keyed messages (CRC-32 % partitions).
    ``murmur2``: the Java client's default ((murmur2 & 0x7fffffff) % partitions).
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if not key:
        raise ValueError("an empty key has no partition of its own (producers pick one at random)")
    if partitioner == "consistent":
        return zlib.crc32(key) % partitions
    if partitioner == "murmur2":
        return (murmur2(key) & 0x7FFFFFFF) % partitions
    raise ValueError(f"unknown partitioner {partitioner!r}: expected 'consistent' or 'murmur2'")
