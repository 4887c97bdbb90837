"""Prometheus gauges of the operator views, computed on every scrape from this worker's
tables and its read model. Labels stay bounded: scope kinds, feed kinds, states,
severities, and model/strategy scopes (few); never one series per market or bot."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from streams.control.health import gap_counts
from streams.control.incidents import response_times
from streams.metrics import Metrics
from streams.web.api import STAGES, scope_kind


def refresh(metrics: Metrics, *, now_ms: int, scope_health: Iterable[tuple[str, Any]],
            threshold_s: Any, miss_factor: float, pauses: Mapping[str, Mapping[str, Any]],
            incidents: Iterable[Mapping[str, Any]],
            rollout: Mapping[str, Mapping[str, Any]],
            execution_state: Iterable[tuple[str, Any]] = (),
            drift_state: Iterable[tuple[str, Any]] = (),
            canary_state: Iterable[tuple[str, Any]] = (),
            slo_windows: Iterable[tuple[str, Any]] = ()) -> None:
    staleness: dict[tuple[str, str], float] = {}
    stale: dict[tuple[str, str], int] = defaultdict(int)
    missing: dict[tuple[str, str], int] = defaultdict(int)
    beat_age: dict[str, float] = {}
    missed: dict[str, int] = defaultdict(int)
    for scope, state in scope_health:
        if not state:
            continue
        kind = scope_kind(scope)
        for feed, entry in (state.get("feeds") or {}).items():
            label = (kind, feed)
            age_s = max(0, now_ms - entry["last_event_ms"]) / 1000
            staleness[label] = max(staleness.get(label, 0.0), age_s)
            stale[label] += int(age_s > threshold_s(scope, feed))
            missing[label] += gap_counts(entry)["missing"]
        beat = state.get("heartbeat")
        if beat:
            age_s = max(0, now_ms - beat["last_event_ms"]) / 1000
            beat_age[kind] = max(beat_age.get(kind, 0.0), age_s)
            missed[kind] += int(age_s > beat["interval_ms"] * miss_factor / 1000)
    for gauge, values in ((metrics.feed_staleness, staleness), (metrics.feeds_stale, stale),
                          (metrics.feed_missing, missing)):
        gauge.clear()
        for (kind, feed), value in values.items():
            gauge.labels(kind, feed).set(value)
    metrics.heartbeat_age.clear()
    metrics.heartbeats_missed.clear()
    for kind, value in beat_age.items():
        metrics.heartbeat_age.labels(kind).set(value)
        metrics.heartbeats_missed.labels(kind).set(missed[kind])

    metrics.incidents_open.clear()
    for state_name in ("OPEN", "ACKNOWLEDGED"):
        for severity in ("INFO", "WARNING", "CRITICAL"):
            metrics.incidents_open.labels(state_name, severity).set(0)
    for incident in incidents:
        if incident["state"] != "RESOLVED":
            metrics.incidents_open.labels(incident["state"], incident["severity"]).inc()

    _response_times(metrics, incidents)

    metrics.scopes_paused.clear()
    paused: dict[str, int] = defaultdict(int)
    for scope, pause in pauses.items():
        paused[scope_kind(scope)] += int(bool(pause.get("paused")))
    for kind, count in paused.items():
        metrics.scopes_paused.labels(kind).set(count)

    metrics.rollout_stage.clear()
    metrics.rollout_reevaluation_required.clear()
    for scope, state in rollout.items():
        metrics.rollout_stage.labels(scope).set(STAGES.index(state["stage"]))
        metrics.rollout_reevaluation_required.labels(scope).set(
            int(state.get("reevaluation") is not None))

    _execution(metrics, execution_state)
    _models(metrics, drift_state, canary_state)
    _slos(metrics, slo_windows)


def runners(metrics: Metrics, rows: Mapping[str, Mapping[str, Any]]) -> None:
    """Per runner (GET /api/runners of this worker): lag and acknowledgement age; a runner
    that never acknowledged has no series."""
    gauges = (metrics.runner_pause_lag_seconds, metrics.runner_pause_lag_records,
              metrics.runner_ack_age)
    for gauge in gauges:
        gauge.clear()
    for runner, row in rows.items():
        for gauge, field in zip(gauges, ("lag_s", "lag_records", "last_ack_age_s"),
                                strict=True):
            if row.get(field) is not None:
                gauge.labels(runner).set(row[field])


def _response_times(metrics: Metrics, incidents: Iterable[Mapping[str, Any]]) -> None:
    """Time to acknowledge and to resolve per reason family (a fixed, small set)."""
    for gauge in (metrics.incident_time_to_acknowledge, metrics.incident_time_to_resolve):
        gauge.clear()
    for family, row in response_times(list(incidents)).items():
        for gauge, figures in ((metrics.incident_time_to_acknowledge,
                                row["time_to_acknowledge_s"]),
                               (metrics.incident_time_to_resolve, row["time_to_resolve_s"])):
            for stat, value in (figures or {}).items():
                gauge.labels(family, stat).set(value)


def _execution(metrics: Metrics, execution_state: Iterable[tuple[str, Any]]) -> None:
    """Fill ratio and slippage error of the tumbling window (the first window), worst and
    mean per scope kind; model cohorts (``model:<id>#COHORT``) are the canary's business."""
    ratios: dict[str, list[float]] = defaultdict(list)
    worst_mean: dict[str, float] = {}
    worst_rmse: dict[str, float] = {}
    for key, state in execution_state:
        if not state or "#" in key:
            continue
        figures = next(iter((state.get("figures") or {}).values()), None)
        if not figures:
            continue
        kind = scope_kind(key)
        if figures.get("fill_ratio") is not None:
            ratios[kind].append(float(figures["fill_ratio"]))
        if figures.get("slippage_mean_error_bps") is not None:
            worst_mean[kind] = max(worst_mean.get(kind, 0.0),
                                   abs(float(figures["slippage_mean_error_bps"])))
        if figures.get("slippage_rmse_bps") is not None:
            worst_rmse[kind] = max(worst_rmse.get(kind, 0.0), float(figures["slippage_rmse_bps"]))
    metrics.fill_ratio.clear()
    for kind, values in ratios.items():
        metrics.fill_ratio.labels(kind, "min").set(min(values))
        metrics.fill_ratio.labels(kind, "mean").set(sum(values) / len(values))
    metrics.slippage_error.clear()
    for kind, value in worst_mean.items():
        metrics.slippage_error.labels(kind, "abs_mean_max").set(value)
    for kind, value in worst_rmse.items():
        metrics.slippage_error.labels(kind, "rmse_max").set(value)


def _slos(metrics: Metrics, slo_windows: Iterable[tuple[str, Any]]) -> None:
    """Per (SLO, owner, window): the counts of every scope of the SLO summed (labels stay
    bounded: no scope label), then compliance, burn rate and the budget left; per rule,
    on how many of the SLO's scopes it fires."""
    slo_windows = list(slo_windows)
    sums: dict[tuple[str, str, str], list[float]] = {}
    targets: dict[str, float] = {}
    longest: dict[str, str] = {}
    for _, state in slo_windows:
        status = (state or {}).get("status")
        if not status:
            continue
        slo, owner = state["slo"], state.get("owner") or "unknown"
        targets[slo] = status["target"]
        longest[slo] = str(status["budget_window_s"])
        for window, figures in status["windows"].items():
            cell = sums.setdefault((slo, owner, window), [0, 0])
            cell[0] += figures["healthy"]
            cell[1] += figures["total"]
    firing: dict[tuple[str, str, str, str], int] = {}
    for _, state in slo_windows:
        status = (state or {}).get("status")
        for rule in (status or {}).get("rules") or ():
            cell = (state["slo"], state.get("owner") or "unknown", rule["name"],
                    rule["severity"])
            firing[cell] = firing.get(cell, 0) + bool(rule["firing"])
    for gauge in (metrics.slo_compliance, metrics.slo_burn_rate, metrics.slo_budget_remaining,
                  metrics.slo_rule_firing):
        gauge.clear()
    for labels, count in firing.items():
        metrics.slo_rule_firing.labels(*labels).set(count)
    for (slo, owner, window), (healthy, total) in sums.items():
        if not total:
            continue
        allowed = 1 - targets[slo]
        metrics.slo_compliance.labels(slo, owner, window).set(healthy / total)
        metrics.slo_burn_rate.labels(slo, owner, window).set((total - healthy) / total / allowed)
        if window == longest[slo]:
            metrics.slo_budget_remaining.labels(slo, owner, window).set(
                1 - (total - healthy) / (allowed * total))


def _models(metrics: Metrics, drift_state: Iterable[tuple[str, Any]],
            canary_state: Iterable[tuple[str, Any]]) -> None:
    metrics.drift.clear()
    for scope, state in drift_state:
        evaluation = (state or {}).get("evaluation") or {}
        if evaluation.get("max_drift") is not None:
            metrics.drift.labels(scope).set(float(evaluation["max_drift"]))
    metrics.canary_delta.clear()
    metrics.baseline_delta.clear()
    for scope, state in canary_state:
        evaluation = (state or {}).get("evaluation") or {}
        for metric, figures in (evaluation.get("metrics") or {}).items():
            if figures.get("delta") is not None:
                metrics.canary_delta.labels(scope, metric).set(float(figures["delta"]))
        for metric, figures in (evaluation.get("baseline_delta") or {}).items():
            if figures.get("delta") is not None:
                metrics.baseline_delta.labels(scope, metric).set(float(figures["delta"]))
