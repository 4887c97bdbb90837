"""Canary comparison of a model: bounded, deterministic, idempotent samples per window,
verdicts from the maths core per leading metric, and the regression alert."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.control import canary
from streams.maths.canary import noninferiority_verdict
from streams.records import AlertStatus

SCOPE = "model:pricer"
WINDOW_MS = 3_600_000
T0 = 1_789_999_200_000  # a multiple of the window
LEADING = {"brier": "lower_is_better"}


def reservoir(ids: list[str], capacity: int) -> list[dict]:
    shards: list[dict | None] = [None] * canary.SHARDS
    for sample_id in ids:
        hashed = canary.sample_hash(sample_id)
        shard = hashed % canary.SHARDS
        shards[shard], _ = canary.add_sample(shards[shard], hashed, float(len(sample_id)),
                                             capacity)
    return [s for s in shards if s]


def test_the_sample_is_bounded_deterministic_and_counts_a_redelivery_once() -> None:
    ids = [f"s{i}" for i in range(5000)]
    kept = reservoir(ids, 800)
    assert sum(len(s["kept"]) for s in kept) <= 800
    assert sum(s["offered"] for s in kept) == 5000
    assert reservoir(list(reversed(ids)), 800) != [] and sorted(
        h for s in reservoir(list(reversed(ids)), 800) for h, _ in s["kept"]) == sorted(
        h for s in kept for h, _ in s["kept"]), "order does not matter"
    entry, _ = canary.add_sample(None, 7, 0.1, 800)
    again, changed = canary.add_sample(json.loads(json.dumps(entry)), 7, 0.1, 800)
    assert not changed and len(again["kept"]) == 1


def test_recording_a_sample_says_whether_the_state_is_worth_storing() -> None:
    state = canary.new_state(SCOPE, 2)
    assert canary.record_sample(state, "brier", "BASELINE", "v1", T0, T0) == ({}, True)
    assert canary.record_sample(state, "brier", "BASELINE", "v1", T0 + 5, T0) == ({}, False)
    # a new pair, a new canary version, a new window: each is a change
    assert canary.record_sample(state, "fill_ratio", "BASELINE", "v1", T0, T0)[1]
    assert canary.record_sample(state, "brier", "CANARY:v2", "v2", T0 + 6, T0)[1]
    assert not canary.record_sample(state, "brier", "CANARY:v2", "v2", T0 + 7, T0)[1]
    assert canary.record_sample(state, "brier", "BASELINE", "v1", T0 + WINDOW_MS,
                                T0 + WINDOW_MS)[1]
    dropped, changed = canary.record_sample(state, "brier", "BASELINE", "v1",
                                            T0 + 2 * WINDOW_MS, T0 + 2 * WINDOW_MS)
    assert changed and list(dropped) == [T0]


def test_windows_out_of_reach_are_dropped() -> None:
    state = canary.new_state(SCOPE, 2)
    assert canary.note_sample(state, "brier", "BASELINE", "v1", T0, T0) == {}
    assert canary.note_sample(state, "brier", "CANARY:v2", "v2", T0 + WINDOW_MS,
                              T0 + WINDOW_MS) == {}
    assert state["canary_version"] == "v2"
    dropped = canary.note_sample(state, "brier", "BASELINE", "v1", T0 + 2 * WINDOW_MS,
                                 T0 + 2 * WINDOW_MS)
    assert dropped == {T0: ["brier|BASELINE"]}
    assert len(canary.sample_keys(SCOPE, T0, dropped[T0])) == canary.SHARDS
    assert not canary.accepts(state, T0, WINDOW_MS)
    assert canary.accepts(state, T0 + WINDOW_MS, WINDOW_MS)
    # No samples for a while: the tick expires what fell out of reach of now.
    assert canary.expire_windows(state, T0 + 3 * WINDOW_MS + 5, WINDOW_MS) == {
        T0 + WINDOW_MS: ["brier|CANARY:v2"]}
    assert list(state["windows"]) == [str(T0 + 2 * WINDOW_MS)]
    assert canary.expire_windows(state, T0 + 3 * WINDOW_MS + 5, WINDOW_MS) == {}


def brier(mean: float, n: int, seed: int) -> list[float]:
    return list(np.random.default_rng(seed).uniform(mean - 0.001, mean + 0.001, n))


MARGINS = {"brier": 0.01}
NOW = T0 + WINDOW_MS + 10  # T0's window has completed: it is the one decided


def test_brier_0179_against_0181_is_eligible_and_matches_the_maths_core() -> None:
    """The seed's example: not worse by the margin (delta −0.002 against +0.01)."""
    new, baseline = brier(0.179, 50, 1), brier(0.181, 50, 2)
    evaluation = canary.evaluate({T0: {"brier": (new, baseline)}}, LEADING, 0.05, 30,
                                 "mannwhitney", NOW, WINDOW_MS, "v2", MARGINS)
    expected = noninferiority_verdict(new, baseline, "lower_is_better", 0.01, 0.05, 30)
    brier_verdict = evaluation["metrics"]["brier"]
    assert evaluation["combined"] == "promote_eligible"
    assert evaluation["window_start_ms"] == T0 and evaluation["decided_ms"] == T0 + WINDOW_MS
    assert brier_verdict["verdict"] == "promote_eligible"
    assert brier_verdict["delta"] == pytest.approx(-0.002, abs=3e-4)
    assert brier_verdict["delta"] == expected.delta
    assert brier_verdict["margin"] == 0.01
    assert brier_verdict["p_value"] == expected.p_noninferior < 0.05
    assert brier_verdict["mean_canary"] == pytest.approx(0.179, abs=3e-4)
    assert (brier_verdict["n_canary"], brier_verdict["n_baseline"]) == (50, 50)
    state = canary.new_state(SCOPE, 2)
    assert canary.judge(state, evaluation) == []


def test_a_canary_that_is_not_better_but_not_worse_is_eligible() -> None:
    """Equal distributions: the superiority test would hold forever; within the margin
    the canary is not worse, so eligible."""
    same = (brier(0.181, 200, 11), brier(0.181, 200, 12))
    evaluation = canary.evaluate({T0: {"brier": same}}, LEADING, 0.05, 30, "welch", NOW,
                                 WINDOW_MS, "v2", MARGINS)
    assert evaluation["metrics"]["brier"]["p_better"] > 0.05
    assert evaluation["combined"] == "promote_eligible"
    no_margin = canary.evaluate({T0: {"brier": same}}, LEADING, 0.05, 30, "welch", NOW,
                                WINDOW_MS, "v2", {})
    assert no_margin["combined"] == "hold"


def test_the_window_in_progress_is_not_judged_and_too_few_samples_hold() -> None:
    good = (brier(0.179, 50, 3), brier(0.181, 50, 4))
    few = (brier(0.3, 5, 5), brier(0.181, 5, 6))
    samples = {T0: {"brier": good}, T0 + WINDOW_MS: {"brier": few}}
    evaluation = canary.evaluate(samples, LEADING, 0.05, 30, "mannwhitney", NOW, WINDOW_MS,
                                 "v2", MARGINS)
    assert evaluation["metrics"]["brier"]["window_start_ms"] == T0
    assert evaluation["combined"] == "promote_eligible"
    assert canary.decided(evaluation, NOW + 1, WINDOW_MS, "v2")
    assert not canary.decided(evaluation, NOW + WINDOW_MS, WINDOW_MS, "v2"), "next window"
    assert not canary.decided(evaluation, NOW + 1, WINDOW_MS, "v3"), "another canary"
    evaluation = canary.evaluate(samples, LEADING, 0.05, 30, "mannwhitney", NOW + WINDOW_MS,
                                 WINDOW_MS, "v2", MARGINS)
    assert evaluation["combined"] == "hold"
    assert "not enough samples" in evaluation["metrics"]["brier"]["reason"]


def test_worse_on_any_leading_metric_is_a_regression_alert_naming_the_metric() -> None:
    leading = {"brier": "lower_is_better", "fill_ratio": "higher_is_better"}
    samples = {T0: {"brier": (brier(0.179, 50, 7), brier(0.181, 50, 8)),
                    "fill_ratio": (brier(0.5, 50, 9), brier(0.9, 50, 10))}}
    evaluation = canary.evaluate(samples, leading, 0.05, 30, "mannwhitney", NOW, WINDOW_MS,
                                 "v2", {"brier": 0.01, "fill_ratio": 0.02})
    assert evaluation["combined"] == "regressed" and evaluation["regressed"] == ["fill_ratio"]
    state = canary.new_state(SCOPE, 2)
    [fired] = canary.judge(state, evaluation)
    assert fired.status is AlertStatus.FIRING
    assert fired.condition.reason_code == "RISK_CANARY_REGRESSION"
    assert fired.condition.metric == "p_inferior:fill_ratio"
    assert fired.condition.value < 0.05 and fired.condition.threshold == 0.05
    assert "fill_ratio regressed" in fired.condition.message
    assert state["alert_evaluation"] is evaluation
    assert canary.judge(state, evaluation) == [], "fires once"
    unknown = canary.evaluate({}, leading, 0.05, 30, "mannwhitney", NOW, WINDOW_MS, "v2")
    assert canary.judge(state, unknown) == [], "a window without samples keeps the state"
    calm_samples = {T0: {"brier": samples[T0]["brier"],
                         "fill_ratio": (brier(0.9, 50, 13), brier(0.9, 50, 14))}}
    calm = canary.evaluate(calm_samples, leading, 0.05, 30, "mannwhitney", NOW, WINDOW_MS,
                           "v2", {"fill_ratio": 0.02})
    [resolved] = canary.judge(state, calm)
    assert resolved.status is AlertStatus.RESOLVED


def _record_sample_in_full(state: dict, metric: str, tag: str, version: str | None,
                           event_time_ms: int, start_ms: int) -> tuple[dict, bool]:
    """record_sample without its shortcut: note_sample, and what it changed."""
    windows = state["windows"]
    before = (state["canary_version"], len(windows), len(windows.get(str(start_ms), ())))
    dropped = canary.note_sample(state, metric, tag, version, event_time_ms, start_ms)
    after = (state["canary_version"], len(windows), len(windows[str(start_ms)]))
    return dropped, bool(dropped) or before != after


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["brier", "fill_ratio"]),
                          st.sampled_from(["BASELINE", "CANARY:v1", "CANARY:v2"]),
                          st.integers(0, 4), st.integers(0, WINDOW_MS - 1)),
                min_size=1, max_size=40))
def test_recording_a_sample_agrees_with_noting_it_in_full(
        samples: list[tuple[str, str, int, int]]) -> None:
    """The shortcut for a baseline sample of a known pair changes nothing that noting it
    would change, and says so (for the samples the agent records: those accepted)."""
    quick, full = canary.new_state(SCOPE, 0), canary.new_state(SCOPE, 0)
    for metric, tag, window, offset in samples:
        start = T0 + window * WINDOW_MS
        if not canary.accepts(full, start, WINDOW_MS):
            continue
        version = tag.partition(":")[2] or None
        assert canary.record_sample(quick, metric, tag, version, start + offset, start) == \
            _record_sample_in_full(full, metric, tag, version, start + offset, start)
        assert quick == full


def test_a_fills_samples_are_its_absolute_slippage_error_and_fill_ratio() -> None:
    assert canary.fill_samples(10.0, 7.5, 3.0, 1.0) == (2.0, 0.75)
    assert canary.fill_samples(10.0, 10.0, None, 1.0) == (None, 1.0)
    assert canary.fill_samples(0.0, 0.0, 1.0, 1.5) == (0.5, None)  # nothing requested


def test_the_sample_hash_stays_the_first_four_bytes_of_sha256() -> None:
    """Kept reservoirs hold these hashes: another function would count a re-delivered
    sample again and skew which samples are kept."""
    for sample_id in ("fill:f1", "score:s1", ""):
        digest = hashlib.sha256(sample_id.encode()).digest()
        assert canary.sample_hash(sample_id) == int.from_bytes(digest[:4], "big")


def test_a_fills_carried_samples_leave_out_the_values_it_does_not_carry() -> None:
    assert canary.carried_fill_samples(2.0, 0.75) == [("slippage_abs_error_bps", 2.0),
                                                      ("fill_ratio", 0.75)]
    assert canary.carried_fill_samples(math.nan, 1.0) == [("fill_ratio", 1.0)]
    assert canary.carried_fill_samples(0.5, math.nan) == [("slippage_abs_error_bps", 0.5)]


def test_the_baseline_delta_compares_the_live_model_with_its_previous_window() -> None:
    state = canary.new_state(SCOPE, 2)
    first = canary.evaluate({T0: {"brier": (brier(0.179, 50, 21), brier(0.181, 50, 22))}},
                            LEADING, 0.05, 30, "welch", NOW, WINDOW_MS, "v2", MARGINS)
    canary.judge(state, first)
    delta = first["baseline_delta"]["brier"]
    assert delta["mean_now"] == first["metrics"]["brier"]["mean_baseline"]
    assert delta["mean_before"] is None and delta["delta"] is None, "no window before"
    baseline_now = brier(0.2, 50, 23)
    second = canary.evaluate(
        {T0 + WINDOW_MS: {"brier": (brier(0.179, 50, 24), baseline_now)}}, LEADING, 0.05, 30,
        "welch", NOW + WINDOW_MS, WINDOW_MS, "v2", MARGINS)
    canary.judge(state, second)
    delta = second["baseline_delta"]["brier"]
    assert delta["window_start_ms"] == T0 + WINDOW_MS
    assert delta["previous_window_start_ms"] == T0
    assert delta["mean_before"] == first["metrics"]["brier"]["mean_baseline"]
    assert delta["delta"] == pytest.approx(np.mean(baseline_now) - delta["mean_before"])
    assert delta["delta"] == pytest.approx(0.019, abs=3e-3)
    assert (delta["n_now"], delta["n_before"]) == (50, 50)
    assert len(state["baseline_means"]) == 2
    json.dumps(state)  # it lives in a table
