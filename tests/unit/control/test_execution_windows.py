"""Execution figures of a scope from bucket sums: the same numbers the maths core computes
from the list of fills, over tumbling and hopping windows; breach alerts fire once and
resolve when the breaching fills age out."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.control import execution
from streams.control.alerts import AlertRule
from streams.maths.execution import fill_ratio, slippage_error
from streams.records import AlertStatus

SCOPE = "market:m1"
T0 = 1_790_000_080_000  # 40 s into a minute
SPECS = execution.windows(60, 300, 60)
BOUNDS = execution.Bounds(slippage_rmse_bps=10.0, slippage_mean_bps=None, fill_ratio_min=0.5,
                          min_fills=5)
BUCKET = execution.bucket_ms(SPECS)


def fill(state: dict, at_ms: int, predicted: float | None = 1.0, realized: float | None = 1.5,
         requested: float = 10.0, filled: float = 10.0, kind_fill: bool = True) -> None:
    execution.observe(state, fill=kind_fill, event_time_ms=at_ms, requested=requested,
                      filled=filled, predicted_bps=predicted, realized_bps=realized,
                      bucket=BUCKET)


def test_windows_and_bucket() -> None:
    tumbling, hopping = SPECS
    assert tumbling.bounds(T0) == (T0 - 40_000, T0 + 20_000)
    assert hopping.bounds(T0) == (T0 + 20_000 - 300_000, T0 + 20_000)
    assert BUCKET == 60_000
    assert execution.bucket_ms(execution.windows(90, 300, 60)) == 30_000
    with pytest.raises(ValueError, match="hop"):
        execution.WindowSpec("bad", 1000, 2000)


@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50), st.floats(0.1, 100),
                          st.floats(0, 1)), min_size=1, max_size=60))
@settings(max_examples=60, deadline=None)
def test_figures_match_the_maths_core_on_the_same_fills(
        fills: list[tuple[float, float, float, float]]) -> None:
    state = execution.new_state(SCOPE, 0)
    for i, (predicted, realized, requested, share) in enumerate(fills):
        fill(state, T0 - i * 1000 % 30_000, predicted, realized, requested, requested * share)
    figs = execution.figures(state, SPECS[1], T0)
    expected = slippage_error([f[0] for f in fills], [f[1] for f in fills])
    assert figs.fills == len(fills) and figs.slippage.count == expected.count
    assert figs.slippage.mean_error_bps == pytest.approx(expected.mean_error_bps, rel=1e-9,
                                                         abs=1e-9)
    assert figs.slippage.rmse_bps == pytest.approx(expected.rmse_bps, rel=1e-9, abs=1e-9)
    assert figs.slippage.rmse_bps >= abs(figs.slippage.mean_error_bps)
    assert figs.fill_ratio == pytest.approx(
        fill_ratio([f[2] * f[3] for f in fills], [f[2] for f in fills]), rel=1e-12)


def test_intents_are_counted_but_not_in_the_ratio_and_slippage_needs_both_values() -> None:
    state = execution.new_state(SCOPE, 0)
    fill(state, T0, kind_fill=False, filled=0.0)
    fill(state, T0, requested=10, filled=4, predicted=None)
    fill(state, T0, requested=10, filled=6, predicted=2.0, realized=5.0)
    figs = execution.figures(state, SPECS[0], T0 + 60_000)  # once its window has completed
    assert (figs.intents, figs.fills, figs.fill_ratio) == (1, 2, 0.5)
    assert figs.slippage.count == 1 and figs.slippage.mean_error_bps == 3.0


def test_fills_outside_a_window_do_not_count_in_it() -> None:
    state = execution.new_state(SCOPE, 0)
    fill(state, T0 - 120_000, predicted=0, realized=100)  # two minutes ago: hopping only
    fill(state, T0, predicted=0, realized=1)
    tumbling = execution.figures(state, SPECS[0], T0 + 60_000)
    hopping = execution.figures(state, SPECS[1], T0 + 60_000)
    assert tumbling.fills == 1 and hopping.fills == 2


def test_a_slippage_spike_fires_once_and_resolves_when_it_ages_out() -> None:
    state = execution.new_state(SCOPE, 3)
    for i in range(4):
        fill(state, T0 + i, predicted=1.0, realized=41.0)
    assert execution.evaluate(state, T0 + 10, SPECS, BOUNDS) == [], "below min_fills: unknown"
    fill(state, T0 + 5, predicted=1.0, realized=41.0)
    [fired] = execution.evaluate(state, T0 + 10, SPECS, BOUNDS)
    condition = fired.condition
    assert fired.status is AlertStatus.FIRING
    assert condition.reason_code == "EXEC_SLIPPAGE_BREACH" and condition.scope == SCOPE
    # the tumbling window in progress is not judged: the hopping one breaches
    assert condition.subject == "hopping" and condition.metric == "slippage_rmse_bps"
    assert condition.value == pytest.approx(40.0) and condition.threshold == 10.0
    assert condition.window_s == 300.0 and "5 fills" in condition.message
    assert execution.evaluate(state, T0 + 20, SPECS, BOUNDS) == [], "fires once"
    state = json.loads(json.dumps(state))  # state lives in a JSON table
    # A minute later the completed tumbling window breaches too; still one alert.
    assert execution.evaluate(state, T0 + 60_000, SPECS, BOUNDS) == []
    # Once every fill aged out, every window is unknown: the alert keeps firing.
    assert execution.evaluate(state, T0 + 400_000, SPECS, BOUNDS) == []
    assert state["buckets"] == {}, "aged-out buckets are forgotten"
    for i in range(5):  # healthy fills: clear
        fill(state, T0 + 400_000 + i, predicted=1.0, realized=1.5)
    [resolved] = execution.evaluate(state, T0 + 400_010, SPECS, BOUNDS)
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.fired_alert_id == fired.alert_id


RULES = {code: AlertRule(for_ms=0, keep_firing_for_ms=30_000, resolve_ratio=0.8)
         for code in (execution.SLIPPAGE_BREACH, execution.FILL_RATIO_LOW)}


def test_a_rebreach_within_keep_firing_for_is_the_same_episode() -> None:
    state = execution.new_state(SCOPE, 0)
    for i in range(5):
        fill(state, T0 + i, predicted=0.0, realized=20.0)
    [fired] = execution.evaluate(state, T0 + 10, SPECS, BOUNDS, RULES)
    assert fired.status is AlertStatus.FIRING
    state["buckets"].clear()
    for i in range(50):  # clear: RMSE ~1 < 8 (0.8 × 10)
        fill(state, T0 + 1_000 + i, predicted=0.0, realized=1.0)
    assert execution.evaluate(state, T0 + 2_000, SPECS, BOUNDS, RULES) == [], "keeps firing"
    for i in range(50):  # breaching again within keep_firing_for
        fill(state, T0 + 3_000 + i, predicted=0.0, realized=40.0)
    assert execution.evaluate(state, T0 + 4_000, SPECS, BOUNDS, RULES) == []
    assert state["alerts"]["EXEC_SLIPPAGE_BREACH"]["alert_id"] == fired.alert_id
    state["buckets"].clear()
    for i in range(50):  # between the resolve threshold (8) and the bound (10): firing
        fill(state, T0 + 5_000 + i, predicted=0.0, realized=9.0)
    assert execution.evaluate(state, T0 + 6_000, SPECS, BOUNDS, RULES) == []
    assert execution.evaluate(state, T0 + 50_000, SPECS, BOUNDS, RULES) == []
    state["buckets"].clear()
    for i in range(50):
        fill(state, T0 + 7_000 + i, predicted=0.0, realized=1.0)
    assert execution.evaluate(state, T0 + 8_000, SPECS, BOUNDS, RULES) == []
    assert not execution.figures_current(state, T0 + 8_001, SPECS), "a clearing timer runs"
    assert execution.evaluate(state, T0 + 37_999, SPECS, BOUNDS, RULES) == []
    [resolved] = execution.evaluate(state, T0 + 38_000, SPECS, BOUNDS, RULES)
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.fired_alert_id == fired.alert_id


def test_a_breach_must_last_its_for_before_it_fires() -> None:
    rules = {execution.SLIPPAGE_BREACH: AlertRule(for_ms=5_000)}
    state = execution.new_state(SCOPE, 0)
    for i in range(5):
        fill(state, T0 + i, predicted=0.0, realized=20.0)
    assert execution.evaluate(state, T0 + 10, SPECS, BOUNDS, rules) == [], "pending"
    assert execution.can_alert(state, BOUNDS)
    assert execution.evaluate(state, T0 + 4_000, SPECS, BOUNDS, rules) == []
    [fired] = execution.evaluate(state, T0 + 5_010, SPECS, BOUNDS, rules)
    assert fired.status is AlertStatus.FIRING


def test_a_bot_trading_a_breached_and_a_healthy_market_fires_once() -> None:
    """The demo's flap: a bot whose fills mix a spiked market and a healthy one, windows
    rolling over every few seconds, fills every 200 ms. One FIRING, one RESOLVED."""
    specs = execution.windows(5, 10, 2)
    bounds = execution.Bounds(slippage_rmse_bps=10.0, slippage_mean_bps=None,
                              fill_ratio_min=0.5, min_fills=10)
    rules = {code: AlertRule(keep_firing_for_ms=2_000, resolve_ratio=0.8)
             for code in (execution.SLIPPAGE_BREACH, execution.FILL_RATIO_LOW)}
    bucket = execution.bucket_ms(specs)
    state = execution.new_state("bot:b1", 0)
    rng = random.Random(1)
    transitions = []
    start = T0 + 1_234
    for tick in range(300):  # 60 s
        now = start + tick * 200
        spike = 26_400 <= tick * 200 < 34_800
        for market_spiked in (spike, False):
            predicted = rng.uniform(2, 6)
            realized = predicted + rng.gauss(0, 0.5) + (25.0 if market_spiked else 0.0)
            execution.observe(state, True, now, 10.0, 9.0, predicted, realized, bucket)
        transitions += execution.evaluate(state, now, specs, bounds, rules)
    assert [t.status for t in transitions] == [AlertStatus.FIRING, AlertStatus.RESOLVED]
    assert transitions[1].fired_alert_id == transitions[0].alert_id


def test_mean_error_bound_and_fill_ratio_bound() -> None:
    bounds = execution.Bounds(slippage_rmse_bps=None, slippage_mean_bps=2.0, fill_ratio_min=0.5,
                              min_fills=3)
    state = execution.new_state(SCOPE, 0)
    for i in range(3):
        fill(state, T0 + i, predicted=0.0, realized=-3.0, requested=10, filled=4)
    transitions = execution.evaluate(state, T0 + 5, SPECS, bounds)
    by_code = {t.condition.reason_code: t.condition for t in transitions}
    assert by_code["EXEC_SLIPPAGE_BREACH"].metric == "slippage_mean_error_bps"
    assert by_code["EXEC_SLIPPAGE_BREACH"].value == pytest.approx(-3.0)
    assert by_code["EXEC_FILL_RATIO_LOW"].metric == "fill_ratio"
    assert by_code["EXEC_FILL_RATIO_LOW"].value == pytest.approx(0.4)
    assert by_code["EXEC_FILL_RATIO_LOW"].threshold == 0.5


def test_the_alert_id_is_deterministic() -> None:
    ids = []
    for _ in range(2):
        state = execution.new_state(SCOPE, 0)
        for i in range(5):
            fill(state, T0 + i, predicted=0.0, realized=50.0)
        ids.append(execution.evaluate(state, T0 + 9, SPECS, BOUNDS)[0].alert_id)
    assert ids[0] == ids[1]


def test_figures_are_current_until_a_fill_comes_or_a_window_moves() -> None:
    state = execution.new_state(SCOPE, 0)
    fill(state, T0 - 1000)
    assert not execution.figures_current(state, T0, SPECS)  # never evaluated
    execution.evaluate(state, T0, SPECS, BOUNDS)
    assert execution.figures_current(state, T0, SPECS)
    assert execution.figures_current(state, T0 + 19_999, SPECS)  # same hop: nothing moved
    assert not execution.figures_current(state, T0 + 20_000, SPECS)  # the windows moved on
    fill(state, T0 + 1000)
    assert not execution.figures_current(state, T0 + 1000, SPECS)  # a fill came


@given(st.lists(st.tuples(st.integers(0, 900_000), st.booleans()), min_size=1, max_size=40))
@settings(max_examples=60, deadline=None)
def test_skipping_current_figures_changes_nothing(steps: list[tuple[int, bool]]) -> None:
    """Evaluating at every step, and evaluating only when figures are not current, give the
    same figures, alerts and transitions: the tick may skip current scopes."""
    always, skipping = execution.new_state(SCOPE, 0), execution.new_state(SCOPE, 0)
    now = T0
    for advance, with_fill in steps:
        now += advance
        for state in (always, skipping):
            if with_fill:
                fill(state, now - 500, realized=40.0, filled=2.0)  # breaches both bounds
        evaluated = execution.evaluate(always, now, SPECS, BOUNDS)
        skipped = ([] if execution.figures_current(skipping, now, SPECS)
                   else execution.evaluate(skipping, now, SPECS, BOUNDS))
        assert [(t.alert_id, t.status) for t in skipped] == [
            (t.alert_id, t.status) for t in evaluated]
        assert skipping["figures"] == always["figures"]
        assert skipping["alerts"] == always["alerts"]


@given(st.lists(st.tuples(st.integers(0, 400_000), st.integers(0, 3), st.booleans()),
                min_size=1, max_size=60))
@settings(max_examples=80, deadline=None)
def test_evaluating_only_scopes_that_can_alert_decides_the_same(
        steps: list[tuple[int, int, bool]]) -> None:
    """Evaluating after every step, and only when can_alert says an alert can change,
    give the same alerts and transitions: scopes that cannot alert may wait for the
    periodic pass."""
    always, gated = execution.new_state(SCOPE, 0), execution.new_state(SCOPE, 0)
    now = T0
    for advance, fills, breaching in steps:
        now += advance
        for state in (always, gated):
            for _ in range(fills):
                fill(state, now - 500, realized=40.0 if breaching else 1.5)
        evaluated = execution.evaluate(always, now, SPECS, BOUNDS)
        decided = (execution.evaluate(gated, now, SPECS, BOUNDS)
                   if execution.can_alert(gated, BOUNDS) else [])
        assert [(t.alert_id, t.status) for t in decided] == [
            (t.alert_id, t.status) for t in evaluated]
        assert gated["alerts"] == always["alerts"]


def test_a_scope_can_alert_with_min_fills_kept_or_an_alert_active() -> None:
    state = execution.new_state(SCOPE, 0)
    for _ in range(BOUNDS.min_fills - 1):
        fill(state, T0)
    assert not execution.can_alert(state, BOUNDS)
    fill(state, T0 + 1, realized=40.0)
    assert execution.can_alert(state, BOUNDS)
    assert execution.evaluate(state, T0 + 2, SPECS, BOUNDS)  # fires
    execution.prune(state, T0 + 3_600_000, SPECS)  # every fill aged out, the alert stays
    assert not state["buckets"] and execution.can_alert(state, BOUNDS)


_fills = st.lists(st.tuples(
    st.integers(0, 400_000),  # ms after T0: several buckets
    st.booleans(),  # FILL (else INTENT)
    st.floats(0, 100),  # requested
    st.floats(0, 1),  # filled, as a share of requested
    st.one_of(st.none(), st.floats(-50, 50)),  # predicted slippage
    st.one_of(st.none(), st.floats(-50, 50)),  # realized slippage
), max_size=40)


@given(_fills, st.integers(1, 5))
@settings(max_examples=200, deadline=None)
def test_digests_merged_give_the_figures_of_the_fills_counted_one_by_one(
        fills: list[tuple], batches: int) -> None:
    """A bot's fills summed per batch (FillDigest, sent as ScopedFills) and merged into its
    state: the same buckets, figures and alerts as observing every fill in the state."""
    one_by_one = execution.new_state("bot:b1", 0)
    merged = execution.new_state("bot:b1", 0)
    size = -(-len(fills) // batches) or 1
    for first in range(0, len(fills), size):
        digest = execution.FillDigest("bot:b1")
        for at, kind_fill, requested, share, predicted, realized in fills[first:first + size]:
            fill(one_by_one, T0 + at, predicted, realized, requested, requested * share,
                 kind_fill)
            digest.add(None, T0 + at, BUCKET, kind_fill, requested, requested * share,
                       predicted, realized)
        for bucket in digest.datum()["buckets"]:
            execution.merge(merged, bucket["start_ms"],
                            [bucket[name] for name in execution.BUCKET_FIELDS],
                            bucket["last_event_ms"], BUCKET)
    assert merged["last_event_ms"] == one_by_one["last_event_ms"]
    assert merged["buckets"].keys() == one_by_one["buckets"].keys()
    for start, cell in one_by_one["buckets"].items():
        assert merged["buckets"][start] == pytest.approx(cell, rel=1e-9, abs=1e-6)
    now = T0 + 400_000
    judged = [execution.evaluate(state, now, SPECS, BOUNDS) for state in (one_by_one, merged)]
    assert [t.status for t in judged[0]] == [t.status for t in judged[1]]
    assert merged["alerts"].keys() == one_by_one["alerts"].keys()


def test_a_digest_keeps_cohorts_apart_and_its_samples_in_columns() -> None:
    digest = execution.FillDigest("model:m")
    digest.add("BASELINE", T0, BUCKET, True, 10.0, 5.0, 1.0, 2.0)
    digest.add("CANARY", T0 + 1, BUCKET, True, 10.0, 10.0, None, None)
    digest.add("BASELINE", T0 + 2, BUCKET, False, 0.0, 0.0, None, None)
    digest.add_sample("f1", "BASELINE", None, T0, 1.0, 0.5)
    digest.add_sample("f2", "CANARY", "v2", T0 + 1, None, 1.0)
    digest.add_sample("f3", "BASELINE", None, T0 + 2, 0.25, None)
    datum = digest.datum()
    by_cohort = {bucket["cohort"]: bucket for bucket in datum["buckets"]}
    assert by_cohort["BASELINE"] == {
        "start_ms": T0 - T0 % BUCKET, "cohort": "BASELINE", "last_event_ms": T0 + 2,
        "intents": 1, "fills": 1, "requested": 10.0, "filled": 5.0, "slipped": 1,
        "error_sum": 1.0, "error_sq_sum": 1.0}
    assert by_cohort["CANARY"]["fills"] == 1 and by_cohort["CANARY"]["slipped"] == 0
    baseline, canary = datum["samples"]  # per cohort and version, columns aligned
    assert (baseline["cohort"], baseline["model_version"], baseline["event_ids"],
            baseline["event_times_ms"], baseline["slippage_abs_error_bps"],
            baseline["fill_ratios"][0]) == ("BASELINE", None, ["f1", "f3"], [T0, T0 + 2],
                                            [1.0, 0.25], 0.5)
    assert math.isnan(baseline["fill_ratios"][1])  # not carried
    assert (canary["cohort"], canary["model_version"], canary["event_ids"],
            canary["fill_ratios"]) == ("CANARY", "v2", ["f2"], [1.0])
    assert math.isnan(canary["slippage_abs_error_bps"][0])


def test_a_merged_bucket_lands_on_the_receivers_grid() -> None:
    state = execution.new_state("bot:b1", 0)
    execution.merge(state, T0 + 5, [1, 2, 20.0, 10.0, 1, 0.5, 0.25], T0 + 5, BUCKET)
    execution.merge(state, T0 - T0 % BUCKET, [0, 1, 10.0, 10.0, 0, 0.0, 0.0], T0, BUCKET)
    assert state["buckets"] == {str(T0 - T0 % BUCKET): [1, 3, 30.0, 20.0, 1, 0.5, 0.25]}
    assert state["last_event_ms"] == T0 + 5 and state["window_ends"] is None
