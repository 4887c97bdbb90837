from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from streams.maths.canary import (
    CanaryVerdict,
    Direction,
    StatisticalTest,
    Verdict,
    canary_delta,
    canary_verdict,
    combine_verdicts,
    noninferiority_verdict,
)


def samples_with_mean(mean: float, spread: float, size: int, seed: int) -> np.ndarray:
    """Noisy samples whose mean is exactly ``mean`` (up to rounding)."""
    noise = np.random.default_rng(seed).normal(0.0, spread, size)
    return mean + (noise - noise.mean())


# --- worked example: Brier 0.179 vs 0.181 -------------------------------------------------


def test_seed_example_brier_delta_is_better() -> None:
    new = samples_with_mean(0.179, 0.01, 2_000, seed=1)
    baseline = samples_with_mean(0.181, 0.01, 2_000, seed=2)
    delta = canary_delta(new, baseline)
    assert delta == pytest.approx(-0.002, abs=1e-12)
    assert Direction.LOWER_IS_BETTER.is_improvement(delta)


def test_seed_example_brier_eligible_when_significant() -> None:
    new = samples_with_mean(0.179, 0.01, 2_000, seed=1)
    baseline = samples_with_mean(0.181, 0.01, 2_000, seed=2)
    verdict = canary_verdict(new, baseline, "lower_is_better", metric="brier")
    assert verdict.verdict == Verdict.PROMOTE_ELIGIBLE
    assert verdict.verdict == "promote_eligible"
    assert verdict.delta == pytest.approx(-0.002, abs=1e-12)
    assert verdict.delta_is_better is True
    assert verdict.p_better is not None and verdict.p_better < 0.05
    assert verdict.metric == "brier"
    assert (verdict.n_new, verdict.n_baseline) == (2_000, 2_000)


def test_seed_example_brier_holds_when_not_significant() -> None:
    # Same means, but the noise swamps a 0.002 difference at this sample size.
    new = samples_with_mean(0.179, 0.2, 40, seed=1)
    baseline = samples_with_mean(0.181, 0.2, 40, seed=2)
    verdict = canary_verdict(new, baseline, "lower_is_better")
    assert verdict.verdict == "hold"
    assert verdict.reason.startswith("no significant difference")


def test_higher_brier_regresses() -> None:
    new = samples_with_mean(0.181, 0.01, 2_000, seed=1)
    baseline = samples_with_mean(0.179, 0.01, 2_000, seed=2)
    verdict = canary_verdict(new, baseline, Direction.LOWER_IS_BETTER)
    assert verdict.verdict == "regressed"
    assert verdict.delta_is_better is False
    assert verdict.p_worse is not None and verdict.p_worse < 0.05


def test_direction_flips_the_verdict() -> None:
    higher = samples_with_mean(0.60, 0.05, 500, seed=3)
    lower = samples_with_mean(0.55, 0.05, 500, seed=4)
    assert canary_verdict(higher, lower, "higher_is_better").verdict == "promote_eligible"
    assert canary_verdict(higher, lower, "lower_is_better").verdict == "regressed"


def test_too_few_samples_hold_without_testing() -> None:
    new = np.full(29, 0.0)
    baseline = np.full(1_000, 1.0)
    verdict = canary_verdict(new, baseline, "lower_is_better", min_samples=30)
    assert verdict.verdict == "hold"
    assert not verdict.sufficient_samples
    assert verdict.p_better is None and verdict.p_worse is None
    assert verdict.reason == "not enough samples: new has 29, baseline has 1000, need 30 each"


def test_empty_sides() -> None:
    assert canary_delta([], [1.0]) is None
    assert canary_delta([1.0], []) is None
    verdict = canary_verdict([], [], "lower_is_better")
    assert verdict.verdict == "hold"
    assert verdict.delta is None
    assert verdict.delta_is_better is None


def test_identical_constant_samples_hold_with_defined_p_values() -> None:
    for test in ("mannwhitney", "welch"):
        verdict = canary_verdict(np.zeros(50), np.zeros(50), "lower_is_better", test=test)
        assert verdict.verdict == "hold"
        assert verdict.p_better == 1.0 and verdict.p_worse == 1.0


def test_welch_option() -> None:
    new = samples_with_mean(0.179, 0.01, 2_000, seed=1)
    baseline = samples_with_mean(0.181, 0.01, 2_000, seed=2)
    verdict = canary_verdict(new, baseline, "lower_is_better", test="welch")
    assert verdict.test is StatisticalTest.WELCH
    assert verdict.verdict == "promote_eligible"
    expected = stats.ttest_ind(new, baseline, equal_var=False, alternative="less").pvalue
    assert verdict.p_better == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"direction": "up"}, r"direction must be one of 'lower_is_better', 'higher_is_better'"),
        ({"test": "ks"}, r"test must be one of 'mannwhitney', 'welch', got 'ks'"),
        ({"alpha": 0.0}, r"alpha must be in \(0, 0.5\], got 0.0"),
        ({"alpha": 0.6}, r"alpha must be in \(0, 0.5\]"),
        ({"alpha": math.nan}, r"alpha must be in \(0, 0.5\]"),
        ({"min_samples": 0}, r"min_samples must be an int >= 1, got 0"),
        ({"new": [1.0, math.nan]}, r"new must be finite, got nan at index 1"),
        ({"baseline": [[1.0]]}, r"baseline must be one-dimensional, got shape \(1, 1\)"),
    ],
)
def test_bad_input_raises(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "new": [1.0, 2.0],
        "baseline": [1.0, 2.0],
        "direction": "lower_is_better",
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        canary_verdict(**arguments)  # type: ignore[arg-type]


# --- agreement with scipy.stats.mannwhitneyu ------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    new=st.lists(st.floats(min_value=0, max_value=1), min_size=5, max_size=80),
    baseline=st.lists(st.floats(min_value=0, max_value=1), min_size=5, max_size=80),
    lower_is_better=st.booleans(),
)
def test_p_values_agree_with_scipy_mannwhitneyu(
    new: list[float], baseline: list[float], lower_is_better: bool
) -> None:
    direction = "lower_is_better" if lower_is_better else "higher_is_better"
    verdict = canary_verdict(new, baseline, direction, min_samples=5)
    less = stats.mannwhitneyu(new, baseline, alternative="less").pvalue
    greater = stats.mannwhitneyu(new, baseline, alternative="greater").pvalue
    expected_better, expected_worse = (less, greater) if lower_is_better else (greater, less)
    assert verdict.p_better == pytest.approx(expected_better, rel=1e-12, abs=1e-15)
    assert verdict.p_worse == pytest.approx(expected_worse, rel=1e-12, abs=1e-15)
    # Never both significant at alpha <= 0.5.
    assert verdict.verdict in {"promote_eligible", "hold", "regressed"}
    if verdict.verdict == "promote_eligible":
        assert verdict.p_better < 0.05
    elif verdict.verdict == "regressed":
        assert verdict.p_worse < 0.05 <= verdict.p_better


def test_mann_whitney_u_statistic_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    new = rng.integers(0, 5, 40).astype(float)  # many ties
    baseline = rng.integers(0, 6, 50).astype(float)
    wins = (new[:, None] > baseline[None, :]).sum() + 0.5 * (
        new[:, None] == baseline[None, :]
    ).sum()
    assert stats.mannwhitneyu(new, baseline, alternative="less").statistic == wins


@settings(max_examples=100, deadline=None)
@given(
    new=st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=50),
    baseline=st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=50),
)
def test_delta_is_difference_of_means(new: list[float], baseline: list[float]) -> None:
    assert canary_delta(new, baseline) == pytest.approx(
        np.mean(new) - np.mean(baseline), rel=1e-9, abs=1e-6
    )


# --- combining metrics ----------------------------------------------------------------


def verdict_of(verdict: Verdict, n: int = 100) -> CanaryVerdict:
    return CanaryVerdict(
        verdict=verdict,
        delta=0.0,
        p_better=None,
        p_worse=None,
        n_new=n,
        n_baseline=n,
        direction=Direction.LOWER_IS_BETTER,
        test=StatisticalTest.MANN_WHITNEY,
        alpha=0.05,
        min_samples=30,
        metric=None,
        reason="",
    )


ELIGIBLE = verdict_of(Verdict.PROMOTE_ELIGIBLE)
HOLD = verdict_of(Verdict.HOLD)
SHORT_HOLD = verdict_of(Verdict.HOLD, n=5)
REGRESSED = verdict_of(Verdict.REGRESSED)


def test_all_eligible_is_eligible() -> None:
    combined = combine_verdicts({"brier": ELIGIBLE, "slippage_rmse": ELIGIBLE})
    assert combined.verdict == "promote_eligible"
    assert combined.eligible == ("brier", "slippage_rmse")


def test_any_regression_regresses() -> None:
    combined = combine_verdicts({"brier": ELIGIBLE, "slippage_rmse": REGRESSED, "fill": HOLD})
    assert combined.verdict == "regressed"
    assert combined.regressed == ("slippage_rmse",)
    assert combined.held == ("fill",)


def test_one_hold_holds_by_default() -> None:
    assert combine_verdicts({"brier": ELIGIBLE, "slippage_rmse": HOLD}).verdict == "hold"


def test_lenient_mode_needs_one_better_and_none_worse_or_unmeasured() -> None:
    lenient = {"require_all_eligible": False}
    assert combine_verdicts({"a": ELIGIBLE, "b": HOLD}, **lenient).verdict == "promote_eligible"
    assert combine_verdicts({"a": ELIGIBLE, "b": SHORT_HOLD}, **lenient).verdict == "hold"
    assert combine_verdicts({"a": HOLD, "b": HOLD}, **lenient).verdict == "hold"
    assert combine_verdicts({"a": ELIGIBLE, "b": REGRESSED}, **lenient).verdict == "regressed"


def test_combining_nothing_raises() -> None:
    with pytest.raises(ValueError, match=r"combine_verdicts needs at least one metric verdict"):
        combine_verdicts({})


def test_end_to_end_leading_metrics() -> None:
    brier = canary_verdict(
        samples_with_mean(0.179, 0.01, 2_000, 1),
        samples_with_mean(0.181, 0.01, 2_000, 2),
        "lower_is_better",
        metric="brier",
    )
    slippage = canary_verdict(
        samples_with_mean(2.0, 0.5, 2_000, 3),
        samples_with_mean(2.5, 0.5, 2_000, 4),
        "lower_is_better",
        metric="slippage_rmse",
    )
    assert combine_verdicts({"brier": brier, "slippage_rmse": slippage}).verdict == (
        "promote_eligible"
    )


# --- non-inferiority (the promotion gate) ------------------------------------------------


def _exact(mean: float, n: int, seed: int, sd: float = 0.05) -> np.ndarray:
    z = np.random.default_rng(seed).normal(0, 1, n)
    return mean + sd * (z - z.mean()) / z.std()


@pytest.mark.parametrize("test", ["welch", "mannwhitney"])
def test_the_seeds_example_is_eligible_as_not_worse(test: str) -> None:
    result = noninferiority_verdict(_exact(0.179, 500, 1), _exact(0.181, 500, 2),
                                    "lower_is_better", margin=0.01, alpha=0.05, test=test)
    assert result.verdict == "promote_eligible"
    assert result.delta == pytest.approx(-0.002)
    assert result.margin == 0.01 and result.p_value == result.p_noninferior < 0.05
    assert result.p_inferior > 0.5


@pytest.mark.parametrize("direction, worse", [("lower_is_better", 0.03),
                                              ("higher_is_better", -0.03)])
def test_worse_beyond_the_margin_is_a_regression(direction: str, worse: float) -> None:
    result = noninferiority_verdict(_exact(0.5 + worse, 500, 3), _exact(0.5, 500, 4),
                                    direction, margin=0.01, test="welch")
    assert result.verdict == "regressed" and result.p_value == result.p_inferior < 0.05


def test_worse_within_the_margin_is_neither_shown_on_few_samples() -> None:
    result = noninferiority_verdict(_exact(0.186, 40, 5), _exact(0.181, 40, 6),
                                    "lower_is_better", margin=0.01, test="welch")
    assert result.verdict == "hold" and "neither shown" in result.reason
    few = noninferiority_verdict([0.1] * 5, [0.2] * 5, "lower_is_better", margin=0.01)
    assert few.verdict == "hold" and few.p_value is None


def test_a_negative_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="margin"):
        noninferiority_verdict([0.1] * 40, [0.1] * 40, "lower_is_better", margin=-0.1)
