"""Dead group members made to leave, so the living take over their partitions.

Kafka's coordinator evicts a member whose session expired; a broker that never does
(the embedded noida-db keeps a SIGKILLed member forever) would leave its partitions
unowned: their scopes unmonitored, their stale feeds never paused. Every
``member_check_interval_s`` each worker lists the group (DescribeGroups), asks every
other member's announced URL for the member id it holds (``/healthz``), and sends
LeaveGroup on behalf of a member that stayed silent, or named another id, for a whole
session timeout (the judgement is streams.control.membership). The group then
rebalances without it. For the embedded broker only (``POLYMON_BROKER_ENGINE=embedded``):
on Apache Kafka the coordinator expires a dead member's session itself, and an eviction
without quorum would let a worker whose view of a live peer's HTTP port is cut evict it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from aiokafka.protocol.admin import DescribeGroupsRequest
from aiokafka.protocol.group import LeaveGroupRequest

from streams.app import app, metrics, settings
from streams.control.membership import DeadMemberDetector, Sighting
from streams.framework.clients import group_member_id
from streams.kafka_security import aiokafka_security
from streams.peer_auth import peer_headers, reachable_peer

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 1.0

detector = DeadMemberDetector(grace_ms=int(settings.session_timeout_s * 1000))


def own_member_id() -> str:
    """The id this worker holds in its consumer group now ('' while it holds none)."""
    return group_member_id(app)


def announced_url(member_metadata: bytes) -> str | None:
    """The URL a Faust worker announced in its group subscription (its user data)."""
    try:
        user_data = ConsumerProtocolMemberMetadata.decode(member_metadata).user_data
        url = json.loads(user_data)["url"]
    except Exception:  # another kind of consumer in the group
        return None
    return str(url).rstrip("/") if url else None


async def _probe(session: aiohttp.ClientSession, url: str | None) -> str | None:
    """The member id the worker at ``url`` says it holds; None when it does not answer.
    Only a signed request learns it, and only URLs a peer may have are asked."""
    if url is None or not reachable_peer(url, settings.peer_urls):
        return None
    try:
        async with session.get(f"{url}/healthz",  # 200, or 503 while busy
                               headers=peer_headers(settings.peer_secret, "GET", url, "/healthz",
                                                    int(time.time() * 1000))) as response:
            return str((await response.json(content_type=None))["group_member_id"])
    except Exception:
        return None


async def _members(client: AIOKafkaClient) -> tuple[int, list[tuple[str, bytes]]]:
    """The coordinator's node and every listed member: (member id, subscription)."""
    node = await client.coordinator_lookup(CoordinationType.GROUP, settings.group_id)
    response = await client.send(node, DescribeGroupsRequest([settings.group_id]))
    (group,) = response.groups  # error, id, state, protocol type, protocol, members, ...
    return node, [(member[0], member[3]) for member in group[5]]


async def check_members(client: AIOKafkaClient) -> list[str]:
    """One round: the ids evicted now."""
    own = own_member_id()
    if not own:
        return []
    node, members = await _members(client)
    urls = {member_id: announced_url(metadata) for member_id, metadata in members}
    others = [(member_id, url) for member_id, url in urls.items() if member_id != own]
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        answers = await asyncio.gather(*(_probe(session, url) for _, url in others))
    sightings = [Sighting(own, urls[own], own)] if own in urls else []
    sightings += [Sighting(member_id, url, answer)
                  for (member_id, url), answer in zip(others, answers, strict=True)]
    evicted = []
    for eviction in detector.observe(sightings, own, int(time.time() * 1000)):
        response = await client.send(node, LeaveGroupRequest(settings.group_id,
                                                              eviction.member_id))
        error = getattr(response, "error_code", 0)
        log.warning("group member %s (%s): made it leave the group, so that its partitions "
                    "are reassigned (LeaveGroup error code %d)", eviction.member_id,
                    eviction.why, error)
        if error == 0:
            metrics.group_members_evicted.inc()
            evicted.append(eviction.member_id)
    return evicted


@app.task
async def evict_dead_members() -> None:
    """Every ``member_check_interval_s``, one round of check_members, for the life of the
    worker."""
    if not settings.evicts_dead_members:
        return
    client: AIOKafkaClient | None = None
    failing = False
    try:
        while True:
            await asyncio.sleep(settings.member_check_interval_s)
            try:
                if client is None:
                    client = AIOKafkaClient(bootstrap_servers=settings.kafka_bootstrap,
                                            client_id=f"{settings.worker_id}-membership",
                                            **aiokafka_security(settings))
                    await client.bootstrap()
                await check_members(client)
                if failing:
                    log.info("group member checks work again")
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is away: the next round tries again
                if not failing:  # once per outage, not every round
                    log.info("group member check failed (retrying every %gs): %r",
                             settings.member_check_interval_s, exc)
                failing = True
                if client is not None:
                    await client.close()
                    client = None
    finally:
        if client is not None:
            await client.close()
