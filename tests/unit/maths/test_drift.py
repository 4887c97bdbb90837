from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from streams.maths.drift import (
    DEFAULT_DRIFT_THRESHOLD,
    DriftMetric,
    feature_drift,
    histogram,
    histogram_counts,
    kl_divergence,
    psi,
    smooth_distribution,
)

# --- histograms -----------------------------------------------------------------------


def test_histogram_layout_with_under_and_overflow() -> None:
    edges = [0.0, 1.0, 2.0]
    samples = [-5.0, -math.inf, 0.0, 0.5, 1.0, 1.99, 2.0, 7.0, math.inf]
    # underflow (-inf, 0), [0, 1), [1, 2), overflow [2, inf)
    counts = histogram_counts(samples, edges)
    assert counts.tolist() == [2, 2, 2, 3]
    assert counts.dtype == np.int64
    probabilities = histogram(samples, edges)
    assert probabilities is not None
    assert probabilities.tolist() == pytest.approx([2 / 9, 2 / 9, 2 / 9, 3 / 9])


def test_single_edge_gives_two_bins() -> None:
    assert histogram_counts([0.0, 1.0, 2.0], [1.0]).tolist() == [1, 2]


def test_interior_bins_match_numpy_histogram() -> None:
    rng = np.random.default_rng(0)
    samples = rng.normal(size=10_000)
    edges = np.linspace(-2.0, 2.0, 9)
    counts = histogram_counts(samples, edges)
    inside = samples[(samples >= edges[0]) & (samples < edges[-1])]
    expected, _ = np.histogram(inside, bins=edges)
    assert counts[1:-1].tolist() == expected.tolist()
    assert counts[0] == np.count_nonzero(samples < edges[0])
    assert counts[-1] == np.count_nonzero(samples >= edges[-1])


def test_counts_merge_by_addition() -> None:
    edges = [0.0, 0.5, 1.0]
    first, second = [0.1, 0.7, 2.0], [0.2, -1.0]
    merged = histogram_counts(first, edges) + histogram_counts(second, edges)
    assert merged.tolist() == histogram_counts(first + second, edges).tolist()


def test_empty_samples() -> None:
    assert histogram_counts([], [0.0, 1.0]).tolist() == [0, 0, 0]
    assert histogram([], [0.0, 1.0]) is None


@pytest.mark.parametrize(
    ("samples", "edges", "message"),
    [
        ([1.0, math.nan, math.nan], [0.0, 1.0], r"samples contain 2 NaN value\(s\)"),
        ([1.0], [0.0, 1.0, 1.0], r"edges must be strictly increasing, but edges\[1\] = 1.0"),
        ([1.0], [2.0, 1.0], r"edges must be strictly increasing, but edges\[0\] = 2.0"),
        ([1.0], [], r"edges must be a non-empty 1-D array"),
        ([1.0], [0.0, math.inf], r"edges must be finite"),
        ([[1.0]], [0.0], r"samples must be one-dimensional"),
    ],
)
def test_histogram_bad_input(samples: list[float], edges: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        histogram_counts(samples, edges)


# --- KL and PSI -----------------------------------------------------------------------


def test_smoothing_formula() -> None:
    eps = 1e-3
    smoothed = smooth_distribution([3.0, 1.0, 0.0], eps)
    raw = np.array([0.75, 0.25, 0.0])
    assert smoothed.tolist() == pytest.approx(((raw + eps) / (1 + 3 * eps)).tolist())


def test_empty_training_bin_is_finite() -> None:
    divergence = kl_divergence([0.5, 0.5], [1.0, 0.0])
    assert math.isfinite(divergence)
    assert divergence > 1.0
    assert math.isfinite(psi([0.5, 0.5], [1.0, 0.0]))


def test_counts_and_probabilities_agree() -> None:
    counts_recent, counts_training = np.array([30, 50, 20]), np.array([100, 300, 600])
    assert kl_divergence(counts_recent, counts_training) == pytest.approx(
        kl_divergence(counts_recent / 100, counts_training / 1000), rel=1e-12
    )


def test_kl_is_directional() -> None:
    p, q = [0.9, 0.1], [0.5, 0.5]
    assert kl_divergence(p, q) != pytest.approx(kl_divergence(q, p))
    assert kl_divergence(p, q) == pytest.approx(
        stats.entropy(smooth_distribution(p), smooth_distribution(q))
    )


@pytest.mark.parametrize("divergence", [kl_divergence, psi])
@pytest.mark.parametrize(
    ("recent", "training", "eps", "message"),
    [
        ([0.5, 0.5], [0.2, 0.3, 0.5], 1e-6, r"p_recent has 2 bins but p_training has 3"),
        ([0.5, -0.1], [0.5, 0.5], 1e-6, r"p_recent must be non-negative, got -0.1 in bin 1"),
        ([0.5, 0.5], [math.nan, 0.5], 1e-6, r"p_training must be finite, got nan in bin 0"),
        ([0.0, 0.0], [0.5, 0.5], 1e-6, r"p_recent is all zero"),
        ([0.5, 0.5], [0.0, 0.0], 1e-6, r"p_training is all zero"),
        ([], [], 1e-6, r"p_recent must be a non-empty 1-D array"),
        ([0.5, 0.5], [0.5, 0.5], 0.0, r"eps must be a positive finite number, got 0.0"),
        ([0.5, 0.5], [0.5, 0.5], math.nan, r"eps must be a positive finite number"),
    ],
)
def test_divergence_bad_input(
    divergence: object, recent: list[float], training: list[float], eps: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        divergence(recent, training, eps)  # type: ignore[operator]


distributions = st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=1, max_size=30).filter(
    lambda weights: sum(weights) > 0
)
eps_values = st.sampled_from([1e-9, 1e-6, 1e-3])


@st.composite
def distribution_pairs(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    first = draw(distributions)
    size = len(first)
    second = draw(
        st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=size, max_size=size).filter(
            lambda weights: sum(weights) > 0
        )
    )
    return first, second


@settings(max_examples=200, deadline=None)
@given(pair=distribution_pairs(), eps=eps_values)
def test_kl_and_psi_agree_with_scipy_entropy(
    pair: tuple[list[float], list[float]], eps: float
) -> None:
    recent, training = pair
    p, q = smooth_distribution(recent, eps), smooth_distribution(training, eps)
    assert kl_divergence(recent, training, eps) == pytest.approx(
        stats.entropy(p, q), rel=1e-9, abs=1e-12
    )
    assert psi(recent, training, eps) == pytest.approx(
        stats.entropy(p, q) + stats.entropy(q, p), rel=1e-9, abs=1e-12
    )


@settings(max_examples=200, deadline=None)
@given(pair=distribution_pairs(), eps=eps_values)
def test_kl_non_negative_psi_symmetric_non_negative(
    pair: tuple[list[float], list[float]], eps: float
) -> None:
    recent, training = pair
    assert kl_divergence(recent, training, eps) >= 0.0
    assert psi(recent, training, eps) >= 0.0
    assert psi(recent, training, eps) == psi(training, recent, eps)


@settings(max_examples=200, deadline=None)
@given(weights=distributions, eps=eps_values)
def test_divergence_of_a_distribution_with_itself_is_zero(weights: list[float], eps: float) -> None:
    assert kl_divergence(weights, weights, eps) == 0.0
    assert psi(weights, weights, eps) == 0.0


# --- feature drift --------------------------------------------------------------------


TRAINING = {"spread": np.array([0.25, 0.25, 0.25, 0.25])}


def test_seed_example_drift_009_is_healthy() -> None:
    # 1,000 recent samples; KL(recent ‖ uniform training) = 0.0901 nats.
    recent = {"spread": np.array([440, 220, 180, 160])}
    report = feature_drift(recent, TRAINING)
    assert report.max_drift is not None
    assert round(report.max_drift, 2) == 0.09
    assert report.max_drift < DEFAULT_DRIFT_THRESHOLD == 0.20
    assert report.healthy is True
    assert report.max_feature == "spread"
    assert report.metric == DriftMetric.KL


def test_drift_over_threshold_is_unhealthy_and_names_the_worst_feature() -> None:
    training = {**TRAINING, "volume": np.array([0.7, 0.2, 0.1])}
    recent = {"spread": np.array([440, 220, 180, 160]), "volume": np.array([10, 20, 70])}
    report = feature_drift(recent, training)
    assert report.max_feature == "volume"
    assert report.per_feature["volume"] == pytest.approx(
        kl_divergence([10, 20, 70], [0.7, 0.2, 0.1])
    )
    assert report.max_drift == report.per_feature["volume"] > 0.20
    assert report.healthy is False


def test_drift_exactly_at_threshold_is_unhealthy() -> None:
    recent = {"spread": np.array([440, 220, 180, 160])}
    drift = kl_divergence(recent["spread"], TRAINING["spread"])
    assert feature_drift(recent, TRAINING, threshold=drift).healthy is False


def test_psi_metric() -> None:
    recent = {"spread": np.array([440, 220, 180, 160])}
    report = feature_drift(recent, TRAINING, metric="psi")
    assert report.metric == DriftMetric.PSI
    assert report.max_drift == pytest.approx(psi(recent["spread"], TRAINING["spread"]))


def test_feature_without_recent_samples_is_reported_not_scored() -> None:
    training = {**TRAINING, "volume": np.array([0.7, 0.2, 0.1])}
    report = feature_drift({"spread": [440, 220, 180, 160], "volume": [0, 0, 0]}, training)
    assert report.empty_features == ("volume",)
    assert set(report.per_feature) == {"spread"}
    assert report.healthy is True

    report = feature_drift({"spread": [0, 0, 0, 0]}, TRAINING)
    assert (report.max_feature, report.max_drift, report.healthy) == (None, None, None)


def test_mismatched_features_raise_naming_them() -> None:
    with pytest.raises(
        ValueError, match=r"missing from recent \['spread'\], missing from training \['depth'\]"
    ):
        feature_drift({"depth": [1, 2]}, TRAINING)


def test_feature_errors_name_the_feature() -> None:
    with pytest.raises(
        ValueError, match=r"feature 'spread': p_recent has 3 bins but p_training has 4"
    ):
        feature_drift({"spread": [1, 2, 3]}, TRAINING)
    with pytest.raises(ValueError, match=r"feature 'spread': p_training is all zero"):
        feature_drift({"spread": [1, 2, 3, 4]}, {"spread": [0, 0, 0, 0]})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": math.nan}, r"threshold must be a non-negative number"),
        ({"threshold": -0.1}, r"threshold must be a non-negative number"),
        ({"metric": "js"}, r"metric must be one of 'kl', 'psi', got 'js'"),
        ({"eps": -1.0}, r"eps must be a positive finite number"),
    ],
)
def test_feature_drift_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        feature_drift({"spread": [1, 1, 1, 1]}, TRAINING, **kwargs)  # type: ignore[arg-type]


def test_end_to_end_from_samples() -> None:
    rng = np.random.default_rng(11)
    edges = np.linspace(-3, 3, 13)
    training = {"x": histogram(rng.normal(size=50_000), edges)}
    same = feature_drift({"x": histogram_counts(rng.normal(size=20_000), edges)}, training)
    shifted = feature_drift({"x": histogram_counts(rng.normal(1.0, size=20_000), edges)}, training)
    assert same.healthy is True and same.max_drift is not None and same.max_drift < 0.01
    assert shifted.healthy is False
