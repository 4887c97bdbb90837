"""Synthetic input for the demo, tests and benchmarks: deterministic for a seed."""

from __future__ import annotations

import random
from collections.abc import Iterator

from streams.records import HealthEvent, HealthEventKind


def health_events(count: int, *, markets: int = 4, bots: int = 2, start_ms: int,
                  step_ms: int = 50, seed: int = 1) -> Iterator[HealthEvent]:
    """Book updates per market (with sequence numbers) and heartbeats per bot."""
    rng = random.Random(seed)
    sequences: dict[str, int] = {}
    for index in range(count):
        time_ms = start_ms + index * step_ms
        if rng.random() < 0.8:
            scope = f"market:m{rng.randrange(markets)}"
            sequences[scope] = sequences.get(scope, 0) + 1
            yield HealthEvent(
                event_id=f"syn-{seed}-{index}", scope=scope, kind=HealthEventKind.DATA_UPDATE,
                source="synthetic-feed", event_time_ms=time_ms, feed="book",
                sequence=sequences[scope],
            )
        else:
            yield HealthEvent(
                event_id=f"syn-{seed}-{index}", scope=f"bot:b{rng.randrange(bots)}",
                kind=HealthEventKind.HEARTBEAT, source="synthetic-bot", event_time_ms=time_ms,
                heartbeat_interval_ms=1000,
            )


GARBAGE_SAMPLES: tuple[bytes, ...] = (
    b"",
    b"not avro at all",
    b"\x00\x00\x00\x00\x01\xff\xff\xff",  # right header, corrupt body
    b"\x00\x00\x00\x03\xe7payload",  # unknown schema id 999
    b'{"scope": "market:m1"}',  # JSON where Avro belongs
)


def garbage(count: int, seed: int = 1) -> Iterator[bytes]:
    """Bytes that must end in the dead-letter topic: fixed samples, then random noise."""
    rng = random.Random(seed)
    for index in range(count):
        if index < len(GARBAGE_SAMPLES):
            yield GARBAGE_SAMPLES[index]
        else:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
