"""Execution figures of a scope from bucket sums: the same numbers the maths core computes
from the list of fills, over tumbling and hopping windows; breach alerts fire once and
resolve when the breaching fills age out."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.control import execution
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
    figs = execution.figures(state, SPECS[0], T0)
    assert (figs.intents, figs.fills, figs.fill_ratio) == (1, 2, 0.5)
    assert figs.slippage.count == 1 and figs.slippage.mean_error_bps == 3.0


def test_fills_outside_a_window_do_not_count_in_it() -> None:
    state = execution.new_state(SCOPE, 0)
    fill(state, T0 - 120_000, predicted=0, realized=100)  # two minutes ago: hopping only
    fill(state, T0, predicted=0, realized=1)
    tumbling = execution.figures(state, SPECS[0], T0)
    hopping = execution.figures(state, SPECS[1], T0)
    assert tumbling.fills == 1 and hopping.fills == 2


def test_a_slippage_spike_fires_once_and_resolves_when_it_ages_out() -> None:
    state = execution.new_state(SCOPE, 3)
    for i in range(4):
        fill(state, T0 + i, predicted=1.0, realized=41.0)
    assert execution.evaluate(state, T0 + 10, SPECS, BOUNDS) == [], "below min_fills"
    fill(state, T0 + 5, predicted=1.0, realized=41.0)
    [fired] = execution.evaluate(state, T0 + 10, SPECS, BOUNDS)
    condition = fired.condition
    assert fired.status is AlertStatus.FIRING
    assert condition.reason_code == "EXEC_SLIPPAGE_BREACH" and condition.scope == SCOPE
    assert condition.subject == "tumbling" and condition.metric == "slippage_rmse_bps"
    assert condition.value == pytest.approx(40.0) and condition.threshold == 10.0
    assert condition.window_s == 60.0 and "5 fills" in condition.message
    assert execution.evaluate(state, T0 + 20, SPECS, BOUNDS) == [], "fires once"
    state = json.loads(json.dumps(state))  # state lives in a JSON table
    # A minute later the tumbling window is clean, the hopping one still breaches.
    assert execution.evaluate(state, T0 + 60_000, SPECS, BOUNDS) == []
    [resolved] = execution.evaluate(state, T0 + 300_000, SPECS, BOUNDS)
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.fired_alert_id == fired.alert_id
    assert state["buckets"] == {}, "aged-out buckets are forgotten"


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
