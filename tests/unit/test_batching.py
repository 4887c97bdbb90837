"""The consumer-group join guard (streams.batching): an empty assignment from the group
coordinator means join again, not a stopped consumer."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance
from aiokafka.coordinator.protocol import ConsumerProtocol

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


def test_the_guard_is_installed_once_for_every_consumer() -> None:
    import streams.app  # noqa: F401  (installs it)

    installed = CoordinatorGroupRebalance.perform_group_join
    assert getattr(installed, "rejoins_on_empty", False)
    batching.install_empty_assignment_rejoin()
    assert CoordinatorGroupRebalance.perform_group_join is installed
