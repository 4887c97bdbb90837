"""One valid record of every schema: for round-trip and contract tests."""

from __future__ import annotations

from streams.records import (
    AlertPayload,
    AppliedPause,
    AuditPayload,
    DeadLetter,
    EvaluationReference,
    FeatureHistogram,
    FeatureProfile,
    FeatureSample,
    FillBucket,
    FillEvent,
    FillSamples,
    HealthEvent,
    IncidentPayload,
    ModelEvaluation,
    ModelScore,
    MonitorHeartbeat,
    OpsCommand,
    PauseAck,
    PauseState,
    PauseWatermark,
    Record,
    ReevaluationMark,
    ReportEnvelope,
    RolloutState,
    RolloutTransition,
    ScopedFills,
    TimelineEntry,
    TradePayload,
)

T0 = 1_790_000_000_000


def _envelope(payload: AlertPayload | IncidentPayload | AuditPayload | TradePayload,
              **fields: object) -> ReportEnvelope:
    return ReportEnvelope(
        envelope_id=f"env-{type(payload).__name__}", source="agents.health",
        reason_code="RISK_STALE_BOOK", severity="CRITICAL", scope="bot:b1/market:m7",
        dedup_key="market:m7|staleness", observed_time_ms=T0 + 5, event_time_ms=T0,
        config_version="abc123", payload=payload, **fields,  # type: ignore[arg-type]
    )


SAMPLES: dict[str, list[Record]] = {
    "HealthEvent": [
        HealthEvent(event_id="e1", scope="market:m7", kind="DATA_UPDATE", source="book-feed",
                    event_time_ms=T0, feed="book", sequence=42, attributes={"venue": "x"}),
        HealthEvent(event_id="e2", scope="bot:b1", kind="HEARTBEAT", source="bot-b1",
                    event_time_ms=T0, heartbeat_interval_ms=1000),
        HealthEvent(event_id="e3", scope="feed:ingest", kind="SLO_PROBE", source="probe",
                    event_time_ms=T0, slo="ingest-latency", owner="ingestion", healthy=False),
    ],
    "FillEvent": [
        FillEvent(event_id="f1", market="m7", bot="b1", kind="FILL", order_id="o1",
                  event_time_ms=T0, requested_size=10.0, filled_size=7.5,
                  predicted_slippage_bps=3.0, realized_slippage_bps=4.25, cohort="CANARY",
                  model="m", model_version="v2"),
    ],
    "ScopedFills": [
        ScopedFills(scope="bot:b1", buckets=[
            FillBucket(start_ms=T0, last_event_ms=T0 + 40, intents=1, fills=2, requested=20.0,
                       filled=17.5, slipped=2, error_sum=1.25, error_sq_sum=1.5625)],
            samples=[]),
        ScopedFills(scope="model:m", buckets=[
            FillBucket(start_ms=T0, cohort="CANARY", last_event_ms=T0, intents=0, fills=1,
                       requested=10.0, filled=7.5, slipped=1, error_sum=1.25,
                       error_sq_sum=1.5625)],
            samples=[FillSamples(cohort="CANARY", model_version="v2", event_ids=["f1", "f2"],
                                 event_times_ms=[T0, T0 + 5],
                                 slippage_abs_error_bps=[1.25, 0.5], fill_ratios=[0.75, 1.0]),
                     FillSamples(cohort="BASELINE", event_ids=["f3"], event_times_ms=[T0],
                                 slippage_abs_error_bps=[0.0], fill_ratios=[0.5])]),
    ],
    "ModelScore": [
        ModelScore(event_id="s1", model="pricer", model_version="v2", cohort="CANARY",
                   metric="brier", value=0.179, prediction_id="p1", event_time_ms=T0),
    ],
    "FeatureSample": [
        FeatureSample(event_id="x1", model="pricer", model_version="v2", event_time_ms=T0,
                      features={"spread": 0.02, "depth": 1500.0}),
    ],
    "FeatureProfile": [
        FeatureProfile(model="pricer", model_version="v2", created_time_ms=T0, features=[
            FeatureHistogram(name="spread", bin_edges=[0.0, 0.01, 0.05],
                             probabilities=[0.0, 0.6, 0.4, 0.0]),
        ]),
    ],
    "OpsCommand": [
        OpsCommand(command_id="c1", scope="market:m7", action="PAUSE", actor="alice",
                   reason="manual check", issued_time_ms=T0),
        OpsCommand(command_id="c2", scope="model:pricer", action="EVALUATE", actor="alice",
                   reason="offline backtest passed", target="v2", issued_time_ms=T0,
                   evaluation=EvaluationReference(evaluation_id="eval-7", passed=True)),
    ],
    "ModelEvaluation": [
        ModelEvaluation(scope="model:pricer", model_version="v2", evaluation_id="eval-7",
                        passed=True, metrics={"brier": 0.179}, evaluator="stage10",
                        event_time_ms=T0),
    ],
    "ReportEnvelope": [
        _envelope(AlertPayload(status="FIRING", metric="stale_s", value=4.6, threshold=2.0,
                               window_s=None, message="book stale")),
        _envelope(IncidentPayload(incident_id="inc-1", state="ACKNOWLEDGED",
                                  reason_family="staleness", opened_time_ms=T0, timeline=[
                                      TimelineEntry(time_ms=T0, what="opened", actor="polymon"),
                                      TimelineEntry(time_ms=T0 + 9, what="acknowledged",
                                                    actor="alice", ref="c1"),
                                  ])),
        _envelope(AuditPayload(action="pause", actor="polymon", decision="paused",
                               before='{"paused": false}', after='{"paused": true}',
                               evidence={"stale_s": "4.6"}),
                  trace_id="4bf92f3577b34da6a3ce929d0e0e4736", cause_span_id="00f067aa0ba902b7",
                  cause_events=["health.events/2@99"]),
        _envelope(TradePayload(order_id="o-1", runner_id="r1", side="BUY", size=10.0, price=0.42,
                               filled_size=4.0, fill_price=0.43, model_version="v2")),
    ],
    "PauseState": [
        PauseState(scope="market:m7", paused=True, reason_code="RISK_STALE_BOOK", since_ms=T0,
                   cause_id="env-1", policy="AUTO_CLEAR", actor="agents.health",
                   updated_ms=T0, state_id="p-1"),
        PauseState(scope="market:m8", paused=True, reason_code="RISK_STALE_BOOK", since_ms=T0,
                   cause_id="env-2", policy="LATCH", actor="agents.health", updated_ms=T0,
                   state_id="p-2", trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
                   cause_span_id="00f067aa0ba902b7", cause_events=["health.events/2@99"]),
    ],
    "PauseAck": [
        PauseAck(runner_id="r1", runner_version="polymon-0.1.0", guard_state="READY",
                 sent_ms=T0, watermarks=[PauseWatermark(partition=0, offset=17)],
                 applied=[AppliedPause(scope="market:m7", state_id="p-1", paused=True,
                                       updated_ms=T0, applied_ms=T0 + 40)]),
    ],
    "RolloutState": [
        RolloutState(scope="model:pricer", stage="CANARY", model_version="v2", updated_ms=T0,
                     history=[RolloutTransition(from_stage=None, to_stage="REPLAY", time_ms=T0,
                                                actor="alice", reason="new", decision_id="d1"),
                              RolloutTransition(from_stage="PAPER", to_stage="CANARY",
                                                time_ms=T0, actor="alice", reason="gates ok",
                                                decision_id="d2"),
                              RolloutTransition(from_stage="CANARY", to_stage="CANARY",
                                                time_ms=T0, actor="agents.rollout",
                                                reason="drift", decision_id="d3",
                                                event="reevaluation_required", ref="a1")],
                     reevaluation=ReevaluationMark(model_version="v2", since_ms=T0,
                                                   alert_id="a1", reason="drift")),
    ],
    "MonitorHeartbeat": [
        MonitorHeartbeat(worker_id="w1", time_ms=T0, started_ms=T0 - 1000, version="0.1.0",
                         events_processed=12),
    ],
    "DeadLetter": [
        DeadLetter(source_topic="health.events", source_partition=2, source_offset=99,
                   source_timestamp_ms=T0, key=b"market:m7", value=b"\x00\xff garbage",
                   stage="DECODE", error="magic byte", worker_id="w1", dead_lettered_ms=T0),
    ],
}
