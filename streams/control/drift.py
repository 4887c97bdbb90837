"""Model drift of one model scope: live feature samples binned on the training profile's
edges, summed over a hopping window, compared with KL(recent ‖ training) per feature.

Pure: plain dicts in and out, time passed in. Memory is bounded by design: a sample
only increments one histogram bin per feature in its time bucket (one bucket per hop),
so the state is buckets × features × bins counts, never raw samples.

The drift alert (RISK_MODEL_DRIFT) fires when the largest per-feature KL reaches the
threshold and resolves only when a later evaluation, on at least ``min_samples``
samples of the current window against the current profile, is healthy: "blocks every
promotion until a fresh evaluation passes". A window with too few samples decides
nothing and leaves the alert as it was. Through the rule's hysteresis (``rule``): a
breach fires after its ``for``; the alert resolves once the KL has stayed below
``resolve_ratio`` × the threshold for its ``keep_firing_for``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from streams.control.alerts import (
    BETWEEN,
    BREACH,
    CLEAR,
    AlertRule,
    AlertTransition,
    Condition,
    hysteresis,
    step_alert,
)
from streams.maths.drift import feature_drift, histogram_counts

DRIFT = "RISK_MODEL_DRIFT"


def new_profile(scope: str, partition: int, model_version: str, created_ms: int,
                features: Iterable[tuple[str, list[float], list[float]]]) -> dict[str, Any]:
    """A training profile: per feature its bin edges and bin probabilities."""
    return {"scope": scope, "partition": partition, "model_version": model_version,
            "created_ms": created_ms,
            "features": {name: {"edges": list(edges), "probabilities": list(probs)}
                         for name, edges, probs in features}}


def replaces(current: Mapping[str, Any] | None, model_version: str, created_ms: int) -> bool:
    """Whether a profile (version, creation time) supersedes the one held."""
    if current is None:
        return True
    if current["model_version"] == model_version and current["created_ms"] == created_ms:
        return False  # the same profile again (compacted topic, re-delivery)
    return created_ms >= current["created_ms"]


def bucket_start(time_ms: int, hop_ms: int) -> int:
    return time_ms - time_ms % hop_ms


def window_buckets(now_ms: int, window_ms: int, hop_ms: int) -> list[int]:
    """Bucket starts of the hopping window that contains ``now_ms`` (oldest first)."""
    end = bucket_start(now_ms, hop_ms) + hop_ms
    return list(range(end - window_ms, end, hop_ms))


def counts_key(scope: str, model_version: str, start_ms: int) -> str:
    return f"{scope}|{model_version}|{start_ms}"


def new_counts(scope: str, partition: int, profile: Mapping[str, Any],
               start_ms: int) -> dict[str, Any]:
    return {"scope": scope, "partition": partition, "model_version": profile["model_version"],
            "start_ms": start_ms, "samples": 0,
            "counts": {name: [0] * len(f["probabilities"])
                       for name, f in profile["features"].items()}}


def add_sample(counts: dict[str, Any], profile: Mapping[str, Any],
               features: Mapping[str, float]) -> None:
    """Bin one sample's features on the profile's edges; features the profile does not
    know are ignored, profile features missing from the sample get no count."""
    counts["samples"] += 1
    for name, spec in profile["features"].items():
        if name in features:
            counts["counts"][name][_bin(features[name], spec["edges"])] += 1


def _bin(value: float, edges: list[float]) -> int:
    return int(np.argmax(histogram_counts([value], edges)))


def new_state(scope: str, partition: int) -> dict[str, Any]:
    return {"scope": scope, "partition": partition, "alert": None, "evaluation": None,
            "alert_evaluation": None}


_NO_RULE = AlertRule()


def evaluate(state: dict[str, Any], profile: Mapping[str, Any],
             window: Iterable[Mapping[str, Any]], now_ms: int, threshold: float,
             min_samples: int, window_s: float,
             rule: AlertRule = _NO_RULE) -> list[AlertTransition]:
    """Drift of the window's counts (entries of the profile's version) against the profile."""
    version = profile["model_version"]
    recent = {name: np.zeros(len(f["probabilities"]), dtype=np.int64)
              for name, f in profile["features"].items()}
    samples = 0
    for entry in window:
        if entry["model_version"] != version:
            continue
        samples += entry["samples"]
        for name, counts in entry["counts"].items():
            if name in recent and len(counts) == recent[name].size:
                recent[name] += np.asarray(counts, dtype=np.int64)
    if samples < min_samples:
        return []
    training = {name: f["probabilities"] for name, f in profile["features"].items()}
    report = feature_drift(recent, training, threshold)
    if report.healthy is None:
        return []
    assert report.max_feature is not None and report.max_drift is not None
    state["evaluation"] = {
        "model_version": version, "samples": samples, "evaluated_ms": now_ms,
        "threshold": threshold, "window_s": window_s, "healthy": report.healthy,
        "max_feature": report.max_feature, "max_drift": report.max_drift,
        "per_feature": dict(report.per_feature),
    }
    verdict = "healthy" if report.healthy else "drifted"
    judged = (BREACH if not report.healthy else
              CLEAR if report.max_drift < threshold * rule.resolve_ratio else BETWEEN)
    edge = hysteresis(state.setdefault("track", {}), state["alert"] is not None, judged, rule,
                      now_ms)
    if edge is None:
        return []
    condition = Condition(
        scope=state["scope"], subject="features", reason_code=DRIFT,
        firing=edge == "fire", metric=f"kl:{report.max_feature}",
        value=report.max_drift, threshold=threshold, window_s=window_s,
        cause=f"{version}@{bucket_start(now_ms, int(window_s * 1000))}",
        event_time_ms=now_ms,
        message=(f"{verdict}: max KL(recent ‖ training) {report.max_drift:.4f} on feature "
                 f"{report.max_feature!r} (threshold {threshold:g}) over {samples} samples "
                 f"in {window_s:g}s, profile {version}"),
    )
    state["alert"], transition = step_alert(state["alert"], condition)
    if transition and condition.firing:
        state["alert_evaluation"] = state["evaluation"]
    return [transition] if transition else []
