"""PauseGuard's pure core: the fail-closed checks and the pause hierarchy, fed plain
PauseStates, heartbeat times and offsets (no broker, no clock)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.control.pauses import is_paused
from streams.records import PausePolicy, PauseState
from streams.runner import (
    Beat,
    Decision,
    GuardState,
    GuardStatus,
    PauseBook,
    PauseGuard,
    assess,
    decide,
    heartbeat_age_s,
)

NOW_MS = 1_790_000_000_000
NOW_MONO = 5_000.0
LIMIT_S = 5.0


def pause(scope: str, paused: bool = True, reason: str | None = "GOV_OPERATOR_PAUSE",
          since_ms: int = 1_790_000_000_000) -> PauseState:
    return PauseState(scope=scope, paused=paused, reason_code=reason, since_ms=since_ms,
                      cause_id="cmd-1", policy=PausePolicy.MANUAL, actor="operator:alice",
                      updated_ms=since_ms, state_id=f"{scope}-{paused}")


def ready_book(*states: PauseState) -> PauseBook:
    book = PauseBook(closed=None)
    book.set_targets({0: (0, len(states)), 1: (0, 0)})
    book.consumed(0, len(states))
    book.apply_heartbeat("worker-1", NOW_MS - 500, NOW_MONO - 0.5)
    for state in states:
        book.apply_pause(state.scope, state)
    return book


def verdict(book: PauseBook, scope: str) -> Decision:
    return decide(scope, book, assess(book, NOW_MS, NOW_MONO, LIMIT_S))


def test_a_paused_market_is_denied_with_its_reason_and_others_are_allowed() -> None:
    book = ready_book(pause("market:m7", reason="RISK_STALE_BOOK"))
    denied = verdict(book, "market:m7")
    assert not denied and denied.allowed is False
    assert denied.reason == "paused: market:m7 (RISK_STALE_BOOK since 2026-09-21T14:13:20Z)"
    assert denied.covering_scope == "market:m7"
    allowed = verdict(book, "market:m8")
    assert allowed and allowed == Decision(True, "not paused", None)


def test_a_market_pause_reaches_that_market_under_every_bot() -> None:
    book = ready_book(pause("market:m7"))
    denied = verdict(book, "bot:b1/market:m7")
    assert not denied and denied.covering_scope == "market:m7"
    assert denied.reason.startswith("paused by parent market:m7 (GOV_OPERATOR_PAUSE since")
    assert verdict(book, "bot:b1/market:m8")


def test_a_bot_pause_covers_all_its_markets_and_not_the_other_bots() -> None:
    book = ready_book(pause("bot:b1"))
    for scope in ("bot:b1", "bot:b1/market:m7", "bot:b1/market:m9"):
        decision = verdict(book, scope)
        assert not decision and decision.covering_scope == "bot:b1", scope
    assert verdict(book, "bot:b1/market:m9").reason.startswith("paused by parent bot:b1 (")
    assert verdict(book, "bot:b2/market:m8")
    assert verdict(book, "market:m9"), "the bare market is not under the bot"


def test_global_pauses_everything_and_is_named_as_the_broadest_cover() -> None:
    book = ready_book(pause("global"), pause("bot:b1"))
    for scope in ("global", "bot:b2", "market:m1", "bot:b1/market:m7", "model:x"):
        assert verdict(book, scope).covering_scope == "global"


def test_a_resumed_or_deleted_scope_is_allowed_again() -> None:
    book = ready_book(pause("market:m7"))
    assert book.apply_pause("market:m7", pause("market:m7", paused=False, reason=None))
    assert verdict(book, "market:m7")
    assert book.apply_pause("market:m7", pause("market:m7"))
    assert not verdict(book, "market:m7")
    assert book.apply_pause("market:m7", None)  # tombstone
    assert verdict(book, "market:m7") and "market:m7" not in book.pauses


def test_a_redelivered_state_is_not_a_change() -> None:
    book = ready_book()
    assert book.apply_pause("market:m7", pause("market:m7"))
    assert not book.apply_pause("market:m7", pause("market:m7"))
    assert not book.apply_pause("market:m9", None), "a tombstone of an unknown scope"


def test_an_undecodable_pause_record_denies_its_scope_until_a_readable_one_arrives() -> None:
    book = ready_book()
    book.apply_unreadable("bot:b1", "magic byte is 1, expected 0 (not Avro-framed)")
    book.apply_unreadable("not a scope", "garbage")
    assert book.undecodable == 2
    status = assess(book, NOW_MS, NOW_MONO, LIMIT_S)
    assert status and status.undecodable == 2
    denied = verdict(book, "bot:b1/market:m7")
    assert not denied and denied.covering_scope == "bot:b1"
    assert denied.reason == ("pause state of bot:b1 undecodable: "
                             "magic byte is 1, expected 0 (not Avro-framed)")
    assert verdict(book, "bot:b2/market:m7")
    book.apply_pause("bot:b1", pause("bot:b1", paused=False, reason=None))
    assert verdict(book, "bot:b1/market:m7")
    book.apply_unreadable("bot:b1", "corrupt")
    book.apply_pause("bot:b1", None)  # a tombstone clears it too
    assert verdict(book, "bot:b1/market:m7")


def test_an_invalid_scope_is_denied_not_raised() -> None:
    decision = verdict(ready_book(), "exchange:x")
    assert not decision and decision.reason.startswith("invalid scope:")


SCOPES = ["global", "bot:b1", "bot:b2", "market:m7", "market:m8", "bot:b1/market:m7",
          "bot:b2/market:m7", "bot:b1/market:m8", "model:x", "feed:book"]


@given(st.sets(st.sampled_from(SCOPES)), st.sampled_from(SCOPES))
def test_the_covering_scope_is_the_one_is_paused_names(paused: set[str], scope: str) -> None:
    book = ready_book(*(pause(s) for s in paused))
    decision = verdict(book, scope)
    expected = is_paused(scope, {s: True for s in paused})
    assert decision.covering_scope == expected
    assert decision.allowed is (expected is None)


# -- fail closed -----------------------------------------------------------------------


def test_a_guard_not_running_denies() -> None:
    book = ready_book()
    book.closed = "guard not started"
    status = assess(book, NOW_MS, NOW_MONO, LIMIT_S)
    assert status.state is GuardState.STOPPED and not status
    assert verdict(book, "market:m8") == Decision(False, "guard not started")


def test_until_caught_up_everything_is_denied() -> None:
    book = ready_book()
    book.targets = None
    assert verdict(book, "market:m8").reason == \
        "not caught up with control.pauses (reading its end offsets)"
    book.set_targets({0: (0, 3), 1: (0, 0), 2: (4, 9), 3: (7, 7)})
    status = assess(book, NOW_MS, NOW_MONO, LIMIT_S)
    assert status.state is GuardState.CATCHING_UP
    assert status.reason == "not caught up with control.pauses (partitions 0, 2 behind)"
    book.consumed(0, 3)
    book.consumed(2, 8)
    assert "partitions 2 behind" in verdict(book, "market:m8").reason
    book.consumed(2, 9)  # empty (1) and fully deleted (3) partitions need no reading
    assert verdict(book, "market:m8")
    book.set_targets({0: (0, 5), 1: (0, 0), 2: (4, 9), 3: (7, 7)})  # new end offsets
    assert not verdict(book, "market:m8")


def test_a_missing_topic_is_named() -> None:
    book = ready_book()
    book.targets, book.waiting_for = None, "waiting for topic x.control.pauses"
    status = assess(book, NOW_MS, NOW_MONO, LIMIT_S, pauses_topic="x.control.pauses")
    assert status.reason == \
        "not caught up with x.control.pauses (waiting for topic x.control.pauses)"


def test_a_stale_or_missing_polymon_heartbeat_denies() -> None:
    book = ready_book(pause("market:m7"))
    book.heartbeats.clear()
    assert verdict(book, "market:m8").reason == \
        "no polymon heartbeat seen on monitor.heartbeat"
    book.apply_heartbeat("worker-1", NOW_MS - 7_200, NOW_MONO - 7.2)
    status = assess(book, NOW_MS, NOW_MONO, LIMIT_S)
    assert status.state is GuardState.HEARTBEAT_STALE
    assert status.reason == "polymon heartbeat 7.2s old (limit 5s)"
    assert status.heartbeat_age_s == pytest.approx(7.2)
    assert verdict(book, "market:m8").reason == status.reason


def test_a_broker_loss_denies_before_anything_else() -> None:
    book = ready_book()
    book.broker_error = "1/1 brokers are down"
    book.targets = None
    status = assess(book, NOW_MS, NOW_MONO, LIMIT_S)
    assert status.state is GuardState.BROKER_UNREACHABLE
    assert verdict(book, "market:m8").reason == "broker unreachable: 1/1 brokers are down"


def test_heartbeat_age_counts_replayed_heartbeats_as_old_as_they_are() -> None:
    # Read at start from the compacted topic: just received, but stamped 60 s ago.
    beats = {"w1": Beat(NOW_MS - 60_000, NOW_MONO)}
    assert heartbeat_age_s(beats, NOW_MS, NOW_MONO) == pytest.approx(60.0)


def test_heartbeat_age_does_not_trust_a_worker_clock_running_ahead() -> None:
    # The worker's clock is 10 min ahead: its stamp looks fresh forever; receipt does not.
    beats = {"w1": Beat(NOW_MS + 600_000, NOW_MONO - 8.0)}
    assert heartbeat_age_s(beats, NOW_MS, NOW_MONO) == pytest.approx(8.0)


def test_the_freshest_worker_counts_and_a_tombstone_removes_a_worker() -> None:
    book = PauseBook()
    book.apply_heartbeat("old", NOW_MS - 30_000, NOW_MONO - 30.0)
    book.apply_heartbeat("new", NOW_MS - 1_000, NOW_MONO - 1.0)
    assert heartbeat_age_s(book.heartbeats, NOW_MS, NOW_MONO) == pytest.approx(1.0)
    book.apply_heartbeat("new", NOW_MS - 20_000, NOW_MONO)  # older than known: ignored
    assert heartbeat_age_s(book.heartbeats, NOW_MS, NOW_MONO) == pytest.approx(1.0)
    book.apply_heartbeat("new", None, NOW_MONO)
    assert heartbeat_age_s(book.heartbeats, NOW_MS, NOW_MONO) == pytest.approx(30.0)
    book.apply_heartbeat("old", None, NOW_MONO)
    assert heartbeat_age_s(book.heartbeats, NOW_MS, NOW_MONO) is None


def test_status_and_decision_are_truthy_only_when_allowed() -> None:
    assert GuardStatus(GuardState.READY, "ready")
    assert not GuardStatus(GuardState.HEARTBEAT_STALE, "old")
    assert Decision(True, "not paused") and not Decision(False, "paused")


def test_an_unstarted_guard_denies_without_touching_the_network() -> None:
    guard = PauseGuard("127.0.0.1:1", topic_prefix="x.")
    assert guard.allowed("market:m1") == Decision(False, "guard not started")
    assert guard.status().state is GuardState.STOPPED
    assert guard.pauses_topic == "x.control.pauses"
    with pytest.raises(ValueError, match="heartbeat_max_age_s"):
        PauseGuard("127.0.0.1:1", heartbeat_max_age_s=0)
