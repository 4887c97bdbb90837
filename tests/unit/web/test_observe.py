"""The operator gauges: bounded labels (scope kinds, feeds, states), worst-case values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.web import observe


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_gauges_aggregate_by_kind_and_never_label_a_market() -> None:
    metrics = Metrics(CollectorRegistry())
    health = [
        (f"market:m{i}", {"partition": 0, "heartbeat": None, "feeds": {
            "book": {"last_event_ms": 10_000 - i * 1000, "alert": None, "highest": 9,
                     "count": 9 - i, "gaps": {"outstanding": [1] * i, "lost": 0}}}})
        for i in range(5)
    ] + [("bot:b1", {"partition": 0, "feeds": {},
                     "heartbeat": {"last_event_ms": 8_000, "interval_ms": 500}})]
    incidents = [{"state": "OPEN", "severity": "CRITICAL", "reason_family": "staleness",
                  "opened_ms": 0},
                 {"state": "OPEN", "severity": "CRITICAL", "reason_family": "staleness",
                  "opened_ms": 0, "acknowledged_ms": 4000},
                 {"state": "RESOLVED", "severity": "WARNING", "reason_family": "execution",
                  "opened_ms": 0, "resolved_ms": 90_000}]
    observe.refresh(
        metrics, now_ms=10_000, scope_health=health, threshold_s=lambda s, f: 2.0,
        miss_factor=3.0, pauses={"market:m1": {"paused": True}, "bot:b1": {"paused": False}},
        incidents=incidents, rollout={"model:x": {"stage": "CANARY"},
                                      "model:y": {"stage": "PAPER", "reevaluation": {
                                          "model_version": "v2", "since_ms": 1,
                                          "alert_id": "a1", "reason": "drift"}}},
        execution_state=[("market:m1", {"figures": {"tumbling": {
            "fill_ratio": 0.5, "slippage_mean_error_bps": -3.0, "slippage_rmse_bps": 7.0}}}),
            ("market:m2", {"figures": {"tumbling": {"fill_ratio": 0.9}}}),
            ("model:x#CANARY", {"figures": {"tumbling": {"fill_ratio": 0.1}}})],
        drift_state=[("model:x", {"evaluation": {"max_drift": 0.09}})],
        canary_state=[("model:x", {"evaluation": {
            "metrics": {"brier": {"delta": -0.002}},
            "baseline_delta": {"brier": {"delta": 0.004}, "fill_ratio": {"delta": None}}}})],
    )
    assert sample(metrics, "polymon_feed_staleness_seconds", scope_kind="market",
                  feed="book") == 4.0
    assert sample(metrics, "polymon_feeds_stale", scope_kind="market", feed="book") == 2
    assert sample(metrics, "polymon_feed_missing_sequence_numbers", scope_kind="market",
                  feed="book") == 10
    assert sample(metrics, "polymon_heartbeat_age_seconds", scope_kind="bot") == 2.0
    assert sample(metrics, "polymon_heartbeats_missed", scope_kind="bot") == 1
    assert sample(metrics, "polymon_incidents_open", state="OPEN", severity="CRITICAL") == 2
    assert sample(metrics, "polymon_incidents_open", state="ACKNOWLEDGED",
                  severity="WARNING") == 0
    assert sample(metrics, "polymon_incident_time_to_acknowledge_seconds",
                  family="staleness", stat="max") == 4.0
    assert sample(metrics, "polymon_incident_time_to_resolve_seconds",
                  family="execution", stat="mean") == 90.0
    assert sample(metrics, "polymon_incident_time_to_resolve_seconds",
                  family="staleness", stat="mean") is None, "none resolved"
    assert sample(metrics, "polymon_scopes_paused", scope_kind="market") == 1
    assert sample(metrics, "polymon_rollout_stage", scope="model:x") == 3
    assert sample(metrics, "polymon_fill_ratio", scope_kind="market", stat="min") == 0.5
    assert sample(metrics, "polymon_fill_ratio", scope_kind="market", stat="mean") == 0.7
    assert sample(metrics, "polymon_fill_ratio", scope_kind="model", stat="min") is None
    assert sample(metrics, "polymon_slippage_error_bps", scope_kind="market",
                  stat="abs_mean_max") == 3.0
    assert sample(metrics, "polymon_drift_kl", model="model:x") == 0.09
    assert sample(metrics, "polymon_canary_delta", model="model:x", metric="brier") == -0.002
    assert sample(metrics, "polymon_baseline_delta", model="model:x", metric="brier") == 0.004
    assert sample(metrics, "polymon_baseline_delta", model="model:x",
                  metric="fill_ratio") is None, "no figure before a previous window"
    assert sample(metrics, "polymon_rollout_reevaluation_required", scope="model:y") == 1
    assert sample(metrics, "polymon_rollout_reevaluation_required", scope="model:x") == 0
    text = metrics.render().decode()
    assert "market:m1" not in text, "no series per market"

    # A scrape after the scopes went away drops their series.
    observe.refresh(metrics, now_ms=10_000, scope_health=[], threshold_s=lambda s, f: 2.0,
                    miss_factor=3.0, pauses={}, incidents=[], rollout={})
    assert sample(metrics, "polymon_feeds_stale", scope_kind="market", feed="book") is None


def test_slo_gauges_sum_the_scopes_of_an_slo_by_owner_and_window() -> None:
    metrics = Metrics(CollectorRegistry())

    def slo(scope: str, healthy: int, total: int) -> tuple[str, dict]:
        window = {"healthy": healthy, "total": total}
        burning = healthy / total < 0.995
        rules = [{"name": "ticket_burn", "severity": "ticket", "firing": burning},
                 {"name": "page_fast_burn", "severity": "page", "firing": False}]
        return (f"{scope}|ingestion", {"scope": scope, "slo": "ingestion", "owner": "team-data",
                                       "status": {"target": 0.995, "budget_window_s": 259200,
                                                  "windows": {"259200": window},
                                                  "rules": rules}})

    observe.refresh(metrics, now_ms=0, scope_health=[], threshold_s=lambda s, f: 2.0,
                    miss_factor=3.0, pauses={}, incidents=[], rollout={},
                    slo_windows=[slo("market:m1", 59_440, 60_000),
                                 slo("market:m2", 40_000, 40_000)])
    labels = {"slo": "ingestion", "owner": "team-data", "window": "259200"}
    assert sample(metrics, "polymon_slo_compliance", **labels) == 0.9944
    assert round(sample(metrics, "polymon_slo_burn_rate", **labels), 9) == 1.12
    assert round(sample(metrics, "polymon_slo_error_budget_remaining", **labels), 9) == -0.12
    owner = {"slo": "ingestion", "owner": "team-data"}
    assert sample(metrics, "polymon_slo_rule_firing", **owner, rule="ticket_burn",
                  severity="ticket") == 1, "one of the two scopes burns"
    assert sample(metrics, "polymon_slo_rule_firing", **owner, rule="page_fast_burn",
                  severity="page") == 0
    assert "market:m1" not in metrics.render().decode(), "no scope label"


def test_runner_gauges_per_runner_and_none_for_a_runner_that_never_acknowledged() -> None:
    metrics = Metrics(CollectorRegistry())
    observe.runners(metrics, {
        "r1": {"lag_s": 4.5, "lag_records": 2, "last_ack_age_s": 0.3},
        "r2": {"lag_s": None, "lag_records": None, "last_ack_age_s": None}})
    assert sample(metrics, "polymon_runner_pause_lag_seconds", runner="r1") == 4.5
    assert sample(metrics, "polymon_runner_pause_lag_records", runner="r1") == 2
    assert sample(metrics, "polymon_runner_ack_age_seconds", runner="r1") == 0.3
    assert sample(metrics, "polymon_runner_ack_age_seconds", runner="r2") is None
    observe.runners(metrics, {})  # a runner judged elsewhere now: its series go
    assert sample(metrics, "polymon_runner_pause_lag_seconds", runner="r1") is None
