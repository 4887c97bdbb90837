"""Health of a scope: staleness, sequence gaps, heartbeats and SLO burn → alert
transitions. State is a plain dict that must survive a JSON round trip (Faust tables)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.control import health
from streams.control.alerts import AlertTransition
from streams.maths.slo import DEFAULT_BURN_RULES, BurnRule
from streams.reason_codes import reason
from streams.records import AlertStatus, HealthEventKind

SCOPE = "bot:b1/market:m7"
T0 = 1_790_000_000_000  # a multiple of the 1 s SLO bucket
THRESHOLDS_S = {"book": 2.0, "registry": 10.0, "model": 60.0}
MISS_FACTOR = 3.0


def threshold(scope: str, feed: str) -> float:
    return THRESHOLDS_S.get(feed, 5.0)


def json_round_trip(state: dict[str, Any]) -> dict[str, Any]:
    restored = json.loads(json.dumps(state))
    assert restored == state
    return restored


def stale_state(feed: str = "book", last_ms: int = T0) -> dict[str, Any]:
    state = health.new_scope_state(3)
    assert health.observe_update(state, SCOPE, feed, last_ms, None) == []
    return state


# --- staleness --------------------------------------------------------------------------


def test_seed_example_stale_book_fires() -> None:
    state = stale_state()
    [transition] = health.evaluate(state, SCOPE, T0 + 4_600, threshold, MISS_FACTOR)
    assert transition.status is AlertStatus.FIRING
    condition = transition.condition
    assert condition.reason_code == "RISK_STALE_BOOK"
    assert condition.firing is True
    assert condition.scope == SCOPE
    assert condition.subject == "book"
    assert condition.metric == "staleness_s"
    assert condition.value == 4.6
    assert condition.threshold == 2.0
    assert condition.event_time_ms == T0
    assert "book" in condition.message and "4.600s" in condition.message
    assert transition.fired_alert_id == transition.alert_id
    assert state["feeds"]["book"]["alert"]["alert_id"] == transition.alert_id


def test_exactly_at_the_threshold_is_not_stale() -> None:
    state = stale_state()
    assert health.evaluate(state, SCOPE, T0 + 2_000, threshold, MISS_FACTOR) == []
    [transition] = health.evaluate(state, SCOPE, T0 + 2_001, threshold, MISS_FACTOR)
    assert transition.status is AlertStatus.FIRING


@settings(max_examples=200, deadline=None)
@given(last_ms=st.integers(1_500_000_000_000, 2_500_000_000_000),
       threshold_ms=st.integers(1, 3_600_000))
def test_the_threshold_is_exact_for_any_epoch_time(last_ms: int, threshold_ms: int) -> None:
    """Strictly greater, to the millisecond, whatever the epoch time and threshold."""
    state = health.new_scope_state(0)
    health.observe_update(state, SCOPE, "book", last_ms, None)

    def fn(scope: str, feed: str) -> float:
        return threshold_ms / 1000

    assert health.evaluate(state, SCOPE, last_ms + threshold_ms, fn, MISS_FACTOR) == []
    [fired] = health.evaluate(state, SCOPE, last_ms + threshold_ms + 1, fn, MISS_FACTOR)
    assert fired.status is AlertStatus.FIRING


def test_a_fresh_update_resolves_the_stale_alert() -> None:
    state = stale_state()
    [fired] = health.evaluate(state, SCOPE, T0 + 4_600, threshold, MISS_FACTOR)
    health.observe_update(state, SCOPE, "book", T0 + 5_000, None)
    [resolved] = health.evaluate(state, SCOPE, T0 + 5_100, threshold, MISS_FACTOR)
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.fired_alert_id == fired.alert_id
    assert resolved.alert_id != fired.alert_id
    assert resolved.condition.reason_code == "RISK_STALE_BOOK"
    assert state["feeds"]["book"]["alert"] is None
    assert health.evaluate(state, SCOPE, T0 + 5_200, threshold, MISS_FACTOR) == []


def test_repeated_evaluation_while_stale_does_not_duplicate() -> None:
    state = stale_state()
    transitions = []
    for now in range(T0 + 2_500, T0 + 60_000, 500):
        transitions += health.evaluate(state, SCOPE, now, threshold, MISS_FACTOR)
    assert [t.status for t in transitions] == [AlertStatus.FIRING]


def test_a_late_older_update_does_not_refresh_the_feed() -> None:
    state = stale_state()
    health.observe_update(state, SCOPE, "book", T0 - 10_000, None)
    assert state["feeds"]["book"]["last_event_ms"] == T0
    assert health.evaluate(state, SCOPE, T0 + 2_000, threshold, MISS_FACTOR) == []


def test_stale_alert_ids_are_deterministic() -> None:
    ids = []
    for _ in range(2):
        state = stale_state()
        [fired] = health.evaluate(state, SCOPE, T0 + 4_600, threshold, MISS_FACTOR)
        ids.append(fired.alert_id)
    state = stale_state()
    [later] = health.evaluate(state, SCOPE, T0 + 9_999, threshold, MISS_FACTOR)
    assert ids[0] == ids[1] == later.alert_id  # same cause: the same last update
    other = stale_state(last_ms=T0 + 1)
    [fired] = health.evaluate(other, SCOPE, T0 + 4_600, threshold, MISS_FACTOR)
    assert fired.alert_id != ids[0]


@pytest.mark.parametrize(("feed", "code", "limit_s"), [
    ("book", "RISK_STALE_BOOK", 2.0),
    ("registry", "RISK_STALE_REGISTRY", 10.0),
    ("model", "RISK_STALE_MODEL", 60.0),
    ("trades", "RISK_STALE_DATA", 5.0),
])
def test_each_feed_kind_has_its_reason_code(feed: str, code: str, limit_s: float) -> None:
    assert health.stale_reason(feed) == code
    assert reason(code).pauses is True
    state = stale_state(feed)
    limit_ms = int(limit_s * 1000)
    assert health.evaluate(state, SCOPE, T0 + limit_ms, threshold, MISS_FACTOR) == []
    [fired] = health.evaluate(state, SCOPE, T0 + limit_ms + 1, threshold, MISS_FACTOR)
    assert fired.condition.reason_code == code
    assert fired.condition.subject == feed
    assert fired.condition.threshold == limit_s


def test_the_threshold_function_gets_scope_and_feed() -> None:
    calls: list[tuple[str, str]] = []

    def recording(scope: str, feed: str) -> float:
        calls.append((scope, feed))
        return 2.0

    state = health.new_scope_state(0)
    health.observe_update(state, SCOPE, "book", T0, None)
    health.observe_update(state, SCOPE, "registry", T0, None)
    health.evaluate(state, SCOPE, T0 + 1, recording, MISS_FACTOR)
    assert sorted(calls) == [(SCOPE, "book"), (SCOPE, "registry")]


def test_feeds_are_tracked_independently() -> None:
    state = health.new_scope_state(0)
    health.observe_update(state, SCOPE, "book", T0, None)
    health.observe_update(state, SCOPE, "registry", T0, None)
    [book] = health.evaluate(state, SCOPE, T0 + 5_000, threshold, MISS_FACTOR)
    assert book.condition.subject == "book"
    [registry] = health.evaluate(state, SCOPE, T0 + 10_001, threshold, MISS_FACTOR)
    assert registry.condition.subject == "registry"
    assert registry.alert_id != book.alert_id


# --- sequence gaps ------------------------------------------------------------------------


def observe_sequences(state: dict[str, Any], numbers: list[int],
                      restore: bool = False) -> list[AlertTransition]:
    transitions = []
    for n in numbers:
        transitions += health.observe_update(state, SCOPE, "book", T0 + n, n)
        if restore:
            state = json_round_trip(state)
    return transitions


def test_a_jump_in_sequence_fires_one_gap_alert() -> None:
    state = health.new_scope_state(0)
    assert observe_sequences(state, list(range(1, 11))) == []
    [gap] = health.observe_update(state, SCOPE, "book", T0 + 15, 15)
    assert gap.status is AlertStatus.FIRING
    condition = gap.condition
    assert condition.reason_code == "GOV_DATA_GAP"
    assert condition.subject == "book"
    assert condition.value == 4.0
    assert condition.metric == "missing_sequence_numbers"
    assert condition.cause == "10->15"
    assert "4 sequence numbers missing between 10 and 15" in condition.message
    assert gap.fired_alert_id == gap.alert_id
    assert reason("GOV_DATA_GAP").pauses is False
    assert state["feeds"]["book"]["gaps"]["outstanding"] == [11, 12, 13, 14]


def test_duplicates_and_reorders_raise_no_new_gap_alert() -> None:
    state = health.new_scope_state(0)
    [first] = observe_sequences(state, [*range(1, 11), 15])
    assert observe_sequences(state, [15, 12, 7, 12]) == []
    entry = state["feeds"]["book"]
    gaps = entry["gaps"]
    assert gaps["reorders"] == 1  # 12 arrived late
    assert gaps["duplicates"] == 3  # 15, 7 and 12 again
    assert gaps["outstanding"] == [11, 13, 14]
    assert entry["highest"] == 15 and entry["count"] == 15
    assert health.gap_counts(entry) == {"highest": 15, "count": 15, "missing": 3,
                                        "duplicates": 3, "reorders": 1}
    # The same gap-causing number delivered again does not alert a second time.
    assert health.observe_update(state, SCOPE, "book", T0 + 15, 15) == []
    # A new gap does, with its own id.
    [second] = health.observe_update(state, SCOPE, "book", T0 + 20, 20)
    assert second.condition.value == 4.0
    assert second.alert_id != first.alert_id


def test_gap_ids_are_deterministic() -> None:
    ids = []
    for _ in range(2):
        state = health.new_scope_state(0)
        [gap] = observe_sequences(state, [1, 2, 5])
        ids.append(gap.alert_id)
    assert ids[0] == ids[1]


def test_updates_without_sequence_numbers_track_no_gaps() -> None:
    state = health.new_scope_state(0)
    assert health.observe_update(state, SCOPE, "book", T0, None) == []
    assert state["feeds"]["book"]["gaps"] is None


def test_gap_tracker_state_restores_after_a_json_round_trip() -> None:
    numbers = [1, 2, 3, 10, 20, 5, 15, 5, 30, 4, 21, 2]
    plain = health.new_scope_state(0)
    expected = observe_sequences(plain, numbers)
    restored = health.new_scope_state(0)
    actual = observe_sequences(restored, numbers, restore=True)
    assert actual == expected
    assert [t.condition.cause for t in actual] == ["3->10", "10->20", "20->30"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 60), max_size=40))
def test_gap_alerts_are_the_same_with_or_without_json_round_trips(numbers: list[int]) -> None:
    plain = health.new_scope_state(0)
    expected = observe_sequences(plain, numbers)
    restored = health.new_scope_state(0)
    assert observe_sequences(restored, numbers, restore=True) == expected
    # One alert per jump past the highest number seen, never for a late or repeated one.
    jumps, highest = 0, None
    for n in numbers:
        if highest is not None and n > highest + 1:
            jumps += 1
        highest = n if highest is None else max(highest, n)
    assert len(expected) == jumps


# --- heartbeats ---------------------------------------------------------------------------


def test_heartbeat_missed_strictly_after_interval_times_factor() -> None:
    state = health.new_scope_state(0)
    health.observe_heartbeat(state, T0, 1_000)
    assert health.evaluate(state, SCOPE, T0 + 3_000, threshold, 3.0) == []
    [missed] = health.evaluate(state, SCOPE, T0 + 3_001, threshold, 3.0)
    assert missed.status is AlertStatus.FIRING
    condition = missed.condition
    assert condition.reason_code == "GOV_HEARTBEAT_MISSED"
    assert condition.subject == "heartbeat"
    assert condition.threshold == 3.0
    assert condition.value == 3.001
    assert condition.scope == SCOPE
    # Still missed: no duplicate.
    assert health.evaluate(state, SCOPE, T0 + 10_000, threshold, 3.0) == []

    health.observe_heartbeat(state, T0 + 10_500, 1_000)
    [resolved] = health.evaluate(state, SCOPE, T0 + 10_600, threshold, 3.0)
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.fired_alert_id == missed.alert_id
    assert state["heartbeat"]["alert"] is None


@settings(max_examples=200, deadline=None)
@given(last_ms=st.integers(1_500_000_000_000, 2_500_000_000_000),
       interval_ms=st.integers(1, 600_000), factor=st.sampled_from([1.5, 2.0, 3.0, 4.0]))
def test_the_heartbeat_limit_is_exact_for_any_epoch_time(last_ms: int, interval_ms: int,
                                                         factor: float) -> None:
    limit_ms = int(interval_ms * factor)
    if limit_ms != interval_ms * factor:
        limit_ms += 1  # the first whole millisecond not beyond the limit is below it
    state = health.new_scope_state(0)
    health.observe_heartbeat(state, last_ms, interval_ms)
    assert health.evaluate(state, SCOPE, last_ms + limit_ms - 1, threshold, factor) == []
    if limit_ms == interval_ms * factor:
        assert health.evaluate(state, SCOPE, last_ms + limit_ms, threshold, factor) == []
    [missed] = health.evaluate(state, SCOPE, last_ms + limit_ms + 1, threshold, factor)
    assert missed.condition.reason_code == "GOV_HEARTBEAT_MISSED"


def test_heartbeat_interval_follows_the_latest_heartbeat() -> None:
    state = health.new_scope_state(0)
    health.observe_heartbeat(state, T0, 1_000)
    health.observe_heartbeat(state, T0 - 500, 5_000)  # late, but carries a new interval
    assert state["heartbeat"]["last_event_ms"] == T0
    assert health.evaluate(state, SCOPE, T0 + 15_000, threshold, 3.0) == []
    assert len(health.evaluate(state, SCOPE, T0 + 15_001, threshold, 3.0)) == 1


def test_no_heartbeat_seen_means_no_heartbeat_alert() -> None:
    state = health.new_scope_state(0)
    assert health.evaluate(state, SCOPE, T0 + 10**9, threshold, 3.0) == []


def test_scope_state_keeps_working_after_json_round_trips() -> None:
    def run(restore: bool) -> list[AlertTransition]:
        state = health.new_scope_state(1)
        steps: list[Callable[[dict[str, Any]], list[AlertTransition]]] = [
            lambda s: health.observe_update(s, SCOPE, "book", T0, 1),
            lambda s: (health.observe_heartbeat(s, T0, 1_000), [])[1],
            lambda s: health.observe_update(s, SCOPE, "book", T0 + 100, 4),
            lambda s: health.evaluate(s, SCOPE, T0 + 3_500, threshold, 3.0),
            lambda s: health.evaluate(s, SCOPE, T0 + 4_000, threshold, 3.0),
            lambda s: health.observe_update(s, SCOPE, "book", T0 + 4_100, 3),
            lambda s: (health.observe_heartbeat(s, T0 + 4_200, 1_000), [])[1],
            lambda s: health.evaluate(s, SCOPE, T0 + 4_300, threshold, 3.0),
        ]
        transitions = []
        for step in steps:
            transitions += step(state)
            if restore:
                state = json_round_trip(state)
        return transitions

    expected = run(restore=False)
    assert run(restore=True) == expected
    assert [(t.condition.reason_code, t.status) for t in expected] == [
        ("GOV_DATA_GAP", AlertStatus.FIRING),
        ("RISK_STALE_BOOK", AlertStatus.FIRING),
        ("GOV_HEARTBEAT_MISSED", AlertStatus.FIRING),
        ("RISK_STALE_BOOK", AlertStatus.RESOLVED),
        ("GOV_HEARTBEAT_MISSED", AlertStatus.RESOLVED),
    ]


# --- SLO burn -----------------------------------------------------------------------------

FAST = BurnRule(name="fast", long_window_s=10, short_window_s=2, burn_rate_threshold=2.0,
                severity="page")
TARGET = 0.9
MIN_EVENTS = 5
BUCKET_MS = 1_000


def slo_state() -> dict[str, Any]:
    return health.new_slo_state(2, SCOPE, "fill-latency", "team-exec")


def probe(state: dict[str, Any], time_ms: int, healthy: bool,
          now_ms: int | None = None) -> list[AlertTransition]:
    return health.observe_probe(state, time_ms, healthy, time_ms if now_ms is None else now_ms,
                                TARGET, [FAST], MIN_EVENTS, BUCKET_MS)


def healthy_baseline(state: dict[str, Any]) -> list[AlertTransition]:
    """20 healthy probes, two a second over T0 .. T0+9.5s."""
    transitions = []
    for n in range(20):
        transitions += probe(state, T0 + n * 500, True)
    return transitions


def test_all_healthy_probes_fire_nothing() -> None:
    state = slo_state()
    assert healthy_baseline(state) == []
    assert state["alert"] is None


def test_burning_both_windows_fires_once_then_recovers() -> None:
    state = slo_state()
    healthy_baseline(state)
    # Failures from T0+10s: the long window (10 s, 20 healthy before) reaches 2x burn
    # (error ratio 0.2 against a 0.1 budget) at the fifth failure.
    transitions = []
    for n in range(8):
        step = probe(state, T0 + 10_000 + n * 100, False)
        assert (step != []) == (n == 4), n
        transitions += step
    [fired] = transitions
    assert fired.status is AlertStatus.FIRING
    condition = fired.condition
    assert condition.reason_code == "GOV_SLO_BURN"
    assert condition.scope == SCOPE
    assert condition.subject == "fill-latency"
    assert condition.metric == "burn_rate"
    assert condition.window_s == 10.0
    assert condition.threshold == 2.0
    assert condition.value == pytest.approx(2.0)
    assert "team-exec" in condition.message
    assert "20/25 healthy over 10s" in condition.message
    assert "rule fast" in condition.message

    # Healthy probes again: once the failures leave the 2 s short window, it resolves.
    transitions = []
    times = list(range(T0 + 11_000, T0 + 15_000, 250))
    for time_ms in times:
        transitions += probe(state, time_ms, True)
    [resolved] = transitions
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.fired_alert_id == fired.alert_id
    assert resolved.condition.firing is False
    assert state["alert"] is None


def test_slo_alert_ids_are_deterministic() -> None:
    ids = []
    for _ in range(2):
        state = slo_state()
        healthy_baseline(state)
        transitions = []
        for n in range(5):
            transitions += probe(state, T0 + 10_000 + n * 100, False)
        [fired] = transitions
        ids.append(fired.alert_id)
    assert ids[0] == ids[1]


def test_low_traffic_never_fires() -> None:
    state = slo_state()
    transitions = []
    for n in range(MIN_EVENTS - 1):
        transitions += probe(state, T0 + n * 100, False)  # 100 % errors, 10x burn
    assert transitions == []
    assert state["alert"] is None
    [fired] = probe(state, T0 + 500, False)  # the min_events-th probe
    assert fired.status is AlertStatus.FIRING


def test_a_short_blip_alone_does_not_fire() -> None:
    """Only the short window burns: the long window keeps a blip from paging."""
    state = slo_state()
    for n in range(60):
        probe(state, T0 + n * 150, True)  # ~6.7 probes a second over 9 s
    transitions = []
    for n in range(5):
        transitions += probe(state, T0 + 9_000 + n * 100, False)
    assert transitions == []


def test_old_buckets_are_pruned() -> None:
    state = slo_state()
    for n in range(0, 1_000_000, 1_000):
        probe(state, T0 + n, True)
    assert len(state["counts"]["fine"]) <= 362
    assert len(state["counts"]["coarse"]) <= 3


def test_slo_state_keeps_working_after_json_round_trips() -> None:
    def run(restore: bool) -> list[AlertTransition]:
        state = slo_state()
        transitions = []
        events = [(T0 + n * 500, True) for n in range(20)]
        events += [(T0 + 10_000 + n * 100, False) for n in range(6)]
        events += [(t, True) for t in range(T0 + 11_000, T0 + 15_000, 250)]
        for time_ms, ok in events:
            transitions += probe(state, time_ms, ok)
            if restore:
                state = json_round_trip(state)
        return transitions

    expected = run(restore=False)
    assert [t.status for t in expected] == [AlertStatus.FIRING, AlertStatus.RESOLVED]
    assert run(restore=True) == expected


# --- the next time a silent scope can change ----------------------------------------------


def test_next_change_is_when_the_first_quiet_feed_or_the_heartbeat_turns_stale() -> None:
    state = stale_state("registry", T0)  # due at T0 + 10 s
    health.observe_update(state, SCOPE, "book", T0 + 1_000, None)  # due at T0 + 3 s
    assert health.next_change_ms(state, SCOPE, threshold, MISS_FACTOR) == T0 + 3_000
    health.observe_heartbeat(state, T0, 500)  # missed after 3 x 0.5 s
    assert health.next_change_ms(state, SCOPE, threshold, MISS_FACTOR) == T0 + 1_500


def test_evaluate_changes_nothing_before_the_next_change() -> None:
    state = stale_state("book", T0)
    due = health.next_change_ms(state, SCOPE, threshold, MISS_FACTOR)
    assert due is not None
    assert health.evaluate(state, SCOPE, int(due), threshold, MISS_FACTOR) == []
    assert health.evaluate(state, SCOPE, int(due) + 1, threshold, MISS_FACTOR) != []


def test_an_alerting_feed_waits_for_an_event_not_the_clock() -> None:
    state = stale_state("book", T0)
    health.evaluate(state, SCOPE, T0 + 5_000, threshold, MISS_FACTOR)  # fires
    assert health.next_change_ms(state, SCOPE, threshold, MISS_FACTOR) is None
    assert health.next_change_ms(health.new_scope_state(0), SCOPE, threshold,
                                 MISS_FACTOR) is None


def test_evaluation_is_due_only_when_it_can_publish() -> None:
    state = stale_state("book", T0)
    assert health.evaluation_due(state, SCOPE, T0 + 1_000, threshold, MISS_FACTOR) == (
        False, T0 + 2_000)
    assert health.evaluation_due(state, SCOPE, T0 + 2_000, threshold, MISS_FACTOR)[0]
    health.evaluate(state, SCOPE, T0 + 5_000, threshold, MISS_FACTOR)  # fires
    health.observe_update(state, SCOPE, "book", T0 + 5_000, None)  # fresh: may resolve
    assert health.evaluation_due(state, SCOPE, T0 + 5_000, threshold, MISS_FACTOR) == (
        True, None)  # alerting: nothing else can fire before the next event
    [resolved] = health.evaluate(state, SCOPE, T0 + 5_000, threshold, MISS_FACTOR)
    assert resolved.status is AlertStatus.RESOLVED
    assert not health.evaluation_due(state, SCOPE, T0 + 5_000, threshold, MISS_FACTOR)[0]


def test_an_alerting_heartbeat_is_due_for_evaluation_and_a_quiet_feed_still_counts() -> None:
    state = stale_state("book", T0)
    health.observe_heartbeat(state, T0, 1_000)
    health.evaluate(state, SCOPE, T0 + 1_500 + 3_000, threshold, MISS_FACTOR)  # both fire
    health.observe_update(state, SCOPE, "registry", T0 + 4_000, None)  # quiet, due at +14 s
    assert health.next_change(state, SCOPE, threshold, MISS_FACTOR) == (T0 + 14_000, True)


def test_the_summary_counts_events_and_keeps_the_latest_event_time() -> None:
    state = health.new_scope_state(0)
    health.note_event(state, "DATA_UPDATE", "e1", T0 + 500, 7, "feeder")
    health.note_event(state, "HEARTBEAT", "e2", T0, None, "bot")  # late: time stays
    state = json_round_trip(state)
    assert health.summary(state) == {"events": 2, "last_kind": "HEARTBEAT",
                                     "last_event_id": "e2", "last_event_time_ms": T0 + 500,
                                     "last_sequence": None, "source": "bot"}


def test_a_scope_without_events_has_no_summary() -> None:
    assert health.summary(health.new_scope_state(0)) is None


def nested_layout_state() -> dict[str, Any]:
    """A state as versions before the flat layout kept it (and their changelogs hold)."""
    return {"partition": 2, "heartbeat": None, "summary": {
        "events": 12, "last_kind": "DATA_UPDATE", "last_event_id": "e12",
        "last_event_time_ms": T0, "last_sequence": 12, "source": "feeder"},
        "feeds": {"book": {"last_event_ms": T0, "alert": None, "gaps": {
            "max_outstanding": 1000, "lowest": 1, "highest": 12, "count": 11,
            "duplicates": 0, "reorders": 0, "expired": 0, "lost": 0, "outstanding": [7],
            "forgotten_up_to": None}},
            "registry": {"last_event_ms": T0, "alert": None, "gaps": None}}}


def test_a_state_in_the_nested_layout_is_upgraded_and_carries_on() -> None:
    state = health.upgrade_scope_state(nested_layout_state())
    assert state is not None and "summary" not in state
    assert health.summary(state) == {"events": 12, "last_kind": "DATA_UPDATE",
                                     "last_event_id": "e12", "last_event_time_ms": T0,
                                     "last_sequence": 12, "source": "feeder"}
    book, registry = state["feeds"]["book"], state["feeds"]["registry"]
    assert (book["highest"], book["count"]) == (12, 11)
    assert "highest" not in book["gaps"] and "count" not in book["gaps"]
    assert (registry["highest"], registry["count"], registry["gaps"]) == (None, 0, None)
    assert health.upgrade_scope_state(state) is state  # the current layout: as it is
    assert health.upgrade_scope_state(None) is None
    # the upgraded tracker goes on where the old one stopped: 13 in order, 7 late, 15 a gap
    assert health.observe_update(state, SCOPE, "book", T0 + 1, 13) == []
    assert health.observe_update(state, SCOPE, "book", T0 + 2, 7) == []
    [gap] = health.observe_update(state, SCOPE, "book", T0 + 3, 15)
    assert gap.condition.cause == "13->15"
    assert health.gap_counts(book) == {"highest": 15, "count": 14, "missing": 1,
                                       "duplicates": 0, "reorders": 1}
    health.note_event(state, "DATA_UPDATE", "e13", T0 + 3, 15, "feeder")
    assert state["events"] == 13 and json_round_trip(state) == state


_EVENTS = st.lists(st.tuples(
    st.sampled_from(list(HealthEventKind)), st.sampled_from(["book", "registry"]),
    st.integers(0, 20_000), st.one_of(st.none(), st.integers(0, 30)),
    st.integers(100, 5_000)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(_EVENTS)
def test_observe_event_is_its_parts_in_one_call(events) -> None:
    """The agent's one call per event does what the parts it stands for do, in order."""
    whole, parts = health.new_scope_state(0), health.new_scope_state(0)
    for number, (kind, feed, offset_ms, sequence, interval_ms) in enumerate(events):
        now_ms = T0 + offset_ms + 1_000
        got = health.observe_event(whole, SCOPE, kind, f"e{number}", T0 + offset_ms, sequence,
                                   "src", feed, interval_ms, now_ms, threshold, MISS_FACTOR)
        health.note_event(parts, kind, f"e{number}", T0 + offset_ms, sequence, "src")
        expected: list[AlertTransition] = []
        if kind is HealthEventKind.DATA_UPDATE:
            expected = health.observe_update(parts, SCOPE, feed, T0 + offset_ms, sequence)
        elif kind is HealthEventKind.HEARTBEAT:
            health.observe_heartbeat(parts, T0 + offset_ms, interval_ms)
        assert got == (expected, *health.evaluation_due(parts, SCOPE, now_ms, threshold,
                                                        MISS_FACTOR))
        assert whole == parts


def _seed_slo(healthy_n: int, total_n: int) -> tuple[dict[str, Any], list[AlertTransition]]:
    """``healthy_n`` of ``total_n`` probes over the last hour, with the default rules."""
    state = health.new_slo_state(0, "market:*", "ingestion", "team-data")
    transitions = []
    now = T0 + 3_600_000
    for n in range(total_n):  # unhealthy ones spread over the hour
        at = T0 + n * 3_600_000 // total_n
        healthy = (n * (total_n - healthy_n)) % total_n >= total_n - healthy_n
        health.windows.add(state["counts"], at, healthy, 60_000)
    transitions += health.observe_probe(state, now, True, now, 0.995, DEFAULT_BURN_RULES,
                                        10, 60_000)
    return state, transitions


def test_the_seeds_slo_example_is_compliant_without_a_burn_alert() -> None:
    state, transitions = _seed_slo(99_640 - 1, 100_000 - 1)  # the probe observe adds: one
    assert transitions == []
    three_days = state["status"]["windows"][str(3 * 86_400)]
    assert (three_days["healthy"], three_days["total"]) == (99_640, 100_000)
    assert three_days["compliance"] == pytest.approx(0.9964)
    assert three_days["compliant"] is True
    assert three_days["burn_rate"] == pytest.approx(0.72)
    assert state["status"]["error_budget_remaining"] == pytest.approx(0.28)
    assert state["status"]["firing_rules"] == []


def test_a_ticket_level_burn_is_a_warning_that_does_not_pause() -> None:
    state, transitions = _seed_slo(99_440 - 1, 100_000 - 1)
    [fired] = transitions
    assert fired.condition.reason_code == "GOV_SLO_BURN_TICKET"
    assert fired.condition.value == pytest.approx(1.12)
    assert reason("GOV_SLO_BURN_TICKET").severity.value == "WARNING"
    assert not reason("GOV_SLO_BURN_TICKET").pauses and reason("GOV_SLO_BURN").pauses
    assert state["status"]["firing_rules"] == ["ticket_burn"]
    assert state["status"]["windows"][str(3 * 86_400)]["compliant"] is False
    assert state["status"]["error_budget_remaining"] == pytest.approx(-0.12)
    assert state["alert"] is None and state["ticket_alert"] is not None
    assert "owner team-data" in fired.condition.message


def test_an_expected_feed_that_never_reported_goes_stale_after_its_threshold() -> None:
    state = health.new_scope_state(3)
    assert health.expect(state, ["book", "heartbeat"], T0, 500)
    assert not health.expect(state, ["book", "heartbeat"], T0 + 5, 500), "once"
    threshold = lambda scope, feed: 2.0  # noqa: E731
    assert health.evaluate(state, "market:m9", T0 + 1_000, threshold, 3.0) == []
    fired = health.evaluate(state, "market:m9", T0 + 2_001, threshold, 3.0)
    assert {t.condition.reason_code for t in fired} == {"RISK_STALE_BOOK",
                                                        "GOV_HEARTBEAT_MISSED"}
    fresh = health.new_scope_state(3)
    health.observe_update(fresh, "market:m9", "book", T0 + 1_500, None)
    assert not health.expect(fresh, ["book"], T0, 500), "a feed that reported is not reset"
    assert fresh["feeds"]["book"]["last_event_ms"] == T0 + 1_500
