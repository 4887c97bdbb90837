"""PauseGuard's pure core: the fail-closed checks and the pause hierarchy, fed plain
PauseStates, heartbeat times and offsets (no broker, no clock)."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.avro import AvroCodec, SchemaCatalog
from streams.control.pauses import is_paused
from streams.records import MonitorHeartbeat, PausePolicy, PauseState
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
          since_ms: int = 1_790_000_000_000, updated_ms: int | None = None,
          state_id: str | None = None) -> PauseState:
    return PauseState(scope=scope, paused=paused, reason_code=reason, since_ms=since_ms,
                      cause_id="cmd-1", policy=PausePolicy.MANUAL, actor="operator:alice",
                      updated_ms=since_ms if updated_ms is None else updated_ms,
                      state_id=state_id or f"{scope}-{paused}")


def beat(time_ms: int, received_mono: float, processed: int = 0, lag: int | None = None,
         healthy: bool = True, reason: str | None = None) -> Beat:
    return Beat(time_ms, received_mono, processed, lag, healthy, reason)


def ready_book(*states: PauseState) -> PauseBook:
    book = PauseBook(closed=None)
    book.set_targets({0: (0, len(states)), 1: (0, 0)}, NOW_MONO - 0.5)
    book.consumed(0, len(states))
    book.apply_heartbeat("worker-1", beat(NOW_MS - 500, NOW_MONO - 0.5))
    for state in states:
        book.apply_pause(state.scope, state)
    return book


def verdict(book: PauseBook, scope: str) -> Decision:
    return decide(scope, book, assess(book, NOW_MS, NOW_MONO, LIMIT_S))


def test_a_paused_market_is_denied_with_its_reason_and_others_are_allowed() -> None:
    book = ready_book(pause("market:m7", reason="RISK_STALE_BOOK"))
    denied = verdict(book, "market:m7")
    assert not denied and denied.allowed is False
    assert denied.reason == ("paused: market:m7 (RISK_STALE_BOOK since 2026-09-21T14:13:20Z, "
                             "cause cmd-1)")
    assert denied.covering_scope == "market:m7"
    allowed = verdict(book, "market:m8")
    assert allowed and allowed == Decision(True, "not paused", None)


def test_a_denial_names_the_pause_s_cause_and_trace() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    state = pause("market:m7", reason="RISK_STALE_BOOK").model_copy(update={
        "cause_id": "alert-9", "trace_id": trace, "cause_span_id": "00f067aa0ba902b7",
        "cause_events": ["health.events/3@41"]})
    denied = verdict(ready_book(state), "bot:b1/market:m7")
    assert (denied.cause_id, denied.reason_code, denied.trace_id, denied.cause_events) == (
        "alert-9", "RISK_STALE_BOOK", trace, ("health.events/3@41",))
    assert str(denied) == denied.reason
    assert denied.reason.endswith(f"cause alert-9, trace {trace}, input health.events/3@41)")
    # a pause state written before traces existed still denies, naming its cause id
    old = verdict(ready_book(pause("market:m7")), "market:m7")
    assert old.trace_id is None and old.reason.endswith("cause cmd-1)")


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
    later = NOW_MS + 1_000
    assert book.apply_pause("market:m7", pause("market:m7", paused=False, reason=None,
                                               updated_ms=later))
    assert verdict(book, "market:m7")
    assert book.apply_pause("market:m7", pause("market:m7", updated_ms=later + 1))
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
    book.set_targets({0: (0, 3), 1: (0, 0), 2: (4, 9), 3: (7, 7)}, NOW_MONO)
    status = assess(book, NOW_MS, NOW_MONO, LIMIT_S)
    assert status.state is GuardState.CATCHING_UP
    assert status.reason == "not caught up with control.pauses (partitions 0, 2 behind)"
    book.consumed(0, 3)
    book.consumed(2, 8)
    assert "partitions 2 behind" in verdict(book, "market:m8").reason
    book.consumed(2, 9)  # empty (1) and fully deleted (3) partitions need no reading
    assert verdict(book, "market:m8")
    book.set_targets({0: (0, 5), 1: (0, 0), 2: (4, 9), 3: (7, 7)}, NOW_MONO)  # new ends
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
    book.apply_heartbeat("worker-1", beat(NOW_MS - 7_200, NOW_MONO - 7.2))
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
    beats = {"w1": beat(NOW_MS - 60_000, NOW_MONO)}
    assert heartbeat_age_s(beats, NOW_MS, NOW_MONO) == pytest.approx(60.0)


def test_heartbeat_age_does_not_trust_a_worker_clock_running_ahead() -> None:
    # The worker's clock is 10 min ahead: its stamp looks fresh forever; receipt does not.
    beats = {"w1": beat(NOW_MS + 600_000, NOW_MONO - 8.0)}
    assert heartbeat_age_s(beats, NOW_MS, NOW_MONO) == pytest.approx(8.0)


def test_the_freshest_worker_counts_and_a_tombstone_removes_a_worker() -> None:
    book = PauseBook()
    book.apply_heartbeat("old", beat(NOW_MS - 30_000, NOW_MONO - 30.0))
    book.apply_heartbeat("new", beat(NOW_MS - 1_000, NOW_MONO - 1.0))
    assert heartbeat_age_s(book.heartbeats, NOW_MS, NOW_MONO) == pytest.approx(1.0)
    book.apply_heartbeat("new", beat(NOW_MS - 20_000, NOW_MONO))  # older than known: ignored
    assert heartbeat_age_s(book.heartbeats, NOW_MS, NOW_MONO) == pytest.approx(1.0)
    book.apply_heartbeat("new", None)
    assert heartbeat_age_s(book.heartbeats, NOW_MS, NOW_MONO) == pytest.approx(30.0)
    book.apply_heartbeat("old", None)
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


# -- what a control.pauses record may change ---------------------------------------------


def test_a_record_whose_key_is_not_its_scope_is_ignored_and_counted() -> None:
    book = ready_book(pause("global"))
    # a resume of global filed under another key must not unpause everything
    forged = pause("global", paused=False, reason=None, updated_ms=NOW_MS + 5_000)
    assert not book.apply_pause("market:m1", forged)
    assert not book.apply_pause("global/x", pause("market:m2"))
    assert book.misplaced == 2
    assert verdict(book, "market:m1").covering_scope == "global"
    assert "market:m1" not in book.pauses
    status = assess(book, NOW_MS, NOW_MONO, LIMIT_S)
    assert status.misplaced == 2


def test_the_newest_state_per_scope_wins_whatever_the_arrival_order() -> None:
    t = NOW_MS
    states = [pause("market:m7", paused=True, updated_ms=t, state_id="a"),
              pause("market:m7", paused=False, reason=None, updated_ms=t + 10, state_id="b"),
              pause("market:m7", paused=True, updated_ms=t + 20, state_id="c"),
              pause("market:m7", paused=False, reason=None, updated_ms=t + 20, state_id="d")]
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]):
        book = ready_book()
        for i in order:
            book.apply_pause("market:m7", states[i])
        # newest by (updated_ms, state id): t+20 "d" beats t+20 "c"
        assert book.pauses["market:m7"].state_id == "d", order
        assert verdict(book, "market:m7"), order


def test_an_older_record_after_a_tombstone_does_not_come_back() -> None:
    book = ready_book(pause("market:m7", updated_ms=NOW_MS + 10, state_id="new"))
    assert book.apply_pause("market:m7", None)
    assert not book.apply_pause("market:m7", pause("market:m7", updated_ms=NOW_MS,
                                                   state_id="old"))
    assert verdict(book, "market:m7")
    assert book.apply_pause("market:m7", pause("market:m7", updated_ms=NOW_MS + 11,
                                               state_id="newer"))
    assert not verdict(book, "market:m7")


# -- partitions and end offsets ------------------------------------------------------------


def test_a_partition_without_a_leader_or_with_an_error_is_not_ready_and_named() -> None:
    book = ready_book()
    book.unavailable = {2: "no leader", 0: "end offset not read: timed out"}
    status = assess(book, NOW_MS, NOW_MONO, LIMIT_S)
    assert status.state is GuardState.PARTITION_UNAVAILABLE and not status
    assert status.reason == ("control.pauses unavailable (partition 0: end offset not read: "
                             "timed out; partition 2: no leader)")
    assert verdict(book, "market:m8").reason == status.reason
    book.unavailable = {}
    assert verdict(book, "market:m8")


def test_end_offsets_older_than_the_bound_are_not_trusted() -> None:
    book = ready_book()
    book.set_targets({0: (0, 0), 1: (0, 0)}, NOW_MONO - LIMIT_S - 0.1)
    status = assess(book, NOW_MS, NOW_MONO, LIMIT_S)
    assert status.state is GuardState.CATCHING_UP
    assert status.reason == ("not caught up with control.pauses (end offsets read 5.1s ago, "
                             "limit 5s)")
    # a refresh: new end offsets, read now; the guard must read up to them again
    book.set_targets({0: (0, 4), 1: (0, 0)}, NOW_MONO)
    assert "partitions 0 behind" in assess(book, NOW_MS, NOW_MONO, LIMIT_S).reason
    book.consumed(0, 4)
    assert assess(book, NOW_MS, NOW_MONO, LIMIT_S)


def test_an_added_partition_must_be_read_before_ready() -> None:
    book = ready_book()
    book.set_targets({0: (0, 0), 1: (0, 0), 2: (0, 3)}, NOW_MONO)  # partition 2 added
    status = assess(book, NOW_MS, NOW_MONO, LIMIT_S)
    assert status.reason == "not caught up with control.pauses (partitions 2 behind)"
    book.consumed(2, 3)
    assert assess(book, NOW_MS, NOW_MONO, LIMIT_S)


# -- a worker that beats but makes no progress -----------------------------------------------


def test_a_worker_whose_lag_stands_without_progress_fails_the_guard_closed() -> None:
    def at(mono: float, processed: int, lag: int) -> Beat:  # a beat sent and received then
        return beat(NOW_MS + int((mono - NOW_MONO) * 1000), mono, processed, lag)

    book = ready_book()
    book.heartbeats.clear()
    for t, lag in ((0.0, 0), (1.0, 7), (4.0, 9)):
        book.apply_heartbeat("w1", at(NOW_MONO + t, 100, lag))
    # lag standing, without progress, since the last beat without lag (t=0)
    status = assess(book, NOW_MS + 4_500, NOW_MONO + 4.5, LIMIT_S)
    assert status, status.reason
    book.apply_heartbeat("w1", at(NOW_MONO + 6.0, 100, 12))
    book.targets_mono = NOW_MONO + 6.0  # end offsets read again meanwhile
    status = assess(book, NOW_MS + 6_100, NOW_MONO + 6.1, LIMIT_S)
    assert status.state is GuardState.HEARTBEAT_STALE
    assert status.heartbeat_age_s == pytest.approx(0.1)  # it beats: only progress is missing
    assert status.reason == ("polymon worker w1 made no progress for 6.1s with input lag 12 "
                             "(limit 5s)")
    # progress again: trusted again
    book.apply_heartbeat("w1", at(NOW_MONO + 6.5, 130, 3))
    assert assess(book, NOW_MS + 6_600, NOW_MONO + 6.6, LIMIT_S)


def test_input_taken_but_dead_lettered_is_progress() -> None:
    book = ready_book()
    book.heartbeats.clear()
    for i in range(10):  # garbage: events_processed stands, the input offsets move on
        book.apply_heartbeat("w1", Beat(NOW_MS - 10_000 + i * 1000, NOW_MONO - 10 + i,
                                        events_processed=5, input_lag=800,
                                        input_offset_sum=1000 + 100 * i))
    assert assess(book, NOW_MS, NOW_MONO, LIMIT_S)
    for i in range(10, 17):  # and now they stand too
        book.apply_heartbeat("w1", Beat(NOW_MS - 10_000 + i * 1000, NOW_MONO - 10 + i,
                                        events_processed=5, input_lag=800,
                                        input_offset_sum=1900))
    book.targets_mono = NOW_MONO + 6.0  # end offsets read again meanwhile
    status = assess(book, NOW_MS + 7_000, NOW_MONO + 7.0, LIMIT_S)
    assert status.state is GuardState.HEARTBEAT_STALE and "made no progress" in status.reason


def test_lag_that_is_worked_off_is_progress() -> None:
    book = ready_book()
    book.heartbeats.clear()
    for i in range(10):  # lag throughout, but processing moves on
        book.apply_heartbeat("w1", beat(NOW_MS - 10_000 + i * 1000, NOW_MONO - 10 + i,
                                        processed=1000 * i, lag=5000))
    assert assess(book, NOW_MS, NOW_MONO, LIMIT_S)


def test_a_worker_reporting_itself_unhealthy_fails_the_guard_closed_while_it_beats() -> None:
    book = ready_book()
    book.apply_heartbeat("w2", beat(NOW_MS - 200, NOW_MONO - 0.2, healthy=False,
                                    reason="input stuck: no progress on health.events[1]"))
    status = assess(book, NOW_MS, NOW_MONO, LIMIT_S)
    assert status.state is GuardState.HEARTBEAT_STALE
    assert status.reason == ("polymon worker w2 unhealthy: input stuck: no progress on "
                             "health.events[1]")
    # a worker that stopped (its last beat old) no longer counts: its partitions move on
    book.heartbeats["w2"] = beat(NOW_MS - 9_000, NOW_MONO - 9.0, healthy=False)
    assert assess(book, NOW_MS, NOW_MONO, LIMIT_S)


def test_old_heartbeats_without_progress_fields_are_trusted_on_age_alone() -> None:
    book = ready_book()
    book.heartbeats.clear()
    book.apply_heartbeat("w1", beat(NOW_MS - 9_000, NOW_MONO - 9.0))  # lag unknown (None)
    book.apply_heartbeat("w1", beat(NOW_MS - 100, NOW_MONO - 0.1))
    assert assess(book, NOW_MS, NOW_MONO, LIMIT_S)


# -- the heartbeat's schema, old and new -------------------------------------------------------

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
OLD_HEARTBEAT = json.loads((SCHEMAS / "history" / "MonitorHeartbeat.10.avsc").read_text())
NEW_HEARTBEAT = json.loads((SCHEMAS / "MonitorHeartbeat.avsc").read_text())
OLD_DATUM = {"worker_id": "w1", "time_ms": NOW_MS, "started_ms": NOW_MS - 1000,
             "version": "0.1.0", "events_processed": 12}


def _write(schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), datum)
    return buffer.getvalue()


def _read(body: bytes, writer: dict[str, Any], reader: dict[str, Any]) -> dict[str, Any]:
    return fastavro.schemaless_reader(io.BytesIO(body), fastavro.parse_schema(writer),
                                      fastavro.parse_schema(reader))


def test_an_old_heartbeat_reads_with_the_new_schema_as_no_progress_reported() -> None:
    datum = _read(_write(OLD_HEARTBEAT, OLD_DATUM), OLD_HEARTBEAT, NEW_HEARTBEAT)
    assert datum == {**OLD_DATUM, "input_partitions": None, "input_lag": None,
                     "input_offset_sum": None, "healthy": True, "unhealthy_reason": None}


def test_a_new_heartbeat_reads_with_the_old_schema() -> None:
    new = {**OLD_DATUM, "input_partitions": 4, "input_lag": 17, "input_offset_sum": 9000,
           "healthy": False, "unhealthy_reason": "input stuck"}
    assert _read(_write(NEW_HEARTBEAT, new), NEW_HEARTBEAT, OLD_HEARTBEAT) == OLD_DATUM


def test_frames_of_the_old_heartbeat_schema_id_still_decode() -> None:
    catalog = SchemaCatalog()
    codec = AvroCodec(catalog["MonitorHeartbeat"], catalog)
    assert codec.entry.schema_id != 10, "a changed schema gets a new id"
    assert catalog.by_id(10) is not None and catalog.by_id(10).definition == OLD_HEARTBEAT
    old_frame = struct.pack(">bI", 0, 10) + _write(OLD_HEARTBEAT, OLD_DATUM)
    record = codec.decode_record(old_frame)
    assert isinstance(record, MonitorHeartbeat)
    assert (record.events_processed, record.input_lag, record.healthy) == (12, None, True)
    new = MonitorHeartbeat(**OLD_DATUM, input_partitions=4, input_lag=17, healthy=False,
                           unhealthy_reason="input stuck")
    assert codec.decode_record(codec.encode_record(new)) == new
    # history ids are never reused by a current schema
    current = {catalog[name].schema_id for name in catalog.names()}
    assert 10 not in current
