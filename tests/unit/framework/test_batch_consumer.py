"""streams.framework.batch_consumer against Faust's own consumer: the offset to commit
(Faust's ``_new_offset``) and the acknowledgement bookkeeping."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st
from intervaltree import Interval, IntervalTree

from streams.framework import batch_consumer


def _offsets_state(acked: list[int], committed: int | None,
                   gaps: list[tuple[int, int]]) -> batch_consumer.BatchingConsumer:
    """A consumer holding only the acknowledgement bookkeeping _new_offset reads."""
    consumer = batch_consumer.BatchingConsumer.__new__(batch_consumer.BatchingConsumer)
    consumer._acked = {TP_: list(acked)}
    consumer._acked_index = {TP_: set(acked)}
    consumer._committed_offset = {TP_: committed}
    consumer._gap = {TP_: IntervalTree(Interval(begin, end) for begin, end in gaps)}
    return consumer


TP_ = TP("health.events", 0)


@settings(max_examples=300, deadline=None)
@given(st.sets(st.integers(0, 60), max_size=40), st.none() | st.integers(0, 30),
       st.lists(st.tuples(st.integers(0, 60), st.integers(1, 5)), max_size=3),
       st.randoms(use_true_random=False))
def test_the_offset_to_commit_is_fausts(acked: set[int], committed: int | None,
                                        gaps: list[tuple[int, int]],
                                        shuffle: Any) -> None:
    offsets = sorted(acked) if shuffle.random() < 0.7 else shuffle.sample(sorted(acked),
                                                                          len(acked))
    intervals = [(begin, begin + length) for begin, length in gaps
                 if not acked & set(range(begin, begin + length))]
    ours, fausts = (_offsets_state(offsets, committed, intervals) for _ in range(2))
    expected = faust_aiokafka.Consumer._new_offset(fausts, TP_)
    assert ours._new_offset(TP_) == expected
    assert (ours._acked, ours._acked_index) == (fausts._acked, fausts._acked_index)
    assert list(ours._gap[TP_]) == list(fausts._gap[TP_])


def test_the_first_run_of_consecutive_offsets() -> None:
    assert batch_consumer.first_run_length([5]) == 1
    assert batch_consumer.first_run_length(list(range(7, 20_007))) == 20_000
    assert batch_consumer.first_run_length([*range(3, 10), 12, 13]) == 7
    assert batch_consumer.first_run_length([3, 5, 6]) == 1


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 40), max_size=20), st.none() | st.integers(0, 30),
       st.integers(0, 40), st.integers(0, 20))
def test_offsets_are_acknowledged_once_and_only_from_the_committed_one_on(
        acked: set[int], committed: int | None, first: int, count: int) -> None:
    consumer = _offsets_state(sorted(acked), committed, [])
    consumer.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    consumer._waiting_for_ack = None
    consumer._n_acked = 0
    handled = list(range(first, first + count))
    consumer._ack_offsets(TP_, handled)
    fresh = [offset for offset in handled
             if (committed is None or offset >= committed) and offset not in acked]
    assert consumer._acked[TP_] == [*sorted(acked), *fresh]
    assert consumer._acked_index[TP_] == acked | set(fresh)
    assert consumer._n_acked == len(fresh)


class _Message:
    """What Faust's ``Consumer.ack`` reads of a message."""

    def __init__(self, offset: int) -> None:
        self.acked, self.tp, self.offset, self.topic = False, TP_, offset, TP_.topic


class _Topics:
    @staticmethod
    def acks_enabled_for(topic: str) -> bool:
        return True


def _ack_state(acked: list[int], committed: int | None) -> batch_consumer.BatchingConsumer:
    """A consumer holding only the bookkeeping an acknowledgement writes."""
    consumer = batch_consumer.BatchingConsumer.__new__(batch_consumer.BatchingConsumer)
    consumer.app = SimpleNamespace(topics=_Topics())
    consumer._acked = {TP_: list(acked)}
    consumer._acked_index = {TP_: set(acked)}
    consumer._committed_offset = {TP_: committed}
    consumer._n_acked = len(acked)
    consumer._waiting_for_ack = None
    consumer._unacked_messages = set()
    return consumer


@settings(max_examples=300, deadline=None)
@given(st.sets(st.integers(0, 60), max_size=20), st.none() | st.integers(0, 30),
       st.lists(st.integers(0, 60), unique=True, max_size=40))
def test_acknowledging_a_batch_is_fausts_ack_of_each_offset(
        acked: set[int], committed: int | None, handled: list[int]) -> None:
    ours, fausts = (_ack_state(sorted(acked), committed) for _ in range(2))
    ours._ack_offsets(TP_, handled)
    for offset in handled:
        faust_aiokafka.Consumer.ack(fausts, _Message(offset))  # type: ignore[arg-type]
    assert ours._acked == fausts._acked
    assert ours._acked_index == fausts._acked_index
    assert ours._n_acked == fausts._n_acked
