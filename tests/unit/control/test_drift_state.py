"""Drift of a model from histogram counts in time buckets: the same KL the maths core
computes on the same samples, an alert above the threshold that only a fresh healthy
evaluation resolves, and state that holds counts, never samples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streams.control import drift
from streams.control.alerts import AlertRule
from streams.maths.drift import feature_drift, histogram_counts
from streams.records import AlertStatus

SCOPE = "model:pricer"
HOP_MS = 3_600_000
WINDOW_MS = 24 * HOP_MS
T0 = 1_790_006_400_000  # a multiple of the hop
EDGES = [-1.0, -0.5, 0.0, 0.5, 1.0]
PROBS = [0.05, 0.15, 0.3, 0.3, 0.15, 0.05]
PROFILE = drift.new_profile(SCOPE, 1, "v2", T0, [("x", EDGES, PROBS), ("y", EDGES, PROBS)])


def sample(rng: np.random.Generator, shift: float = 0.0) -> dict[str, float]:
    return {"x": float(rng.normal(shift, 0.5)), "y": float(rng.normal(0.0, 0.5)), "z": 9.0}


def counts_for(samples: list[dict[str, float]], start: int = T0) -> dict:
    entry = drift.new_counts(SCOPE, 1, PROFILE, start)
    for features in samples:
        drift.add_sample(entry, PROFILE, features)
    return json.loads(json.dumps(entry))


def evaluate(state: dict, entries: list[dict], min_samples: int = 100):
    return drift.evaluate(state, PROFILE, entries, T0 + 10, 0.2, min_samples, 86400.0)


def test_counts_are_the_maths_core_histogram_and_unknown_features_are_ignored() -> None:
    rng = np.random.default_rng(1)
    samples = [sample(rng) for _ in range(300)]
    entry = counts_for(samples)
    assert entry["samples"] == 300 and set(entry["counts"]) == {"x", "y"}
    assert entry["counts"]["x"] == histogram_counts([s["x"] for s in samples], EDGES).tolist()


def test_samples_like_training_are_healthy_and_shifted_ones_drift() -> None:
    rng = np.random.default_rng(2)
    state = drift.new_state(SCOPE, 1)
    healthy = [counts_for([sample(rng) for _ in range(400)])]
    assert evaluate(state, healthy) == []
    assert state["evaluation"]["healthy"] is True
    assert state["evaluation"]["max_drift"] < 0.2

    shifted = [counts_for([sample(rng, shift=1.0) for _ in range(400)], T0 + HOP_MS)]
    [fired] = evaluate(state, shifted)
    expected = feature_drift({k: v for k, v in shifted[0]["counts"].items()},
                             {"x": PROBS, "y": PROBS}, 0.2)
    assert fired.status is AlertStatus.FIRING
    assert fired.condition.reason_code == "RISK_MODEL_DRIFT"
    assert fired.condition.metric == "kl:x"
    assert fired.condition.value == pytest.approx(expected.max_drift)
    assert fired.condition.threshold == 0.2
    assert state["alert_evaluation"]["max_feature"] == "x"
    assert evaluate(state, shifted) == [], "fires once"

    # Too few fresh samples decide nothing: the block stays.
    assert evaluate(state, [counts_for([sample(rng) for _ in range(10)])]) == []
    assert state["alert"] is not None
    [resolved] = evaluate(state, [counts_for([sample(rng) for _ in range(400)])])
    assert resolved.status is AlertStatus.RESOLVED and state["alert"] is None
    assert state["alert_evaluation"]["max_feature"] == "x", "the firing evidence is kept"


def test_counts_of_another_profile_version_are_not_compared() -> None:
    rng = np.random.default_rng(3)
    old = counts_for([sample(rng, shift=2.0) for _ in range(400)])
    old["model_version"] = "v1"
    state = drift.new_state(SCOPE, 1)
    assert evaluate(state, [old]) == [] and state["evaluation"] is None


def test_windows_and_profile_replacement() -> None:
    window = drift.window_buckets(T0 + 5, WINDOW_MS, HOP_MS)
    assert len(window) == 24 and window[-1] == T0 and window[0] == T0 - 23 * HOP_MS
    assert drift.replaces(None, "v1", T0)
    assert not drift.replaces(PROFILE, "v2", T0), "the same profile again"
    assert drift.replaces(PROFILE, "v3", T0 + 1)
    assert not drift.replaces(PROFILE, "v1", T0 - 1), "an older profile"


def test_state_size_does_not_grow_with_samples() -> None:
    rng = np.random.default_rng(4)
    small = len(json.dumps(counts_for([sample(rng) for _ in range(10)])))
    large = len(json.dumps(counts_for([sample(rng) for _ in range(5000)])))
    assert large < small + 40


def test_drift_resolves_below_the_resolve_threshold_after_keep_firing_for() -> None:
    rule = AlertRule(keep_firing_for_ms=60_000, resolve_ratio=0.5)
    rng = np.random.default_rng(5)
    state = drift.new_state(SCOPE, 1)
    shifted = [counts_for([sample(rng, shift=1.0) for _ in range(400)])]
    [fired] = drift.evaluate(state, PROFILE, shifted, T0, 0.2, 100, 86400.0, rule)
    assert fired.status is AlertStatus.FIRING
    calm = [counts_for([sample(rng) for _ in range(400)])]
    between = [counts_for([sample(rng, shift=0.33) for _ in range(400)])]
    assert drift.evaluate(state, PROFILE, between, T0 + 1, 0.2, 100, 86400.0, rule) == []
    assert 0.1 < state["evaluation"]["max_drift"] < 0.2, "healthy, not below 0.5 × 0.2"
    assert drift.evaluate(state, PROFILE, calm, T0 + 2, 0.2, 100, 86400.0, rule) == []
    assert state["evaluation"]["max_drift"] < 0.1
    assert drift.evaluate(state, PROFILE, calm, T0 + 60_001, 0.2, 100, 86400.0, rule) == []
    [resolved] = drift.evaluate(state, PROFILE, calm, T0 + 60_002, 0.2, 100, 86400.0, rule)
    assert resolved.status is AlertStatus.RESOLVED


def test_default_drift_rule_does_not_resolve_when_the_kl_dips_just_under_the_threshold() -> None:
    from streams.control.alerts import rule_from
    from streams.settings import Settings

    rule = rule_from(Settings().alert_rule(drift.DRIFT))
    rng = np.random.default_rng(6)
    state = drift.new_state(SCOPE, 1)
    shifted = [counts_for([sample(rng, shift=1.0) for _ in range(400)])]
    [fired] = drift.evaluate(state, PROFILE, shifted, T0, 0.2, 100, 86400.0, rule)
    assert fired.status is AlertStatus.FIRING
    # a shift entering the window: the estimate wanders just under the threshold
    near = [counts_for([sample(rng, shift=0.32) for _ in range(400)])]
    for step in range(1, 5):
        assert drift.evaluate(state, PROFILE, near, T0 + step * HOP_MS, 0.2, 100,
                              86400.0, rule) == []
        assert 0.16 < state["evaluation"]["max_drift"] < 0.2
