"""Which members of the consumer group are dead, judged the way a Kafka coordinator
judges a session, from what a worker can see.

A Kafka coordinator drops a member that stops heartbeating for the session timeout, and
its partitions go to the others. Some Kafka-protocol brokers never do (the embedded
noida-db keeps a SIGKILLed member forever, so its partitions are never reassigned). So
every polymon worker also asks each listed member, at the URL the member announced in
its group subscription, which member id it holds now: a member whose URL does not
answer, or answers with another id (a worker that rejoined under a new id leaves its old
one behind), is a suspect; one that stays a suspect for the whole grace period is dead,
and is made to leave the group on its behalf. A worker's own former ids go at once. On
a broker that expires sessions itself, the dead member is gone before its grace ends and
nothing is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sighting:
    """One member of the group as seen now."""

    member_id: str
    url: str | None  # announced in its subscription; None: not a polymon worker
    answered_member_id: str | None  # what its URL says it holds; None: no answer


@dataclass(frozen=True, slots=True)
class Eviction:
    member_id: str
    why: str


class DeadMemberDetector:
    """Remembers since when each member has been a suspect, and the ids this worker held
    before; pure (no I/O, no clock)."""

    def __init__(self, grace_ms: int) -> None:
        self.grace_ms = grace_ms
        self._suspect_since: dict[str, int] = {}
        self._own_ids: set[str] = set()

    def observe(self, sightings: Iterable[Sighting], own_member_id: str,
                now_ms: int) -> list[Eviction]:
        """The members to evict now, in member id order: this worker's own former ids at
        once (it rejoined under a new one, e.g. after a failed commit; the old one would
        hold up the rebalance), others after a whole grace period as suspects. Nothing while this
        worker is not itself a listed member (it may be the one cut off); never itself,
        never a member it cannot judge: no URL (another kind of consumer), or one at
        which this worker answers itself (an address that is not the member's own, like
        0.0.0.0 announced by every worker)."""
        listed = {s.member_id: s for s in sightings}
        for gone in set(self._suspect_since) - set(listed):
            del self._suspect_since[gone]  # left or evicted: nothing to remember
        if not own_member_id or own_member_id not in listed:
            self._suspect_since.clear()
            return []
        self._own_ids.add(own_member_id)
        self._own_ids &= set(listed)  # a member id is never reused: forget the gone
        dead = []
        for member_id, sighting in listed.items():
            if member_id != own_member_id and member_id in self._own_ids:
                dead.append(Eviction(member_id, "a former id of this worker"))
                continue
            alive = (member_id == own_member_id or sighting.url is None
                     or sighting.answered_member_id in (member_id, own_member_id))
            if alive:
                self._suspect_since.pop(member_id, None)
                continue
            since = self._suspect_since.setdefault(member_id, now_ms)
            if now_ms - since >= self.grace_ms:
                dead.append(Eviction(member_id, (
                    "no answer at " if sighting.answered_member_id is None
                    else f"answered as {sighting.answered_member_id} at ")
                    + f"{sighting.url} for {(now_ms - since) / 1000:.0f}s"))
        return sorted(dead, key=lambda eviction: eviction.member_id)
