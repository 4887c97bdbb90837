"""Pause latch rows: the pause state last published for a latch is kept with it, and
what a worker re-publishes is exactly that state, for the partitions it owns."""

from __future__ import annotations

from streams.agents.latches import latch_row, states_to_republish
from streams.agents.outputs import pause_state
from streams.control import pauses
from streams.records import PauseState
from streams.tracing import Cause


def _paused(scope: str, now_ms: int) -> tuple[dict, pauses.PauseChange]:
    latch, change = pauses.hold(pauses.new_latch(scope), "RISK_STALE_BOOK", pauses.AUTO_CLEAR,
                                "alert-1", now_ms, "agents.health")
    assert change is not None
    return latch, change


def test_a_change_is_kept_as_the_state_it_published() -> None:
    latch, change = _paused("market:m1", 1_000)
    row = latch_row(2, latch, [change], 1_005, None)
    assert row["partition"] == 2 and row["latch"] == latch
    # what is re-published is what was published: same state id, same times
    assert PauseState.model_validate(row["state"]) == pause_state(change, 1_005)


def test_a_row_without_a_change_keeps_the_state_last_published() -> None:
    latch, change = _paused("market:m1", 1_000)
    first = latch_row(2, latch, [change], 1_000, None)
    released = pauses.release(latch, "RISK_STALE_BOOK", 2_000)
    assert latch_row(2, released, [], 2_000, first)["state"] == first["state"]
    assert "state" not in latch_row(2, pauses.new_latch("market:m2"), [], 2_000, None)


def test_the_last_of_several_changes_is_the_state() -> None:
    latch, paused = _paused("market:m1", 1_000)
    latch = pauses.release(latch, "RISK_STALE_BOOK", 1_000)
    latch, resumed = pauses.expire(latch, 5_000, 1_000, "agents.latches")
    assert resumed is not None and not resumed.paused
    row = latch_row(0, latch, [paused, resumed], 5_000, None)
    assert row["state"]["paused"] is False and row["state"]["state_id"] == resumed.state_id


def test_only_owned_rows_with_a_published_state_are_republished() -> None:
    owned_latch, owned_change = _paused("market:owned", 1_000)
    gone_latch, gone_change = _paused("market:gone", 1_000)
    rows = [
        ("market:owned", latch_row(1, owned_latch, [owned_change], 1_000, None)),
        ("market:gone", latch_row(3, gone_latch, [gone_change], 1_000, None)),
        ("market:never", latch_row(1, pauses.new_latch("market:never"), [], 1_000, None)),
        ("market:deleted", None),
    ]
    states = states_to_republish(rows, owned={0, 1})
    assert [s["scope"] for s in states] == ["market:owned"]
    assert states[0]["state_id"] == owned_change.state_id


def test_a_republished_state_names_the_cause_it_was_published_with() -> None:
    latch, change = _paused("market:m1", 1_000)
    cause = Cause("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7",
                  ("health.events/2@17",))
    row = latch_row(2, latch, [change], 1_005, None, cause)
    state = PauseState.model_validate(row["state"])
    assert state == pause_state(change, 1_005, cause)
    assert (state.trace_id, state.cause_span_id, state.cause_events) == (
        cause.trace_id, cause.span_id, ["health.events/2@17"])
    # re-published unchanged, trace included
    assert states_to_republish([("market:m1", row)], owned={2}) == [row["state"]]
