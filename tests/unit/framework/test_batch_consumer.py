"""streams.batching: the consumer-group join guard (an empty assignment from the group
coordinator means join again, not a stopped consumer) and the offset to commit."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocol
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st
from intervaltree import Interval, IntervalTree

from streams import batching


class _Rebalance:
    group_id = "polymon"


def _join_answering(answer: tuple[str, bytes] | None):  # type: ignore[no-untyped-def]
    calls: list[object] = []

    async def perform_group_join(self: object) -> tuple[str, bytes] | None:
        calls.append(self)
        return answer

    return batching.rejoin_on_empty_assignment(perform_group_join), calls


def test_an_empty_assignment_means_join_again(caplog: pytest.LogCaptureFixture) -> None:
    join, calls = _join_answering(("faust", b""))
    with caplog.at_level(logging.WARNING, logger="streams.batching"):
        assert asyncio.run(join(_Rebalance())) is None
    assert len(calls) == 1
    assert "group polymon: the coordinator gave this member an empty assignment" in caplog.text
    with pytest.raises(ValueError):  # what aiokafka would have been handed
        ConsumerProtocol.ASSIGNMENT.decode(b"")


def test_an_assignment_or_a_failed_join_passes_through_unchanged() -> None:
    assigned = ("faust", ConsumerProtocol.ASSIGNMENT(0, [("t", [0, 1])], b"").encode())
    join, _ = _join_answering(assigned)
    assert asyncio.run(join(_Rebalance())) == assigned
    join, _ = _join_answering(None)
    assert asyncio.run(join(_Rebalance())) is None


_PATCHES_AFTER_IMPORT = """
import streams.app
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance
from streams import batching
join, fetch = CoordinatorGroupRebalance.perform_group_join, Fetcher._proc_fetch_request
print(bool(getattr(join, "rejoins_on_empty", False)), bool(getattr(fetch, "idle_backoff", 0)))
if "{engine}" == "embedded":  # a second install changes nothing
    batching.install_empty_assignment_rejoin()
    batching.install_idle_fetch_backoff(0.01)
    assert CoordinatorGroupRebalance.perform_group_join is join, "installed twice"
    assert Fetcher._proc_fetch_request is fetch, "installed twice"
"""


@pytest.mark.parametrize(("engine", "installed"), [("embedded", ["True", "True"]),
                                                   ("kafka", ["False", "False"])])
def test_embedded_broker_patches_are_installed_once_and_only_for_it(
        engine: str, installed: list[str]) -> None:
    done = subprocess.run(  # a process of its own: the patches are process-wide
        [sys.executable, "-c", _PATCHES_AFTER_IMPORT.format(engine=engine)],
        env={**os.environ, "POLYMON_BROKER_ENGINE": engine}, capture_output=True, text=True,
        timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == installed


def _offsets_state(acked: list[int], committed: int | None,
                   gaps: list[tuple[int, int]]) -> batching.BatchingConsumer:
    """A consumer holding only the acknowledgement bookkeeping _new_offset reads."""
    consumer = batching.BatchingConsumer.__new__(batching.BatchingConsumer)
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
    assert batching.first_run_length([5]) == 1
    assert batching.first_run_length(list(range(7, 20_007))) == 20_000
    assert batching.first_run_length([*range(3, 10), 12, 13]) == 7
    assert batching.first_run_length([3, 5, 6]) == 1


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
