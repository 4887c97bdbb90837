"""streams.delivery: what a handler reads of a message delivered by Faust's own
per-message path (the framework patches off) is what the batching consumer hands it."""

from __future__ import annotations

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from streams.delivery import delivered
from streams.framework.record_unpacking import FetchedRecord


class _Generation:
    consumer_generation_id = 1


@given(st.none() | st.integers(0, 2**53), st.none() | st.binary(max_size=8),
       st.none() | st.binary(max_size=8), st.integers(0, 2**40))
def test_a_message_of_fausts_path_reads_as_the_fetched_record(
        timestamp_ms: int | None, key: bytes | None, value: bytes | None, offset: int) -> None:
    record = FetchedRecord("health.events", 3, offset, timestamp_ms, 0, key, value, None,
                           -1 if key is None else len(key), -1 if value is None else len(value),
                           ())
    consumer = Consumer.__new__(Consumer)
    consumer.app = _Generation()  # type: ignore[assignment]
    message = Consumer._to_message(consumer, TP("health.events", 3), record)  # Faust's own
    fields = ("topic", "partition", "offset", "timestamp", "key", "value")
    assert ([getattr(delivered(message), name) for name in fields]
            == [getattr(record, name) for name in fields])
