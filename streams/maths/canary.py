"""Canary analysis: is the new model or strategy better, worse, or not yet known?

Each leading metric (e.g. per-forecast Brier score, per-fill slippage error) is
compared between the canary (``new``) and the ``baseline`` with a one-sided test.
Whether higher or lower is better is explicit (:class:`Direction`): for Brier score
and slippage RMSE lower is better.

Two gates:

- :func:`noninferiority_verdict` (the promotion gate): with a per-metric ``margin``, the
  canary is ``promote_eligible`` when a one-sided test shows it *not worse* than the
  baseline by the margin or more (H0: worse by ≥ margin), ``regressed`` when a
  one-sided test shows it worse by more than the margin (H0: worse by ≤ margin), else
  ``hold`` (too few samples, or neither shown).
- :func:`canary_verdict` (superiority): ``promote_eligible`` when significantly better
  at level ``alpha``, ``regressed`` when significantly worse, else ``hold``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from numbers import Real

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_SAMPLES",
    "CanaryVerdict",
    "CombinedVerdict",
    "Direction",
    "StatisticalTest",
    "Verdict",
    "canary_delta",
    "canary_verdict",
    "combine_verdicts",
    "noninferiority_verdict",
]

DEFAULT_ALPHA = 0.05
#: Fewer samples than this on either side always holds: rank tests on a handful of
#: points are too easily fooled by one lucky hour.
DEFAULT_MIN_SAMPLES = 30


class Direction(StrEnum):
    """Which way a metric improves."""

    LOWER_IS_BETTER = "lower_is_better"
    HIGHER_IS_BETTER = "higher_is_better"

    @classmethod
    def parse(cls, value: Direction | str) -> Direction:
        """A :class:`Direction` from itself or its string value; ``ValueError`` otherwise."""
        try:
            return cls(value)
        except ValueError:
            options = ", ".join(repr(member.value) for member in cls)
            raise ValueError(f"direction must be one of {options}, got {value!r}") from None

    def is_improvement(self, delta: float) -> bool:
        """Whether ``delta = mean(new) − mean(baseline)`` points the better way."""
        return delta < 0 if self is Direction.LOWER_IS_BETTER else delta > 0


class Verdict(StrEnum):
    """Outcome of a canary comparison; compares equal to its string value."""

    PROMOTE_ELIGIBLE = "promote_eligible"
    HOLD = "hold"
    REGRESSED = "regressed"


class StatisticalTest(StrEnum):
    """One-sided two-sample tests available to :func:`canary_verdict`."""

    MANN_WHITNEY = "mannwhitney"  # rank test: robust to the skew of per-sample losses
    WELCH = "welch"  # t-test on means with unequal variances

    @classmethod
    def parse(cls, value: StatisticalTest | str) -> StatisticalTest:
        """A :class:`StatisticalTest` from itself or its string value."""
        try:
            return cls(value)
        except ValueError:
            options = ", ".join(repr(member.value) for member in cls)
            raise ValueError(f"test must be one of {options}, got {value!r}") from None


def _as_finite_samples(name: str, values: ArrayLike) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric, got {values!r}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    finite = np.isfinite(array)
    if not finite.all():
        position = int(np.argmin(finite))
        raise ValueError(f"{name} must be finite, got {array[position]} at index {position}")
    return array


def canary_delta(new: ArrayLike, baseline: ArrayLike) -> float | None:
    """``mean(new) − mean(baseline)``; ``None`` when either side is empty.

    Example: Brier 0.179 on the canary versus 0.181 on the baseline gives −0.002,
    an improvement since lower Brier is better.
    """
    new_samples = _as_finite_samples("new", new)
    baseline_samples = _as_finite_samples("baseline", baseline)
    if new_samples.size == 0 or baseline_samples.size == 0:
        return None
    return float(new_samples.mean() - baseline_samples.mean())


@dataclass(frozen=True, slots=True)
class CanaryVerdict:
    """Result of :func:`canary_verdict` for one metric.

    Attributes:
        verdict: promote_eligible, hold or regressed.
        delta: ``mean(new) − mean(baseline)``; ``None`` if a side is empty.
        p_better: one-sided p-value for "new is better"; ``None`` if not tested
            (too few samples).
        p_worse: one-sided p-value for "new is worse"; ``None`` if not tested.
        n_new, n_baseline: sample sizes.
        direction, test, alpha, min_samples: the settings used.
        metric: optional metric name, carried through for reports.
        reason: one line explaining the verdict, fit for an alert or a log.
    """

    verdict: Verdict
    delta: float | None
    p_better: float | None
    p_worse: float | None
    n_new: int
    n_baseline: int
    direction: Direction
    test: StatisticalTest
    alpha: float
    min_samples: int
    metric: str | None
    reason: str
    margin: float | None = None  # set by noninferiority_verdict
    p_noninferior: float | None = None  # H1: not worse by the margin or more
    p_inferior: float | None = None  # H1: worse by more than the margin

    @property
    def p_value(self) -> float | None:
        """The p-value behind the verdict: of the non-inferiority test unless regressed
        (then of the inferiority test); None when not tested."""
        if self.margin is None:
            return self.p_worse if self.verdict == Verdict.REGRESSED else self.p_better
        return self.p_inferior if self.verdict == Verdict.REGRESSED else self.p_noninferior

    @property
    def sufficient_samples(self) -> bool:
        """Whether both sides had at least ``min_samples`` samples."""
        return min(self.n_new, self.n_baseline) >= self.min_samples

    @property
    def delta_is_better(self) -> bool | None:
        """Whether the mean moved the better way (significant or not)."""
        return None if self.delta is None else self.direction.is_improvement(self.delta)


def _one_sided_p_values(
    new: np.ndarray, baseline: np.ndarray, direction: Direction, test: StatisticalTest
) -> tuple[float, float]:
    """(p for "new is better", p for "new is worse") under ``direction``."""
    # scipy's alternative="less" means new is stochastically smaller than baseline.
    better, worse = (
        ("less", "greater") if direction is Direction.LOWER_IS_BETTER else ("greater", "less")
    )
    if test is StatisticalTest.MANN_WHITNEY:
        p_better = stats.mannwhitneyu(new, baseline, alternative=better).pvalue
        p_worse = stats.mannwhitneyu(new, baseline, alternative=worse).pvalue
    else:
        p_better = stats.ttest_ind(new, baseline, equal_var=False, alternative=better).pvalue
        p_worse = stats.ttest_ind(new, baseline, equal_var=False, alternative=worse).pvalue
    # Welch's t is 0/0 when both samples are constant and equal: no evidence either way.
    return (
        1.0 if math.isnan(p_better) else float(p_better),
        1.0 if math.isnan(p_worse) else float(p_worse),
    )


def canary_verdict(
    new: ArrayLike,
    baseline: ArrayLike,
    direction: Direction | str,
    alpha: float = DEFAULT_ALPHA,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    test: StatisticalTest | str = StatisticalTest.MANN_WHITNEY,
    metric: str | None = None,
) -> CanaryVerdict:
    """Compare canary samples with baseline samples of one metric.

    Args:
        new, baseline: per-sample metric values (e.g. per-forecast Brier scores).
        direction: ``"lower_is_better"`` or ``"higher_is_better"`` (or a :class:`Direction`).
        alpha: significance level of each one-sided test, in (0, 0.5] so that "better"
            and "worse" cannot both be significant.
        min_samples: fewer samples than this on either side gives ``hold``.
        test: ``"mannwhitney"`` (default; ``scipy.stats.mannwhitneyu`` with its default
            method and continuity correction) or ``"welch"`` (``scipy.stats.ttest_ind``
            with ``equal_var=False``).
        metric: optional name, carried into the result.

    Decision: too few samples → hold; else p_better < alpha → promote_eligible; else
    p_worse < alpha → regressed; else hold.

    Raises ``ValueError`` for NaN/inf samples, non-1-D input, an unknown direction or
    test, ``alpha`` outside (0, 0.5] or ``min_samples < 1``.
    """
    parsed_direction = Direction.parse(direction)
    parsed_test = StatisticalTest.parse(test)
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0.0 < alpha <= 0.5:
        raise ValueError(f"alpha must be in (0, 0.5], got {alpha!r}")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise ValueError(f"min_samples must be an int >= 1, got {min_samples!r}")
    new_samples = _as_finite_samples("new", new)
    baseline_samples = _as_finite_samples("baseline", baseline)
    n_new, n_baseline = int(new_samples.size), int(baseline_samples.size)
    delta = canary_delta(new_samples, baseline_samples)

    def verdict_of(
        verdict: Verdict, reason: str, p_better: float | None = None, p_worse: float | None = None
    ) -> CanaryVerdict:
        return CanaryVerdict(
            verdict=verdict,
            delta=delta,
            p_better=p_better,
            p_worse=p_worse,
            n_new=n_new,
            n_baseline=n_baseline,
            direction=parsed_direction,
            test=parsed_test,
            alpha=float(alpha),
            min_samples=min_samples,
            metric=metric,
            reason=reason,
        )

    if min(n_new, n_baseline) < min_samples:
        return verdict_of(
            Verdict.HOLD,
            f"not enough samples: new has {n_new}, baseline has {n_baseline}, "
            f"need {min_samples} each",
        )
    p_better, p_worse = _one_sided_p_values(
        new_samples, baseline_samples, parsed_direction, parsed_test
    )
    if p_better < alpha:
        return verdict_of(
            Verdict.PROMOTE_ELIGIBLE,
            f"new is better ({parsed_test}: p={p_better:.3g} < {alpha})",
            p_better,
            p_worse,
        )
    if p_worse < alpha:
        return verdict_of(
            Verdict.REGRESSED,
            f"new is worse ({parsed_test}: p={p_worse:.3g} < {alpha})",
            p_better,
            p_worse,
        )
    return verdict_of(
        Verdict.HOLD,
        f"no significant difference ({parsed_test}: p_better={p_better:.3g}, "
        f"p_worse={p_worse:.3g}, alpha={alpha})",
        p_better,
        p_worse,
    )


def noninferiority_verdict(
    new: ArrayLike,
    baseline: ArrayLike,
    direction: Direction | str,
    margin: float,
    alpha: float = DEFAULT_ALPHA,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    test: StatisticalTest | str = StatisticalTest.MANN_WHITNEY,
    metric: str | None = None,
) -> CanaryVerdict:
    """Non-inferiority of the canary on one metric, with ``margin`` (>= 0, in the
    metric's unit): how much worse than the baseline still counts as "not worse".

    Both one-sided tests compare the canary with the baseline shifted by the margin the
    worse way (a location shift; Welch: on means): ``p_noninferior`` for "the canary is
    better than baseline + margin" (lower is better) and ``p_inferior`` for "worse than
    baseline + margin". Decision: too few samples → hold; ``p_noninferior < alpha`` →
    promote_eligible; ``p_inferior < alpha`` → regressed; else hold. The superiority
    p-values (``p_better``, ``p_worse``, margin 0) are reported alongside.

    Example (the seed's): Brier 0.179 on the canary against 0.181, delta −0.002, margin
    0.01: eligible once the samples make −0.002 significantly below +0.01.
    """
    parsed_direction = Direction.parse(direction)
    if (isinstance(margin, bool) or not isinstance(margin, Real) or not math.isfinite(margin)
            or margin < 0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    plain = canary_verdict(new, baseline, parsed_direction, alpha, min_samples, test, metric)
    fields = {name: getattr(plain, name) for name in CanaryVerdict.__slots__}
    fields["margin"] = float(margin)
    if not plain.sufficient_samples:
        fields["reason"] = plain.reason
        return CanaryVerdict(**fields)
    worse = 1.0 if parsed_direction is Direction.LOWER_IS_BETTER else -1.0
    shifted = _as_finite_samples("baseline", baseline) + worse * float(margin)
    p_noninferior, p_inferior = _one_sided_p_values(
        _as_finite_samples("new", new), shifted, parsed_direction, plain.test)
    fields.update(p_noninferior=p_noninferior, p_inferior=p_inferior)
    delta = "n/a" if plain.delta is None else f"{plain.delta:+.6g}"
    if p_noninferior < alpha:
        fields.update(verdict=Verdict.PROMOTE_ELIGIBLE,
                      reason=f"not worse by {margin:g} or more (delta {delta}, {plain.test}: "
                      f"p={p_noninferior:.3g} < {alpha})")
    elif p_inferior < alpha:
        fields.update(verdict=Verdict.REGRESSED,
                      reason=f"worse by more than {margin:g} (delta {delta}, {plain.test}: "
                      f"p={p_inferior:.3g} < {alpha})")
    else:
        fields.update(verdict=Verdict.HOLD,
                      reason=f"neither shown (delta {delta}, margin {margin:g}, {plain.test}: "
                      f"p_noninferior={p_noninferior:.3g}, p_inferior={p_inferior:.3g}, "
                      f"alpha={alpha})")
    return CanaryVerdict(**fields)


@dataclass(frozen=True, slots=True)
class CombinedVerdict:
    """Verdict across several leading metrics, with the metric names behind it."""

    verdict: Verdict
    eligible: tuple[str, ...]
    held: tuple[str, ...]
    regressed: tuple[str, ...]


def combine_verdicts(
    verdicts: Mapping[str, CanaryVerdict], require_all_eligible: bool = True
) -> CombinedVerdict:
    """Combine per-metric verdicts: a canary is eligible only when no metric is worse.

    - any metric ``regressed`` → ``regressed``;
    - ``require_all_eligible=True`` (default): ``promote_eligible`` only when every
      metric is ``promote_eligible``, else ``hold``;
    - ``require_all_eligible=False``: ``promote_eligible`` when at least one metric is
      eligible and every other metric is a ``hold`` with enough samples (no significant
      difference), else ``hold``.

    Raises ``ValueError`` for an empty mapping.
    """
    if not verdicts:
        raise ValueError("combine_verdicts needs at least one metric verdict")
    eligible = tuple(name for name, v in verdicts.items() if v.verdict == Verdict.PROMOTE_ELIGIBLE)
    held = tuple(name for name, v in verdicts.items() if v.verdict == Verdict.HOLD)
    regressed = tuple(name for name, v in verdicts.items() if v.verdict == Verdict.REGRESSED)

    if regressed:
        combined = Verdict.REGRESSED
    elif require_all_eligible:
        combined = Verdict.PROMOTE_ELIGIBLE if not held else Verdict.HOLD
    else:
        all_measured = all(verdicts[name].sufficient_samples for name in held)
        combined = Verdict.PROMOTE_ELIGIBLE if eligible and all_measured else Verdict.HOLD
    return CombinedVerdict(verdict=combined, eligible=eligible, held=held, regressed=regressed)
