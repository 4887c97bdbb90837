"""Prometheus metrics of one worker, on their own CollectorRegistry (so tests and
several apps in one process never collide)."""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events_processed = Counter(
            "polymon_events_processed_total", "Input events decoded, validated and processed",
            ["topic"], registry=self.registry,
        )
        self.dead_letters = Counter(
            "polymon_dead_letters_total", "Input messages sent to the dead-letter topic",
            ["topic", "stage"], registry=self.registry,
        )
        self.trace_context_invalid = Counter(
            "polymon_trace_context_invalid_total",
            "Input trace context headers ignored (malformed, oversized, zero ids); the "
            "records themselves were processed", ["reason"], registry=self.registry,
        )
        self.worker_up = Gauge(
            "polymon_worker_up", "1 while this worker runs", registry=self.registry,
        )
        # --- operator views (streams/web/observe.py sets these on every scrape). Labels
        # stay bounded: scope kinds and feed kinds, never one series per market; models
        # and rollout scopes are few. Per-worker views (its partitions): aggregate with
        # max()/sum() across workers; global views (incidents, pauses, rollout) are the
        # same on every worker: aggregate with max().
        self.feed_staleness = Gauge(
            "polymon_feed_staleness_seconds",
            "Largest time since a feed's last update, per scope kind and feed (this worker)",
            ["scope_kind", "feed"], registry=self.registry,
        )
        self.feeds_stale = Gauge(
            "polymon_feeds_stale", "Feeds older than their staleness threshold (this worker)",
            ["scope_kind", "feed"], registry=self.registry,
        )
        self.feed_missing = Gauge(
            "polymon_feed_missing_sequence_numbers",
            "Sequence numbers missing (gaps) summed over scopes (this worker)",
            ["scope_kind", "feed"], registry=self.registry,
        )
        self.heartbeat_age = Gauge(
            "polymon_heartbeat_age_seconds",
            "Largest time since a scope's last heartbeat, per scope kind (this worker)",
            ["scope_kind"], registry=self.registry,
        )
        self.heartbeats_missed = Gauge(
            "polymon_heartbeats_missed",
            "Scopes whose heartbeat is older than interval x miss factor (this worker)",
            ["scope_kind"], registry=self.registry,
        )
        self.fill_ratio = Gauge(
            "polymon_fill_ratio", "Fill ratio (filled/requested): min and mean over scopes",
            ["scope_kind", "stat"], registry=self.registry,
        )
        self.slippage_error = Gauge(
            "polymon_slippage_error_bps",
            "Slippage error realized - predicted (bps): worst |mean| and worst RMSE over scopes",
            ["scope_kind", "stat"], registry=self.registry,
        )
        self.drift = Gauge(
            "polymon_drift_kl", "Largest KL(recent || training) over a model's features",
            ["model"], registry=self.registry,
        )
        self.canary_delta = Gauge(
            "polymon_canary_delta", "mean(canary) - mean(baseline) per model and metric",
            ["model", "metric"], registry=self.registry,
        )
        self.baseline_delta = Gauge(
            "polymon_baseline_delta", "the live model (baseline cohort) against its own "
            "baseline window: mean over the last decided canary window - mean over the "
            "window before it, per model and leading metric", ["model", "metric"],
            registry=self.registry,
        )
        self.slo_compliance = Gauge(
            "polymon_slo_compliance", "healthy / total probes per SLO and window (every scope "
            "of the SLO)", ["slo", "owner", "window"], registry=self.registry,
        )
        self.slo_burn_rate = Gauge(
            "polymon_slo_burn_rate", "error-budget burn rate (1 - compliance) / (1 - target) "
            "per SLO and window", ["slo", "owner", "window"], registry=self.registry,
        )
        self.slo_budget_remaining = Gauge(
            "polymon_slo_error_budget_remaining", "error budget left over the SLO's longest "
            "window (1 - errors / allowed errors; < 0 when spent)", ["slo", "owner", "window"],
            registry=self.registry,
        )
        self.slo_rule_firing = Gauge(
            "polymon_slo_rule_firing", "scopes of the SLO on which the burn rule fires (rules "
            "and severities are the settings')", ["slo", "owner", "rule", "severity"],
            registry=self.registry,
        )
        self.incidents_open = Gauge(
            "polymon_incidents_open", "Incidents not yet resolved, by state and severity",
            ["state", "severity"], registry=self.registry,
        )
        self.incident_time_to_acknowledge = Gauge(
            "polymon_incident_time_to_acknowledge_seconds",
            "Seconds from an incident's opening to its acknowledgement, per reason family "
            "(stat: count, mean, p50, p90, max of the incidents acknowledged)",
            ["family", "stat"], registry=self.registry,
        )
        self.incident_time_to_resolve = Gauge(
            "polymon_incident_time_to_resolve_seconds",
            "Seconds from an incident's opening to its resolution, per reason family "
            "(stat: count, mean, p50, p90, max of the incidents resolved)",
            ["family", "stat"], registry=self.registry,
        )
        self.scopes_paused = Gauge(
            "polymon_scopes_paused", "Scopes paused on control.pauses, per scope kind",
            ["scope_kind"], registry=self.registry,
        )
        self.rollout_stage = Gauge(
            "polymon_rollout_stage",
            "Rollout stage per model/strategy scope: 0 replay, 1 shadow, 2 paper, 3 canary, "
            "4 live", ["scope"], registry=self.registry,
        )
        self.rollout_reevaluation_required = Gauge(
            "polymon_rollout_reevaluation_required",
            "1 while the scope's model version is REEVALUATION_REQUIRED (drift; promotions "
            "refused until an evaluation of the version passes), else 0", ["scope"],
            registry=self.registry,
        )
        # per runner (few): its PauseGuard's acknowledgements (streams.agents.pause_acks)
        self.runner_pause_lag_seconds = Gauge(
            "polymon_runner_pause_lag_seconds",
            "Age of the oldest control.pauses state the runner has not acknowledged (0: "
            "none; this worker's runners)", ["runner"], registry=self.registry,
        )
        self.runner_pause_lag_records = Gauge(
            "polymon_runner_pause_lag_records",
            "control.pauses records past the runner's acknowledged watermarks (this "
            "worker's runners)", ["runner"], registry=self.registry,
        )
        self.runner_ack_age = Gauge(
            "polymon_runner_ack_age_seconds",
            "Time since the runner's last pause acknowledgement (this worker's runners)",
            ["runner"], registry=self.registry,
        )
        self.group_members_evicted = Counter(
            "polymon_group_members_evicted_total", "dead consumer-group members made to leave",
            registry=self.registry,
        )
        self.operator_commands = Counter(
            "polymon_operator_commands_total",
            "Operator commands through the HTTP API, by action and outcome",
            ["action", "outcome"], registry=self.registry,
        )
        self.api_requests = Counter(
            "polymon_api_requests_total", "HTTP API requests by route template and status",
            ["method", "route", "status"], registry=self.registry,
        )

    # kept up to date as events are processed; every other series is computed from the
    # tables on a scrape (streams/web/observe.py)
    LIVE_SERIES = frozenset({"polymon_events_processed_total", "polymon_dead_letters_total",
                             "polymon_worker_up", "polymon_group_members_evicted_total"})

    def render(self, names: Collection[str] = ()) -> bytes:
        """The exposition text; only the series in ``names`` when given (Prometheus'
        ``name[]`` query parameter)."""
        if names:
            return generate_latest(self.registry.restricted_registry(names))
        return generate_latest(self.registry)
