"""streams.framework.embedded_broker against aiokafka's own: the consumer-group join
guard (an empty assignment from the group coordinator means join again, not a stopped
consumer; anything else passes through as aiokafka answered it) and the idle fetch
backoff, each installed once and only for the embedded broker."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocol
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.structs import TopicPartition

from streams.framework import embedded_broker


class _Rebalance:
    group_id = "polymon"


def _join_answering(answer: tuple[str, bytes] | None):  # type: ignore[no-untyped-def]
    calls: list[object] = []

    async def perform_group_join(self: object) -> tuple[str, bytes] | None:
        calls.append(self)
        return answer

    return embedded_broker.rejoin_on_empty_assignment(perform_group_join), calls


def test_an_empty_assignment_means_join_again(caplog: pytest.LogCaptureFixture) -> None:
    join, calls = _join_answering(("faust", b""))
    with caplog.at_level(logging.WARNING, logger="streams.framework.embedded_broker"):
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
from streams.framework import embedded_broker
join, fetch = CoordinatorGroupRebalance.perform_group_join, Fetcher._proc_fetch_request
print(bool(getattr(join, "rejoins_on_empty", False)), bool(getattr(fetch, "idle_backoff", 0)))
if "{engine}" == "embedded":  # a second install changes nothing
    embedded_broker.install_empty_assignment_rejoin()
    embedded_broker.install_idle_fetch_backoff(0.01)
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


class _Fetcher:
    """What the wrapper reads of aiokafka's Fetcher: its buffered partitions."""

    def __init__(self, buffered: set[TopicPartition]) -> None:
        self._records = dict.fromkeys(buffered)


def _request() -> FetchRequest:
    """A fetch request as aiokafka's fetcher builds it, for two partitions of "t"."""
    return FetchRequest(100, 1, 1 << 20, 0, [("t", [(0, 5, 1 << 20), (1, 9, 1 << 20)])],
                        rack_id="")


def _slept(buffered: set[TopicPartition], monkeypatch: pytest.MonkeyPatch,
           cancel: bool = False) -> tuple[object, list[float]]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if cancel:
            raise asyncio.CancelledError

    async def fetch(self: object, assignment: object, node_id: int, request: object) -> str:
        return "aiokafka's outcome"

    monkeypatch.setattr(embedded_broker.asyncio, "sleep", sleep)
    wrapped = embedded_broker.idle_fetch_backoff(fetch, 0.25)
    return asyncio.run(wrapped(_Fetcher(buffered), None, 1, _request())), sleeps


def test_an_empty_fetch_is_followed_by_the_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _slept(set(), monkeypatch) == ("aiokafka's outcome", [0.25])


def test_a_fetch_that_buffered_records_goes_on_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _slept({TopicPartition("t", 1)}, monkeypatch) == ("aiokafka's outcome", [])


def test_a_fetch_cancelled_in_its_backoff_ends_quietly_as_aiokafkas_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _slept(set(), monkeypatch, cancel=True) == (False, [0.25])


def test_the_wrapped_fetch_has_aiokafkas_signature() -> None:
    import inspect

    stock = embedded_broker.Fetcher._proc_fetch_request
    wrapped = embedded_broker.idle_fetch_backoff(stock, 0.01)
    assert (list(inspect.signature(wrapped).parameters)
            == list(inspect.signature(stock).parameters))
