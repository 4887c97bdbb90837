"""Workarounds for the embedded noida-db broker, installed only when a worker is told
``POLYMON_BROKER_ENGINE=embedded`` (on Apache Kafka neither is needed):

- the fetcher pauses after an empty fetch (``Fetcher._proc_fetch_request`` wrapped):
  Kafka long-polls an empty fetch, the embedded broker answers at once;
- a member handed an empty assignment joins again
  (``CoordinatorGroupRebalance.perform_group_join`` wrapped) instead of stopping.

Both replace a method of an aiokafka class, process-wide (every aiokafka consumer of the
process); streams.framework.gate checks that each still has the signature wrapped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.consumer import group_coordinator
from aiokafka.consumer.fetcher import Fetcher

log = logging.getLogger(__name__)


def idle_fetch_backoff(fetch: Callable[..., Awaitable[Any]], backoff_s: float,
                       ) -> Callable[..., Awaitable[Any]]:
    """``Fetcher._proc_fetch_request`` that pauses ``backoff_s`` after a fetch that
    returned no records.

    A Kafka broker holds an empty fetch for up to fetch.max.wait.ms (long polling); the
    embedded noida-db broker answers at once, so every caught-up aiokafka consumer
    (Faust's, the read model's) spins at thousands of empty fetches per second, taking
    CPU from the workers and the broker on a small machine. Against a broker that long
    polls the pause only follows an already idle wait. Costs at most ``backoff_s`` of
    latency to the first record after an idle spell."""

    async def fetch_with_idle_backoff(self: Fetcher, assignment: Any, node_id: int,
                                      request: Any) -> Any:
        outcome = await fetch(self, assignment, node_id, request)
        # a fetch only asks for partitions with nothing buffered: none buffered now means
        # the response was empty
        if not any(TopicPartition(topic, partition) in self._records
                   for topic, partitions in request.topics for partition, *_ in partitions):
            try:
                await asyncio.sleep(backoff_s)
            except asyncio.CancelledError:
                # as aiokafka's own fetch does: a cancelled fetch (close, unassignment)
                # ends quietly, its result no longer of interest
                return False
        return outcome

    fetch_with_idle_backoff.idle_backoff = backoff_s  # type: ignore[attr-defined]
    return fetch_with_idle_backoff


def install_idle_fetch_backoff(backoff_s: float) -> None:
    """Every aiokafka fetcher of the process (0: none); idempotent."""
    if backoff_s <= 0 or getattr(Fetcher._proc_fetch_request, "idle_backoff", None):
        return
    Fetcher._proc_fetch_request = idle_fetch_backoff(  # type: ignore[method-assign]
        Fetcher._proc_fetch_request, backoff_s)


def rejoin_on_empty_assignment(
        perform_group_join: Callable[[Any], Awaitable[tuple[str, bytes] | None]],
) -> Callable[[Any], Awaitable[tuple[str, bytes] | None]]:
    """``CoordinatorGroupRebalance.perform_group_join`` that answers None (join again,
    after the retry backoff: aiokafka's path for a failed join or sync) when the group
    coordinator's SyncGroup answer gives this member an empty assignment, instead of
    handing the empty bytes to aiokafka, which cannot decode them and stops the
    consumer (seen with the embedded broker when a member joined while the leader was
    assigning; a Kafka coordinator does the same for a member the leader left out)."""

    async def join(self: Any) -> tuple[str, bytes] | None:
        assignment = await perform_group_join(self)
        if assignment is not None and not assignment[1]:
            log.warning("group %s: the coordinator gave this member an empty assignment; "
                        "joining the group again", getattr(self, "group_id", "?"))
            return None
        return assignment

    join.rejoins_on_empty = True  # type: ignore[attr-defined]
    return join


def install_empty_assignment_rejoin() -> None:
    """Process-wide (every aiokafka consumer in a group); idempotent."""
    rebalance = group_coordinator.CoordinatorGroupRebalance
    if not getattr(rebalance.perform_group_join, "rejoins_on_empty", False):
        rebalance.perform_group_join = rejoin_on_empty_assignment(  # type: ignore[method-assign]
            rebalance.perform_group_join)
