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


# Faust keeps a message's timestamp as float seconds: milliseconds round-trip exactly up to
# 2**43 (the year 2248), not near 2**53
@given(st.none() | st.integers(0, 2**43), st.none() | st.binary(max_size=8),
       st.none() | st.binary(max_size=8), st.integers(0, 2**40),
       st.lists(st.tuples(st.sampled_from(["traceparent", "x"]), st.binary(max_size=8)),
                max_size=3))
def test_a_message_of_fausts_path_reads_as_the_fetched_record(
        timestamp_ms: int | None, key: bytes | None, value: bytes | None, offset: int,
        headers: list[tuple[str, bytes]]) -> None:
    record = FetchedRecord("health.events", 3, offset, timestamp_ms, 0, key, value, None,
                           -1 if key is None else len(key), -1 if value is None else len(value),
                           tuple(headers))
    consumer = Consumer.__new__(Consumer)
    consumer.app = _Generation()  # type: ignore[assignment]
    message = Consumer._to_message(consumer, TP("health.events", 3), record)  # Faust's own
    fields = ("topic", "partition", "offset", "timestamp", "key", "value", "headers")
    assert ([getattr(delivered(message), name) for name in fields]
            == [getattr(record, name) for name in fields])


# --- PendingDeliveries: a commit waits for the broker's acknowledgement ---------------


async def test_settle_waits_for_every_delivery_and_forgets_them() -> None:
    import asyncio

    from streams.delivery import PendingDeliveries

    pending = PendingDeliveries()
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    pending.track("control.pauses", first)
    pending.track("audit.log", second)
    settling = asyncio.ensure_future(pending.settle())
    await asyncio.sleep(0.01)
    assert not settling.done()  # the broker has not acknowledged: the commit waits
    first.set_result("metadata")
    await asyncio.sleep(0.01)
    assert not settling.done()
    second.set_result("metadata")
    assert await settling == 2
    assert len(pending) == 0 and await pending.settle() == 0


async def test_a_failed_delivery_raises_naming_its_topic() -> None:
    import asyncio

    import pytest

    from streams.delivery import DeliveryFailed, PendingDeliveries

    pending = PendingDeliveries()
    loop = asyncio.get_running_loop()
    delivered_one, failed, cancelled = (loop.create_future() for _ in range(3))
    delivered_one.set_result("metadata")
    failed.set_exception(RuntimeError("NotEnoughReplicasError"))
    cancelled.cancel()
    pending.track("monitor.alerts", delivered_one)
    pending.track("control.pauses", failed)
    pending.track("audit.log", cancelled)
    with pytest.raises(DeliveryFailed, match=r"2 of 3 .*audit.log, control.pauses.*"
                                             r"NotEnoughReplicasError"):
        await pending.settle()
    # and so does every later settle: nothing is acknowledged after a loss
    pending.track("monitor.alerts", asyncio.ensure_future(asyncio.sleep(0)))
    with pytest.raises(DeliveryFailed, match=r"control\.pauses"):
        await pending.settle()


async def test_a_cancelled_settle_keeps_what_is_not_yet_acknowledged() -> None:
    import asyncio

    from streams.delivery import PendingDeliveries

    pending = PendingDeliveries()
    loop = asyncio.get_running_loop()
    done, waiting = loop.create_future(), loop.create_future()
    done.set_result("metadata")
    pending.track("control.pauses", done)
    pending.track("control.pauses", waiting)
    settling = asyncio.ensure_future(pending.settle())
    await asyncio.sleep(0.01)
    settling.cancel()
    await asyncio.gather(settling, return_exceptions=True)
    assert len(pending) == 1  # the next settle still waits for it
    waiting.set_result("metadata")
    assert await pending.settle() == 1
