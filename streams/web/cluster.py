"""Answers that need every worker: a worker's tables hold only its partitions, so list
requests over table state are fanned out to every member of the group and merged.

Membership and partitions come from Faust's partition assignor (the same metadata
Faust's own table routing uses): each member's canonical URL and the partitions of the
input topics it owns. The merged answer says which worker answered for which partitions
and whether every partition was covered (``complete``), so a caller can tell a partial
answer during a rebalance from a full one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from streams.app import app, settings, topic_specs
from streams.peer_auth import peer_headers, reachable_peer

log = logging.getLogger(__name__)
PARTITION_TOPIC = "health.events"  # every input topic is co-partitioned with it


def own_url() -> str:
    return str(app.conf.canonical_url).rstrip("/")


def own_partitions() -> list[int]:
    topic = settings.topic(PARTITION_TOPIC)
    try:
        return sorted(tp.partition for tp in app.assignor.assigned_actives()
                      if tp.topic == topic)
    except Exception:  # not assigned yet
        return []


def members() -> dict[str, list[int]]:
    """Every member's URL and the partitions it owns (ours included)."""
    topic = settings.topic(PARTITION_TOPIC)
    found: dict[str, list[int]] = {}
    try:
        for url, topics in app.assignor.external_topics_metadata().items():
            if reachable_peer(str(url), settings.peer_urls):
                found[str(url).rstrip("/")] = sorted(topics.get(topic, []))
    except Exception:
        log.debug("no assignment metadata yet", exc_info=True)
    found[own_url()] = own_partitions()
    return found


def local_answer(data: Any) -> dict[str, Any]:
    return {"worker_id": settings.worker_id, "url": own_url(), "partitions": own_partitions(),
            "data": data}


class PeerError(RuntimeError):
    """A peer's answer was not a 200 (its body is not passed on)."""


def signed(url: str, path: str) -> dict[str, str]:
    """Headers of this worker's own GET of ``path`` on the peer at ``url``."""
    return peer_headers(settings.peer_secret, "GET", url, path, int(time.time() * 1000))


async def _fetch(session: aiohttp.ClientSession, url: str, path: str,
                 query: Mapping[str, str]) -> dict[str, Any]:
    # the caller's Authorization never travels: the request is this worker's own, signed
    async with session.get(f"{url}{path}", params={**query, "local": "true"},
                           headers=signed(url, path)) as response:
        if response.status != 200:
            raise PeerError(f"HTTP {response.status}")
        return await response.json(content_type=None)


async def fan_out(path: str, query: Mapping[str, str], local: Callable[[], Any],
                  merge: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """``local()`` here and ``path?local=true`` on every other member, merged."""
    mine = local_answer(local())
    others = {url: parts for url, parts in members().items() if url != mine["url"]}
    answers: list[dict[str, Any]] = [mine]
    workers = [{"worker_id": mine["worker_id"], "url": mine["url"],
                "partitions": mine["partitions"], "ok": True}]
    if others:
        timeout = aiohttp.ClientTimeout(total=settings.api_fanout_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            results = await asyncio.gather(
                *(_fetch(session, url, path, query) for url in others),
                return_exceptions=True)
        for (url, parts), result in zip(others.items(), results, strict=True):
            if isinstance(result, BaseException):
                # the kind of failure only: no exception text reaches an answer
                error = str(result) if isinstance(result, PeerError) else (
                    "timed out" if isinstance(result, asyncio.TimeoutError) else "unreachable")
                workers.append({"worker_id": None, "url": url, "partitions": parts,
                                "ok": False, "error": error})
                continue
            answers.append(result)
            workers.append({"worker_id": result.get("worker_id"), "url": url,
                            "partitions": result.get("partitions", []), "ok": True})
    data = answers[0]["data"]
    for answer in answers[1:]:
        data = merge(data, answer["data"])
    covered = {p for w in workers if w["ok"] for p in w["partitions"]}
    total = topic_specs[PARTITION_TOPIC].partitions
    return {"data": data, "workers": workers,
            "complete": covered >= set(range(total)) and all(w["ok"] for w in workers)}


def merge_rows(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {**a, **b}

