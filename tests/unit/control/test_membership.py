"""DeadMemberDetector: a member is evicted only after a whole grace period as a suspect
(no answer at its URL, or an answer naming another member id)."""

from __future__ import annotations

from streams.control.membership import DeadMemberDetector, Eviction, Sighting

GRACE_MS = 6_000
ME = Sighting("me-1", "http://a:1", "me-1")


def evicted(evictions: list[Eviction]) -> list[str]:
    return [eviction.member_id for eviction in evictions]


def alive(member_id: str, url: str = "http://b:2") -> Sighting:
    return Sighting(member_id, url, member_id)


def silent(member_id: str, url: str = "http://b:2") -> Sighting:
    return Sighting(member_id, url, None)


def test_a_member_that_never_answers_is_evicted_after_the_grace_period() -> None:
    detector = DeadMemberDetector(GRACE_MS)
    assert evicted(detector.observe([ME, silent("b-1")], "me-1", 0)) == []
    assert evicted(detector.observe([ME, silent("b-1")], "me-1", GRACE_MS - 1)) == []
    (eviction,) = detector.observe([ME, silent("b-1")], "me-1", GRACE_MS)
    assert eviction == Eviction("b-1", "no answer at http://b:2 for 6s")


def test_an_answer_within_the_grace_period_clears_the_suspicion() -> None:
    detector = DeadMemberDetector(GRACE_MS)
    detector.observe([ME, silent("b-1")], "me-1", 0)
    assert evicted(detector.observe([ME, alive("b-1")], "me-1", 4_000)) == []
    # suspected again later: the grace period starts over
    assert evicted(detector.observe([ME, silent("b-1")], "me-1", 5_000)) == []
    assert evicted(detector.observe([ME, silent("b-1")], "me-1", 5_000 + GRACE_MS - 1)) == []
    assert evicted(detector.observe([ME, silent("b-1")], "me-1", 5_000 + GRACE_MS)) == ["b-1"]


def test_an_old_id_of_a_live_worker_is_evicted_its_new_one_kept() -> None:
    detector = DeadMemberDetector(GRACE_MS)
    # worker b rejoined as b-2; its URL answers b-2, so b-1 is a leftover
    members = [ME, Sighting("b-1", "http://b:2", "b-2"), alive("b-2")]
    detector.observe(members, "me-1", 0)
    assert evicted(detector.observe(members, "me-1", GRACE_MS)) == ["b-1"]


def test_never_itself_nor_a_member_it_cannot_judge() -> None:
    detector = DeadMemberDetector(GRACE_MS)
    members = [Sighting("me-1", "http://a:1", None), Sighting("tool-1", None, None)]
    detector.observe(members, "me-1", 0)
    assert evicted(detector.observe(members, "me-1", 10 * GRACE_MS)) == []


def test_nothing_while_this_worker_is_not_a_member_itself() -> None:
    detector = DeadMemberDetector(GRACE_MS)
    assert evicted(detector.observe([silent("b-1")], "", 0)) == []
    assert evicted(detector.observe([silent("b-1")], "me-1", GRACE_MS)) == []  # me-1 not listed
    # once a member, the grace period starts from then
    assert evicted(detector.observe([ME, silent("b-1")], "me-1", GRACE_MS + 1)) == []
    assert evicted(detector.observe([ME, silent("b-1")], "me-1", 2 * GRACE_MS + 1)) == ["b-1"]


def test_a_member_that_left_is_forgotten() -> None:
    detector = DeadMemberDetector(GRACE_MS)
    detector.observe([ME, silent("b-1")], "me-1", 0)
    detector.observe([ME], "me-1", 1_000)  # b-1 left (or a peer evicted it)
    assert evicted(detector.observe([ME, silent("b-1")], "me-1", GRACE_MS)) == []  # a new episode


def test_its_own_former_id_is_evicted_at_once() -> None:
    detector = DeadMemberDetector(GRACE_MS)
    detector.observe([ME, alive("b-1")], "me-1", 0)
    # a failed commit made this worker rejoin as me-2; me-1 would hold up the rebalance
    members = [Sighting("me-1", "http://a:1", "me-2"), Sighting("me-2", "http://a:1", "me-2"),
               alive("b-1")]
    assert evicted(detector.observe(members, "me-2", 1_000)) == ["me-1"]


def test_a_url_at_which_it_answers_itself_proves_nothing() -> None:
    # every worker announced http://0.0.0.0:6066: probing a peer reaches this worker
    detector = DeadMemberDetector(GRACE_MS)
    members = [Sighting("me-1", "http://0.0.0.0:6066", "me-1"),
               Sighting("b-1", "http://0.0.0.0:6066", "me-1")]
    detector.observe(members, "me-1", 0)
    assert evicted(detector.observe(members, "me-1", 10 * GRACE_MS)) == []
