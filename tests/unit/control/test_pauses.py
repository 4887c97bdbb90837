"""The pause latch: holds per reason and policy, hold-downs, operator pause/resume."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.control.pauses import (
    _REMEMBERED_COMMANDS,
    AUTO_CLEAR,
    LATCH,
    MANUAL,
    OPERATOR_PAUSE,
    PauseChange,
    expire,
    hold,
    is_paused,
    new_latch,
    operator_pause,
    release,
    resume,
)
from streams.envelope import derive_id

SCOPE = "bot:b1/market:m7"
T0 = 1_790_000_000_000
HOLD_DOWN = 30_000
ACTOR = "agents.health"
STALE = "RISK_STALE_BOOK"
HEARTBEAT = "GOV_HEARTBEAT_MISSED"
BURN = "GOV_SLO_BURN"


def assert_json_state(latch: dict[str, Any]) -> None:
    assert json.loads(json.dumps(latch)) == latch


def paused_by_stale() -> tuple[dict[str, Any], PauseChange]:
    latch, change = hold(new_latch(SCOPE), STALE, AUTO_CLEAR, "alert-a", T0, ACTOR)
    assert change is not None
    return latch, change


# --- hold -----------------------------------------------------------------------------


def test_new_latch_is_running() -> None:
    latch = new_latch(SCOPE)
    assert latch["scope"] == SCOPE
    assert latch["paused"] is False
    assert latch["holds"] == {}
    assert_json_state(latch)


def test_hold_pauses_with_reason_cause_policy_and_since() -> None:
    latch, change = paused_by_stale()
    assert latch["paused"] is True
    assert latch["since_ms"] == T0
    assert latch["holds"][STALE] == {"policy": AUTO_CLEAR, "cause_id": "alert-a",
                                     "since_ms": T0, "cleared_ms": None}
    assert change.scope == SCOPE
    assert change.paused is True
    assert change.reason_code == STALE
    assert change.cause_id == "alert-a"
    assert change.policy == AUTO_CLEAR
    assert change.since_ms == T0
    assert change.actor == ACTOR
    assert change.before == {"paused": False, "holds": []}
    assert change.after == {"paused": True, "holds": [STALE]}
    assert_json_state(latch)


def test_second_hold_while_paused_is_no_new_change() -> None:
    latch, _ = paused_by_stale()
    latch, change = hold(latch, HEARTBEAT, AUTO_CLEAR, "alert-b", T0 + 1_000, ACTOR)
    assert change is None
    assert latch["paused"] is True
    assert set(latch["holds"]) == {STALE, HEARTBEAT}
    # The same reason firing again is no change either.
    latch, change = hold(latch, STALE, AUTO_CLEAR, "alert-c", T0 + 2_000, ACTOR)
    assert change is None
    assert latch["since_ms"] == T0  # paused since the first hold


# --- release and expire ---------------------------------------------------------------


def test_release_then_expire_before_the_hold_down_stays_paused() -> None:
    latch, _ = paused_by_stale()
    latch = release(latch, STALE, T0 + 5_000)
    assert latch["paused"] is True
    assert latch["holds"][STALE]["cleared_ms"] == T0 + 5_000
    for now in (T0 + 5_000, T0 + 5_000 + HOLD_DOWN - 1):
        latch, change = expire(latch, now, HOLD_DOWN, ACTOR)
        assert change is None
        assert latch["paused"] is True
        assert STALE in latch["holds"]


def test_expire_after_the_hold_down_resumes_with_the_released_reason() -> None:
    latch, paused = paused_by_stale()
    latch = release(latch, STALE, T0 + 5_000)
    now = T0 + 5_000 + HOLD_DOWN
    latch, change = expire(latch, now, HOLD_DOWN, ACTOR)
    assert change is not None
    assert change.paused is False
    assert change.reason_code == STALE
    assert change.policy == AUTO_CLEAR
    assert change.cause_id == "alert-a"
    assert change.since_ms == now
    assert change.before == {"paused": True, "holds": [STALE]}
    assert change.after == {"paused": False, "holds": []}
    assert change.state_id != paused.state_id
    assert latch["paused"] is False
    assert latch["holds"] == {}
    assert latch["since_ms"] == now
    assert_json_state(latch)
    # Expiring again changes nothing.
    assert expire(latch, now + HOLD_DOWN, HOLD_DOWN, ACTOR) == (latch, None)


def test_a_hold_that_fires_again_during_its_hold_down_restarts_it() -> None:
    latch, _ = paused_by_stale()
    latch = release(latch, STALE, T0 + 5_000)
    latch, change = hold(latch, STALE, AUTO_CLEAR, "alert-b", T0 + 10_000, ACTOR)
    assert change is None
    assert latch["holds"][STALE]["cleared_ms"] is None
    latch, change = expire(latch, T0 + 5_000 + HOLD_DOWN, HOLD_DOWN, ACTOR)
    assert change is None
    assert latch["paused"] is True


def test_release_of_an_unknown_or_already_released_reason_changes_nothing() -> None:
    latch, _ = paused_by_stale()
    assert release(latch, HEARTBEAT, T0 + 1) == latch
    once = release(latch, STALE, T0 + 1_000)
    # The hold-down starts at the first release, not at a later one.
    assert release(once, STALE, T0 + 9_000)["holds"][STALE]["cleared_ms"] == T0 + 1_000


def test_two_reasons_keep_the_pause_until_both_are_clear() -> None:
    latch, _ = paused_by_stale()
    latch, _ = hold(latch, HEARTBEAT, AUTO_CLEAR, "alert-b", T0 + 1_000, ACTOR)
    latch = release(latch, STALE, T0 + 2_000)
    latch, change = expire(latch, T0 + 2_000 + HOLD_DOWN, HOLD_DOWN, ACTOR)
    assert change is None
    assert latch["paused"] is True
    assert set(latch["holds"]) == {HEARTBEAT}

    latch = release(latch, HEARTBEAT, T0 + 40_000)
    latch, change = expire(latch, T0 + 40_000 + HOLD_DOWN - 1, HOLD_DOWN, ACTOR)
    assert change is None
    latch, change = expire(latch, T0 + 40_000 + HOLD_DOWN, HOLD_DOWN, ACTOR)
    assert change is not None
    assert change.paused is False
    assert change.reason_code == HEARTBEAT
    assert change.cause_id == "alert-b"
    assert latch["holds"] == {}


def test_both_reasons_expiring_together_resume_once_naming_the_oldest() -> None:
    latch, _ = paused_by_stale()
    latch, _ = hold(latch, HEARTBEAT, AUTO_CLEAR, "alert-b", T0 + 1_000, ACTOR)
    latch = release(latch, HEARTBEAT, T0 + 2_000)
    latch = release(latch, STALE, T0 + 3_000)
    latch, change = expire(latch, T0 + 3_000 + HOLD_DOWN, HOLD_DOWN, ACTOR)
    assert change is not None
    assert change.paused is False
    assert change.reason_code == STALE  # held first
    assert change.state_id == derive_id("pause", SCOPE, False, "expired:alert-a,alert-b")


# --- LATCH and MANUAL -----------------------------------------------------------------


def test_latch_hold_never_expires_only_resume_clears_it() -> None:
    latch, change = hold(new_latch(SCOPE), BURN, LATCH, "alert-burn", T0, ACTOR)
    assert change is not None and change.policy == LATCH
    latch = release(latch, BURN, T0 + 1_000)
    for later in (HOLD_DOWN, 10 * HOLD_DOWN, 10**9):
        latch, change = expire(latch, T0 + 1_000 + later, HOLD_DOWN, ACTOR)
        assert change is None
        assert latch["paused"] is True
    latch, change = resume(latch, "cmd-1", T0 + 10**9 + 1, "operator:alice")
    assert change is not None
    assert change.paused is False
    assert change.reason_code == BURN
    assert change.policy == LATCH
    assert change.cause_id == "alert-burn"
    assert change.actor == "operator:alice"
    assert change.state_id == derive_id("pause", SCOPE, False, "cmd-1")
    assert latch["holds"] == {}
    assert latch["paused"] is False


def test_resume_clears_every_hold_including_auto_clear_ones() -> None:
    latch, _ = paused_by_stale()
    latch, _ = hold(latch, BURN, LATCH, "alert-burn", T0 + 1, ACTOR)
    latch, change = resume(latch, "cmd-1", T0 + 2, "operator:alice")
    assert change is not None and change.paused is False
    assert change.reason_code == STALE
    assert change.before == {"paused": True, "holds": sorted([STALE, BURN])}
    assert change.after == {"paused": False, "holds": []}


def test_resume_is_idempotent_by_command_id() -> None:
    latch, _ = hold(new_latch(SCOPE), BURN, LATCH, "alert-burn", T0, ACTOR)
    latch, first = resume(latch, "cmd-1", T0 + 1, "operator:alice")
    assert first is not None
    # The scope is paused again; a re-delivered cmd-1 must not resume it.
    latch, _ = hold(latch, BURN, LATCH, "alert-burn-2", T0 + 2, ACTOR)
    again, second = resume(latch, "cmd-1", T0 + 3, "operator:alice")
    assert second is None
    assert again == latch
    assert again["paused"] is True
    # A new command does.
    latch, third = resume(latch, "cmd-2", T0 + 4, "operator:alice")
    assert third is not None and third.paused is False


def test_resume_of_a_running_scope_is_no_change() -> None:
    latch, change = resume(new_latch(SCOPE), "cmd-1", T0, "operator:alice")
    assert change is None
    assert latch["paused"] is False
    assert "cmd-1" in latch["commands"]


def test_remembered_commands_are_bounded_and_keep_the_latest() -> None:
    latch = new_latch(SCOPE)
    for n in range(200):
        latch, _ = resume(latch, f"cmd-{n}", T0 + n, "operator:alice")
    assert latch["commands"] == [f"cmd-{n}" for n in range(200 - _REMEMBERED_COMMANDS, 200)]
    latch, _ = hold(latch, BURN, LATCH, "alert-burn", T0 + 500, ACTOR)
    assert resume(latch, "cmd-199", T0 + 501, "operator:alice") == (latch, None)


def test_operator_pause_is_manual_and_only_resume_clears_it() -> None:
    latch, change = operator_pause(new_latch(SCOPE), "cmd-p", T0, "operator:bob")
    assert change is not None
    assert change.paused is True
    assert change.reason_code == OPERATOR_PAUSE
    assert change.policy == MANUAL
    assert change.cause_id == "cmd-p"
    assert change.actor == "operator:bob"
    latch = release(latch, OPERATOR_PAUSE, T0 + 1)
    latch, change = expire(latch, T0 + 10 * HOLD_DOWN, HOLD_DOWN, ACTOR)
    assert change is None
    assert latch["paused"] is True
    latch, change = resume(latch, "cmd-r", T0 + 10 * HOLD_DOWN + 1, "operator:bob")
    assert change is not None
    assert change.paused is False
    assert change.reason_code == OPERATOR_PAUSE
    assert change.policy == MANUAL


def test_operator_pause_is_idempotent_by_command_id() -> None:
    latch, first = operator_pause(new_latch(SCOPE), "cmd-p", T0, "operator:bob")
    latch, _ = resume(latch, "cmd-r", T0 + 1, "operator:bob")
    again, second = operator_pause(latch, "cmd-p", T0 + 2, "operator:bob")
    assert first is not None
    assert second is None
    assert again["paused"] is False


def test_an_operator_pause_outlives_the_automatic_hold() -> None:
    latch, _ = paused_by_stale()
    latch, change = operator_pause(latch, "cmd-p", T0 + 1, "operator:bob")
    assert change is None
    latch = release(latch, STALE, T0 + 2)
    latch, change = expire(latch, T0 + 2 + HOLD_DOWN, HOLD_DOWN, ACTOR)
    assert change is None
    assert latch["paused"] is True
    assert set(latch["holds"]) == {OPERATOR_PAUSE}


# --- ids, copies, JSON ------------------------------------------------------------------


def test_state_id_is_deterministic() -> None:
    _, first = paused_by_stale()
    _, second = paused_by_stale()
    assert first.state_id == second.state_id == derive_id("pause", SCOPE, True, "alert-a")
    _, other = hold(new_latch(SCOPE), STALE, AUTO_CLEAR, "alert-z", T0, ACTOR)
    _, elsewhere = hold(new_latch("market:m8"), STALE, AUTO_CLEAR, "alert-a", T0, ACTOR)
    assert other is not None and elsewhere is not None
    assert len({first.state_id, other.state_id, elsewhere.state_id}) == 3


def test_functions_do_not_mutate_their_input() -> None:
    start = new_latch(SCOPE)
    snapshot = copy.deepcopy(start)
    paused, _ = hold(start, STALE, AUTO_CLEAR, "alert-a", T0, ACTOR)
    assert start == snapshot
    assert paused is not start

    snapshot = copy.deepcopy(paused)
    released = release(paused, STALE, T0 + 1)
    assert paused == snapshot
    assert released["holds"][STALE]["cleared_ms"] == T0 + 1

    snapshot = copy.deepcopy(released)
    expired, change = expire(released, T0 + 1 + HOLD_DOWN, HOLD_DOWN, ACTOR)
    assert change is not None
    assert released == snapshot
    assert expired["paused"] is False

    snapshot = copy.deepcopy(paused)
    resumed, _ = resume(paused, "cmd-1", T0 + 2, "operator:alice")
    assert paused == snapshot
    assert resumed["paused"] is False

    start = new_latch(SCOPE)
    snapshot = copy.deepcopy(start)
    operator_pause(start, "cmd-p", T0, "operator:bob")
    assert start == snapshot


def test_state_is_json_serialisable_after_every_step() -> None:
    latch = new_latch(SCOPE)
    steps = [
        lambda s: hold(s, STALE, AUTO_CLEAR, "alert-a", T0, ACTOR)[0],
        lambda s: hold(s, BURN, LATCH, "alert-burn", T0 + 1, ACTOR)[0],
        lambda s: operator_pause(s, "cmd-p", T0 + 2, "operator:bob")[0],
        lambda s: release(s, STALE, T0 + 3),
        lambda s: expire(s, T0 + 3 + HOLD_DOWN, HOLD_DOWN, ACTOR)[0],
        lambda s: resume(s, "cmd-r", T0 + 4 + HOLD_DOWN, "operator:bob")[0],
    ]
    for step in steps:
        latch = step(json.loads(json.dumps(latch)))
        assert_json_state(latch)
    assert latch["paused"] is False


# --- hierarchy ----------------------------------------------------------------------------


@pytest.mark.parametrize(("paused", "expected"), [
    ({"global": True}, "global"),
    ({"bot:b1": True}, "bot:b1"),
    ({"market:m7": True}, "market:m7"),
    ({SCOPE: True}, SCOPE),
    ({"bot:b2": True}, None),
    ({"market:m8": True}, None),
    ({"bot:b1/market:m8": True}, None),
    ({"global": False, "bot:b1": False}, None),
    ({}, None),
])
def test_is_paused_honours_the_scope_hierarchy(paused: dict[str, bool],
                                               expected: str | None) -> None:
    assert is_paused(SCOPE, paused) == expected


def test_is_paused_names_the_broadest_covering_scope() -> None:
    assert is_paused(SCOPE, {"global": True, "bot:b1": True, SCOPE: True}) == "global"
    assert is_paused("global", {"bot:b1": True}) is None
    assert is_paused("global", {"global": True}) == "global"
    assert is_paused("bot:b1", {SCOPE: True}) is None  # a child does not cover its parent


# --- property: any sequence of operations -----------------------------------------------

REASONS = {STALE: AUTO_CLEAR, HEARTBEAT: AUTO_CLEAR, BURN: LATCH}
operations = st.lists(
    st.one_of(
        st.tuples(st.just("hold"), st.sampled_from(sorted(REASONS))),
        st.tuples(st.just("release"), st.sampled_from(sorted(REASONS))),
        st.tuples(st.just("expire"), st.none()),
        st.tuples(st.just("resume"), st.sampled_from(["c1", "c2", "c3"])),
        st.tuples(st.just("pause"), st.sampled_from(["c1", "c2", "c3"])),
    ).flatmap(lambda op: st.tuples(st.just(op), st.integers(0, 2 * HOLD_DOWN))),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_any_sequence_keeps_the_latch_consistent(ops: list[Any]) -> None:
    latch = new_latch(SCOPE)
    now = T0
    changes: list[PauseChange] = []
    for (kind, arg), step_ms in ops:
        now += step_ms
        original, snapshot = latch, copy.deepcopy(latch)
        was_paused = latch["paused"]
        change = None
        if kind == "hold":
            latch, change = hold(latch, arg, REASONS[arg], f"alert-{arg}-{now}", now, ACTOR)
        elif kind == "release":
            latch = release(latch, arg, now)
        elif kind == "expire":
            latch, change = expire(latch, now, HOLD_DOWN, ACTOR)
        elif kind == "resume":
            latch, change = resume(latch, arg, now, "operator:x")
        else:
            latch, change = operator_pause(latch, arg, now, "operator:x")
        assert original == snapshot  # the input latch is never mutated
        assert_json_state(latch)
        assert latch["paused"] == bool(latch["holds"])
        if change is None:
            assert latch["paused"] == was_paused
        else:
            changes.append(change)
            assert change.paused == latch["paused"] != was_paused
            assert change.before["paused"] == was_paused
            assert change.after == {"paused": latch["paused"], "holds": sorted(latch["holds"])}
            assert latch["since_ms"] == change.since_ms == now
            if change.paused:
                assert change.reason_code in latch["holds"]

    # Changes strictly alternate, starting with a pause.
    assert [c.paused for c in changes] == [n % 2 == 0 for n in range(len(changes))]

    # Past every hold-down, only holds that cannot expire are left.
    now += HOLD_DOWN + 1
    latch, _ = expire(latch, now, HOLD_DOWN, ACTOR)
    assert latch["paused"] == bool(latch["holds"])
    for held in latch["holds"].values():
        assert held["policy"] != AUTO_CLEAR or held["cleared_ms"] is None
