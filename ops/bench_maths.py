"""Micro-benchmark of streams.maths: events per second on large windows.

Usage::

    python ops/bench_maths.py [--n 1000000] [--repeat 3] [--calls 100000] [--seed 20240601]

Two kinds of rows:

- ``window``: one call processes a whole window of ``n`` events (e.g. 1e6 request
  outcomes, fills, samples or sequence numbers), including the numpy reduction a
  runner would do first (e.g. counting healthy requests before ``slo_compliance``).
  events/s = events in the window / seconds per call.
- ``per-call``: scalar functions an agent calls once per event or per evaluation;
  timed over ``--calls`` Python-level calls. events/s = calls / seconds.

Each row reports the best of ``--repeat`` runs (time.perf_counter), which is the
least noisy estimate of the achievable rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Runnable as a plain script from a checkout, without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.maths.canary import canary_delta, canary_verdict
from streams.maths.drift import (
    feature_drift,
    histogram,
    histogram_counts,
    kl_divergence,
    psi,
)
from streams.maths.execution import fill_ratio, slippage_error
from streams.maths.freshness import (
    GapTracker,
    count_gaps,
    is_stale,
    stale_duration,
)
from streams.maths.slo import burn_rate, multiwindow_burn, slo_compliance

SLO_TARGET = 0.995
FEATURE_COUNT = 10


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    kind: str  # "window" or "per-call"
    events: int
    run: Callable[[], object]


def best_seconds(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def sequence_window(rng: np.random.Generator, n: int) -> np.ndarray:
    """0..n-1 with ~0.1 % dropped, ~0.1 % duplicated and ~1 % locally reordered."""
    numbers = np.arange(n, dtype=np.int64)
    numbers = numbers[rng.random(n) >= 0.001]
    duplicates = rng.choice(numbers, size=numbers.size // 1000)
    arrival_keys = np.concatenate([numbers, duplicates]).astype(np.float64)
    late = rng.random(arrival_keys.size) < 0.01
    arrival_keys[late] += rng.uniform(1.0, 50.0, int(late.sum()))
    return np.concatenate([numbers, duplicates])[np.argsort(arrival_keys, kind="stable")]


def build_cases(n: int, calls: int, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)

    outcomes = rng.random(n) < 0.996  # True = healthy request

    def slo_from_outcomes() -> object:
        return slo_compliance(int(np.count_nonzero(outcomes)), outcomes.size)

    def burn_from_outcomes() -> object:
        return burn_rate(int(np.count_nonzero(outcomes)), outcomes.size, SLO_TARGET)

    healthy_counts = rng.integers(9_900, 10_001, calls).tolist()

    def slo_per_call() -> object:
        return [slo_compliance(healthy, 10_000) for healthy in healthy_counts]

    def burn_per_call() -> object:
        return [burn_rate(healthy, 10_000, SLO_TARGET) for healthy in healthy_counts]

    windows = {
        3600: (99_000, 100_000),
        300: (8_000, 8_300),
        21600: (598_000, 600_000),
        1800: (49_800, 50_000),
        259200: (7_190_000, 7_200_000),
    }
    multiwindow_calls = max(1, calls // 10)

    def multiwindow_per_call() -> object:
        return [multiwindow_burn(windows, SLO_TARGET) for _ in range(multiwindow_calls)]

    now = 1_700_000_000.0
    last_updates = (now - rng.exponential(1.5, calls)).tolist()
    durations = rng.exponential(1.5, calls).tolist()

    def stale_duration_per_call() -> object:
        return [stale_duration(now, last_update) for last_update in last_updates]

    def is_stale_per_call() -> object:
        return [is_stale(duration, 2.0) for duration in durations]

    sequence_numbers = sequence_window(rng, n)
    tracked_numbers = sequence_numbers[:calls].tolist()

    def gap_tracker_per_call() -> object:
        tracker = GapTracker()
        for number in tracked_numbers:
            tracker.observe(number)
        return tracker

    requested = rng.integers(1, 1_000, n).astype(np.float64)
    filled = np.floor(requested * rng.uniform(0.0, 1.0, n))
    predicted_bps = rng.gamma(2.0, 1.5, n)
    realized_bps = predicted_bps + rng.normal(0.2, 1.0, n)

    brier_new = rng.beta(2.0, 9.0, n)
    brier_baseline = rng.beta(2.0, 8.9, n)

    edges = np.linspace(-3.0, 3.0, 21)
    recent_samples = rng.normal(0.1, 1.0, n)
    training_probs = histogram(rng.normal(0.0, 1.0, n), edges)
    per_feature_samples = np.array_split(rng.normal(0.05, 1.0, n), FEATURE_COUNT)
    training_by_feature = {f"feature_{i}": training_probs for i in range(FEATURE_COUNT)}
    wide_recent = rng.random(n)
    wide_training = rng.random(n)

    def drift_over_features() -> object:
        recent = {
            f"feature_{i}": histogram_counts(samples, edges)
            for i, samples in enumerate(per_feature_samples)
        }
        return feature_drift(recent, training_by_feature)

    return [
        Case("slo_compliance (count + ratio)", "window", n, slo_from_outcomes),
        Case("burn_rate (count + ratio)", "window", n, burn_from_outcomes),
        Case("slo_compliance", "per-call", calls, slo_per_call),
        Case("burn_rate", "per-call", calls, burn_per_call),
        Case("multiwindow_burn (3 rules)", "per-call", multiwindow_calls, multiwindow_per_call),
        Case("stale_duration", "per-call", calls, stale_duration_per_call),
        Case("is_stale", "per-call", calls, is_stale_per_call),
        Case("count_gaps", "window", sequence_numbers.size, lambda: count_gaps(sequence_numbers)),
        Case("GapTracker.observe", "per-call", len(tracked_numbers), gap_tracker_per_call),
        Case("fill_ratio", "window", n, lambda: fill_ratio(filled, requested)),
        Case("slippage_error", "window", n, lambda: slippage_error(predicted_bps, realized_bps)),
        Case("canary_delta", "window", 2 * n, lambda: canary_delta(brier_new, brier_baseline)),
        Case(
            "canary_verdict (mannwhitney)",
            "window",
            2 * n,
            lambda: canary_verdict(brier_new, brier_baseline, "lower_is_better"),
        ),
        Case(
            "canary_verdict (welch)",
            "window",
            2 * n,
            lambda: canary_verdict(brier_new, brier_baseline, "lower_is_better", test="welch"),
        ),
        Case(
            "histogram_counts (22 bins)",
            "window",
            n,
            lambda: histogram_counts(recent_samples, edges),
        ),
        Case("histogram (22 bins)", "window", n, lambda: histogram(recent_samples, edges)),
        Case(
            "histogram_counts + kl_divergence",
            "window",
            n,
            lambda: kl_divergence(histogram_counts(recent_samples, edges), training_probs),
        ),
        Case(
            "histogram_counts + psi",
            "window",
            n,
            lambda: psi(histogram_counts(recent_samples, edges), training_probs),
        ),
        Case(
            f"histogram_counts + feature_drift ({FEATURE_COUNT} feat.)",
            "window",
            n,
            drift_over_features,
        ),
        Case(
            f"kl_divergence ({n}-bin)",
            "window",
            n,
            lambda: kl_divergence(wide_recent, wide_training),
        ),
        Case(f"psi ({n}-bin)", "window", n, lambda: psi(wide_recent, wide_training)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="events per window")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; best is kept")
    parser.add_argument(
        "--calls", type=int, default=100_000, help="Python-level calls for per-call cases"
    )
    parser.add_argument("--seed", type=int, default=20240601, help="random seed for the data")
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeat < 1 or args.calls < 1:
        parser.error("--n, --repeat and --calls must be positive")

    cases = build_cases(args.n, args.calls, args.seed)
    name_width = max(len(case.name) for case in cases)
    header = f"{'function':<{name_width}}  {'kind':<8}  {'n':>10}  {'seconds':>9}  {'events/s':>12}"
    print(f"streams.maths micro-benchmark: n={args.n:,}, best of {args.repeat}, seed={args.seed}")
    print(header)
    print("-" * len(header))
    for case in cases:
        seconds = best_seconds(case.run, args.repeat)
        rate = case.events / seconds if seconds > 0 else float("inf")
        print(
            f"{case.name:<{name_width}}  {case.kind:<8}  {case.events:>10,}  "
            f"{seconds:>9.6f}  {rate:>12,.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
