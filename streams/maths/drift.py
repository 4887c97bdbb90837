"""Feature drift: histograms of live features compared with their training histograms.

Histogram layout
----------------
For ``k`` strictly increasing ``edges`` a histogram has ``k + 1`` bins::

    bin 0        (-inf,       edges[0])     underflow
    bin i        [edges[i-1], edges[i])     interior, for i = 1 .. k-1
    bin k        [edges[k-1], +inf)         overflow

Every bin is half-open on the right, so a sample equal to ``edges[-1]`` lands in the
overflow bin (unlike ``numpy.histogram``, whose last bin is closed). ``±inf`` samples
land in the under/overflow bins; NaN samples are rejected.

Smoothing
---------
:func:`kl_divergence` and :func:`psi` accept counts or probabilities (any non-negative
weights). Each input is normalised to sum 1, ``eps`` is added to every bin, and the
result is renormalised::

    p_i = (w_i / Σw + eps) / Σ_j (w_j / Σw + eps)

so an empty training bin never makes the divergence infinite, and counts and the
probabilities derived from them give the same answer. Divergences are in nats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from numbers import Real

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_DRIFT_THRESHOLD",
    "DEFAULT_SMOOTHING_EPS",
    "DriftMetric",
    "DriftReport",
    "feature_drift",
    "histogram",
    "histogram_counts",
    "kl_divergence",
    "psi",
    "smooth_distribution",
]

#: Drift at or above this (in nats) makes a feature unhealthy.
DEFAULT_DRIFT_THRESHOLD = 0.20
#: Probability mass added to every bin before comparing distributions.
DEFAULT_SMOOTHING_EPS = 1e-6


class DriftMetric(StrEnum):
    """Divergence used by :func:`feature_drift`."""

    KL = "kl"  # KL(P_recent ‖ P_training)
    PSI = "psi"  # population stability index, the symmetrised KL


def _as_edges(edges: ArrayLike) -> np.ndarray:
    try:
        edge_array = np.asarray(edges, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"edges must be numeric, got {edges!r}") from None
    if edge_array.ndim != 1 or edge_array.size == 0:
        raise ValueError(f"edges must be a non-empty 1-D array, got shape {edge_array.shape}")
    if not np.isfinite(edge_array).all():
        raise ValueError("edges must be finite")
    steps = np.diff(edge_array)
    if (steps <= 0).any():
        position = int(np.argmax(steps <= 0))
        raise ValueError(
            f"edges must be strictly increasing, but edges[{position}] = {edge_array[position]} "
            f"and edges[{position + 1}] = {edge_array[position + 1]}"
        )
    return edge_array


def histogram_counts(samples: ArrayLike, edges: ArrayLike) -> np.ndarray:
    """Integer counts per bin (length ``len(edges) + 1``, layout in the module docstring).

    Counts, unlike probabilities, can be kept in tables and merged by addition, which
    is what streaming agents need. Raises ``ValueError`` for NaN samples, non-1-D
    input, or edges that are empty, non-finite or not strictly increasing.
    """
    edge_array = _as_edges(edges)
    try:
        sample_array = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"samples must be numeric, got {samples!r}") from None
    if sample_array.ndim != 1:
        raise ValueError(f"samples must be one-dimensional, got shape {sample_array.shape}")
    nan_count = int(np.count_nonzero(np.isnan(sample_array)))
    if nan_count:
        raise ValueError(f"samples contain {nan_count} NaN value(s)")
    # side="right" puts x == edges[i] into bin i + 1, making every bin [lo, hi).
    bin_index = np.searchsorted(edge_array, sample_array, side="right")
    return np.bincount(bin_index, minlength=edge_array.size + 1).astype(np.int64)


def histogram(samples: ArrayLike, edges: ArrayLike) -> np.ndarray | None:
    """Probability per bin (counts / number of samples); ``None`` for no samples.

    Same layout and errors as :func:`histogram_counts`.
    """
    counts = histogram_counts(samples, edges)
    total = int(counts.sum())
    if total == 0:
        return None
    return counts / total


def _check_eps(eps: float) -> None:
    if isinstance(eps, bool) or not isinstance(eps, Real) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")


def _as_weights(name: str, weights: ArrayLike) -> np.ndarray:
    try:
        array = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric, got {weights!r}") from None
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    finite = np.isfinite(array)
    if not finite.all():
        position = int(np.argmin(finite))
        raise ValueError(f"{name} must be finite, got {array[position]} in bin {position}")
    negative = array < 0
    if negative.any():
        position = int(np.argmax(negative))
        raise ValueError(f"{name} must be non-negative, got {array[position]} in bin {position}")
    return array


def smooth_distribution(weights: ArrayLike, eps: float = DEFAULT_SMOOTHING_EPS) -> np.ndarray:
    """Normalise non-negative ``weights`` and add ``eps`` to every bin, renormalised.

    ``p_i = (w_i / Σw + eps) / Σ_j (w_j / Σw + eps)``. Raises ``ValueError`` for
    negative, NaN or infinite weights, all-zero weights, or ``eps <= 0``.
    """
    _check_eps(eps)
    array = _as_weights("weights", weights)
    return _smooth(array, eps, "weights")


def _smooth(array: np.ndarray, eps: float, name: str) -> np.ndarray:
    total = float(array.sum())
    if total == 0.0:
        raise ValueError(f"{name} is all zero: no distribution to compare")
    if not math.isfinite(total):
        raise ValueError(f"{name} sums to {total}, beyond float64")
    smoothed = array / total + eps
    return smoothed / smoothed.sum()


def _smoothed_pair(
    p_recent: ArrayLike, p_training: ArrayLike, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    _check_eps(eps)
    recent = _as_weights("p_recent", p_recent)
    training = _as_weights("p_training", p_training)
    if recent.size != training.size:
        raise ValueError(f"p_recent has {recent.size} bins but p_training has {training.size}")
    return _smooth(recent, eps, "p_recent"), _smooth(training, eps, "p_training")


def kl_divergence(
    p_recent: ArrayLike, p_training: ArrayLike, eps: float = DEFAULT_SMOOTHING_EPS
) -> float:
    """KL(P_recent ‖ P_training) = Σ p·ln(p/q) in nats, after smoothing both sides.

    Equals ``scipy.stats.entropy(p, q)`` on the smoothed histograms (see module
    docstring). Always finite and ``>= 0``; ``KL(p ‖ p) == 0``. Raises ``ValueError``
    for mismatched bin counts (naming both), negative/NaN/all-zero inputs or ``eps <= 0``.
    """
    recent, training = _smoothed_pair(p_recent, p_training, eps)
    # Difference of logs makes KL(p ‖ p) exactly 0; clamp the ~1e-17 rounding below 0.
    divergence = float(np.sum(recent * (np.log(recent) - np.log(training))))
    return max(0.0, divergence)


def psi(p_recent: ArrayLike, p_training: ArrayLike, eps: float = DEFAULT_SMOOTHING_EPS) -> float:
    """Population stability index Σ (p − q)·ln(p/q), smoothed like :func:`kl_divergence`.

    Equals ``KL(p ‖ q) + KL(q ‖ p)``; symmetric and ``>= 0`` (each term is, since
    ``p − q`` and ``ln p − ln q`` share their sign). Same errors as :func:`kl_divergence`.
    """
    recent, training = _smoothed_pair(p_recent, p_training, eps)
    return float(np.sum((recent - training) * (np.log(recent) - np.log(training))))


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Drift of every feature and the worst one.

    Attributes:
        per_feature: drift per feature with recent data, in the input's order.
        max_feature: feature with the largest drift (first one on ties); ``None`` when
            no feature had recent data.
        max_drift: that largest drift, or ``None``.
        healthy: ``max_drift < threshold``; ``None`` when no feature had recent data
            (no data is not the same as no drift).
        threshold: the threshold used.
        metric: ``"kl"`` or ``"psi"``.
        empty_features: features whose recent histogram was all zero (no samples in
            the window), left out of ``per_feature``.
    """

    per_feature: Mapping[str, float]
    max_feature: str | None
    max_drift: float | None
    healthy: bool | None
    threshold: float
    metric: DriftMetric
    empty_features: tuple[str, ...]


def feature_drift(
    recent: Mapping[str, ArrayLike],
    training: Mapping[str, ArrayLike],
    threshold: float = DEFAULT_DRIFT_THRESHOLD,
    eps: float = DEFAULT_SMOOTHING_EPS,
    metric: DriftMetric | str = DriftMetric.KL,
) -> DriftReport:
    """Drift per feature (``KL(recent ‖ training)`` by default, or PSI) and the max.

    ``recent`` and ``training`` map feature name → histogram (counts or probabilities,
    same bin layout per feature). A feature whose recent histogram is all zero had no
    samples in the window: it is listed in ``empty_features`` rather than scored.
    The report is healthy when the largest drift is strictly below ``threshold``
    (e.g. 0.09 < 0.20 is healthy).

    Raises ``ValueError`` when the two mappings name different features (the message
    lists them), when a feature's bin counts differ, when a training histogram is all
    zero, for a NaN or negative threshold, or for an unknown metric.
    """
    try:
        parsed_metric = DriftMetric(metric)
    except ValueError:
        options = ", ".join(repr(member.value) for member in DriftMetric)
        raise ValueError(f"metric must be one of {options}, got {metric!r}") from None
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, Real)
        or math.isnan(threshold)
        or threshold < 0
    ):
        raise ValueError(f"threshold must be a non-negative number, got {threshold!r}")
    _check_eps(eps)
    missing_recent = [name for name in training if name not in recent]
    missing_training = [name for name in recent if name not in training]
    if missing_recent or missing_training:
        raise ValueError(
            f"recent and training must cover the same features: missing from recent "
            f"{missing_recent}, missing from training {missing_training}"
        )

    divergence = kl_divergence if parsed_metric is DriftMetric.KL else psi
    per_feature: dict[str, float] = {}
    empty_features: list[str] = []
    for name, recent_histogram in recent.items():
        try:
            recent_weights = _as_weights("p_recent", recent_histogram)
            if float(recent_weights.sum()) == 0.0:
                empty_features.append(name)
                continue
            per_feature[name] = divergence(recent_weights, training[name], eps)
        except ValueError as error:
            raise ValueError(f"feature {name!r}: {error}") from None

    if not per_feature:
        return DriftReport(
            per_feature=per_feature,
            max_feature=None,
            max_drift=None,
            healthy=None,
            threshold=float(threshold),
            metric=parsed_metric,
            empty_features=tuple(empty_features),
        )
    max_feature = max(per_feature, key=per_feature.__getitem__)
    max_drift = per_feature[max_feature]
    return DriftReport(
        per_feature=per_feature,
        max_feature=max_feature,
        max_drift=max_drift,
        healthy=max_drift < threshold,
        threshold=float(threshold),
        metric=parsed_metric,
        empty_features=tuple(empty_features),
    )
