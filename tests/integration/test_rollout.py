"""The rollout gatekeeper on the real broker with a real worker: a model enters the ladder
with its training profile, walks replay → live by commands through the gates, drift
blocks promotion, a canary regression rolls back on its own; every decision audited."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import numpy as np
import pytest

from streams.maths.drift import feature_drift, histogram_counts
from streams.records import (
    AlertStatus,
    AuditPayload,
    Cohort,
    DeadLetterStage,
    EvaluationReference,
    FeatureHistogram,
    FeatureProfile,
    FeatureSample,
    HealthEvent,
    HealthEventKind,
    ModelEvaluation,
    ModelScore,
    OpsAction,
    OpsCommand,
    ReportEnvelope,
    RolloutState,
)
from streams.worker_process import WorkerProcess
from tests.conftest import CODECS, Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.compiled_twin]

SETTINGS = {
    "evaluation_interval_s": 0.1, "canary_evaluation_interval_s": 0.2,
    "drift_min_samples": 200, "canary_min_samples": 30,
    "canary_leading_metrics": {"brier": "lower_is_better"},
    "canary_window_s": 60, "canary_margins": {"brier": 0.01},
}
WINDOW_MS = 60_000
EDGES = [-1.5, -0.5, 0.0, 0.5, 1.5]
TRAINING = [0.02, 0.16, 0.32, 0.32, 0.16, 0.02]
SHIFTED = [0.0, 0.02, 0.08, 0.2, 0.4, 0.3]
FEATURES = ("spread", "depth")


def now_ms() -> int:
    return int(time.time() * 1000)


def profile(model: str) -> FeatureProfile:
    return FeatureProfile(model=model, model_version="v2", created_time_ms=now_ms(), features=[
        FeatureHistogram(name=name, bin_edges=EDGES, probabilities=TRAINING)
        for name in FEATURES])


def draw(rng: np.random.Generator, probabilities: list[float]) -> float:
    """One value from the histogram: a bin by its probability, uniform inside it."""
    bin_index = int(rng.choice(len(probabilities), p=probabilities))
    if bin_index == 0:
        return EDGES[0] - 1.0
    if bin_index == len(EDGES):
        return EDGES[-1] + 1.0
    return float(rng.uniform(EDGES[bin_index - 1], EDGES[bin_index]))


def features(model: str, rng: np.random.Generator, n: int,
             probabilities: list[float]) -> list[FeatureSample]:
    return [FeatureSample(event_id=uuid.uuid4().hex, model=model, model_version="v2",
                          event_time_ms=now_ms(),
                          features={name: draw(rng, probabilities) for name in FEATURES})
            for _ in range(n)]


def completed_window_time() -> int:
    """An event time in the last completed canary window, with at least 30 s left before
    the next window completes (the verdict of a window stands until then)."""
    now = now_ms()
    if WINDOW_MS - now % WINDOW_MS < 30_000:
        time.sleep((WINDOW_MS - now % WINDOW_MS) / 1000 + 0.1)
        now = now_ms()
    return now - now % WINDOW_MS - WINDOW_MS + 500


def scores(model: str, cohort: Cohort, mean: float, n: int, seed: int,
           at_ms: int) -> list[ModelScore]:
    """Brier scores of exactly ``mean`` (standard deviation 0.05), stamped ``at_ms``."""
    z = np.random.default_rng(seed).normal(0, 1, n)
    values = mean + 0.05 * (z - z.mean()) / z.std()
    return [ModelScore(event_id=uuid.uuid4().hex, model=model,
                       model_version="v2" if cohort is Cohort.CANARY else "v1", cohort=cohort,
                       metric="brier", value=float(v), prediction_id=uuid.uuid4().hex,
                       event_time_ms=at_ms) for v in values]


def command(scope: str, action: OpsAction, target: str | None = None,
            command_id: str | None = None) -> OpsCommand:
    return OpsCommand(command_id=command_id or uuid.uuid4().hex, scope=scope, action=action,
                      actor="alice", reason="", target=target, issued_time_ms=now_ms())


def rollout_audit(stack: Stack) -> list[ReportEnvelope]:
    return [e for e in stack.read_records("audit.log", idle_timeout_s=0.5)
            if e.reason_code == "GOV_ROLLOUT_TRANSITION"]


def audit_of(stack: Stack, cmd: OpsCommand) -> AuditPayload:
    found = wait_until(lambda: [e.payload for e in rollout_audit(stack)
                                if e.payload.evidence.get("command_id") == cmd.command_id],
                       15, what=f"the audit entry of {cmd.action.value} {cmd.target}")
    assert len(found) == 1
    return found[0]


def stages(stack: Stack, scope: str) -> list[str]:
    """The stages of the scope's transitions on control.rollout (a re-evaluation mark or an
    evaluation is published too, with the stage unchanged)."""
    return [s.stage.value for s in stack.read_records("control.rollout", idle_timeout_s=0.5)
            if s.scope == scope and s.history and s.history[-1].event == "transition"]


def processed(worker: WorkerProcess, stack: Stack, topic: str) -> int:
    """Input events of ``topic`` the worker has processed (its Prometheus counter)."""
    name = re.escape(stack.topic(topic))
    found = re.search(rf'polymon_events_processed_total{{topic="{name}"}} ([\d.e+]+)',
                      worker.get_text("/metrics"))
    return int(float(found.group(1))) if found else 0


def register(stack: Stack, model: str) -> str:
    scope = f"model:{model}"
    stack.send_records("model.profiles", [profile(model)])
    wait_until(lambda: stages(stack, scope) == ["REPLAY"], 15, what=f"{scope} at REPLAY")
    return scope


def walk(stack: Stack, scope: str, targets: list[str]) -> list[OpsCommand]:
    commands = [command(scope, OpsAction.PROMOTE, target) for target in targets]
    stack.send_records("ops.commands", commands)  # one key, one partition: applied in order
    for cmd in commands:
        assert audit_of(stack, cmd).decision == "granted", cmd
    return commands


def test_drift_below_threshold_allows_promotion_and_shifted_features_block_it(
        stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(**SETTINGS)
    scope = register(stack, "drifty")
    rng = np.random.default_rng(11)
    like_training = features("drifty", rng, 300, TRAINING)
    stack.send_records("model.features", like_training)
    wait_until(lambda: processed(worker, stack, "model.features") == 300, 15,
               what="the features processed")

    promote = command(scope, OpsAction.PROMOTE, "SHADOW")
    stack.send_records("ops.commands", [promote])
    granted = audit_of(stack, promote)
    assert granted.decision == "granted" and granted.actor == "operator:alice"
    expected = feature_drift(
        {name: histogram_counts([s.features[name] for s in like_training], EDGES)
         for name in FEATURES}, {name: TRAINING for name in FEATURES}, 0.2)
    assert expected.healthy and expected.max_drift < 0.2
    assert granted.evidence["drift.status"] == "healthy"
    assert float(granted.evidence["drift.max_kl"]) == pytest.approx(expected.max_drift, rel=1e-5)
    assert granted.evidence["drift.feature"] == expected.max_feature
    assert granted.evidence["drift.samples"] == "300"

    stack.send_records("model.features", features("drifty", rng, 600, SHIFTED))
    drift_alerts = wait_until(lambda: [a for a in stack.read_records(
        "monitor.alerts", idle_timeout_s=0.5) if a.reason_code == "RISK_MODEL_DRIFT"], 15,
        what="RISK_MODEL_DRIFT")
    assert drift_alerts[0].scope == scope
    assert drift_alerts[0].payload.status is AlertStatus.FIRING
    assert drift_alerts[0].payload.value >= 0.2 and drift_alerts[0].payload.threshold == 0.2

    refused_cmd = command(scope, OpsAction.PROMOTE, "PAPER")
    stack.send_records("ops.commands", [refused_cmd])
    refused = audit_of(stack, refused_cmd)
    assert refused.decision == "refused"
    assert refused.evidence["reason"].startswith("drift: KL")
    assert "until a fresh evaluation passes" in refused.evidence["reason"]
    assert refused.evidence["drift.status"] == "drifted"
    # read until the topic answers (a read can come back empty on a loaded broker)
    assert wait_until(lambda: stages(stack, scope), 15, what="control.rollout") == [
        "REPLAY", "SHADOW"], "a refusal is not a transition"


EVALUATOR_TOKEN = "evaluator-token-0123456789"
DRIFT_SETTINGS = {**SETTINGS, "drift_window_s": 4, "drift_hop_s": 1,
                  "alert_rules": {"RISK_MODEL_DRIFT": {"for_s": 0, "keep_firing_for_s": 0,
                                                       "resolve_ratio": 0.8}},
                  "api_tokens": {EVALUATOR_TOKEN: {"actor": "alice", "rights": ["promote"]}},
                  "api_command_wait_s": 10.0}


def post(worker: WorkerProcess, path: str, body: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{worker.url}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {EVALUATOR_TOKEN}",
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def rollout_states(stack: Stack, scope: str) -> list[RolloutState]:
    return [s for s in stack.read_records("control.rollout", idle_timeout_s=0.5)
            if s.scope == scope]


def audited(stack: Stack, action: str, ref: str) -> AuditPayload:
    return wait_until(lambda: [e.payload for e in rollout_audit(stack)
                               if e.payload.action == action
                               and ref in e.payload.evidence.values()], 15,
                      what=f"the audit entry of {action} {ref}")[0]


def test_drift_forces_a_reevaluation_before_any_further_promotion(stack: Stack) -> None:
    """Shifted features → drift fires → the version is marked REEVALUATION_REQUIRED;
    healthy features again resolve the alert, yet promotion stays refused for the mark
    (after a restart too);
    a failing evaluation (operator command) keeps it, a passing one on model.evaluations
    clears it and the promotion is granted. Malformed evaluations are dead-lettered."""
    stack.create_topics()
    worker = stack.start_worker(**DRIFT_SETTINGS)
    scope = register(stack, "drifted")
    rng = np.random.default_rng(5)
    stack.send_records("model.features", features("drifted", rng, 600, SHIFTED))
    wait_until(lambda: [a for a in stack.read_records("monitor.alerts", idle_timeout_s=0.5)
                        if a.reason_code == "RISK_MODEL_DRIFT"
                        and a.payload.status is AlertStatus.FIRING], 15, what="drift firing")
    marked = wait_until(lambda: [s for s in rollout_states(stack, scope) if s.reevaluation],
                        15, what="the REEVALUATION_REQUIRED mark on control.rollout")[0]
    assert marked.stage.value == "REPLAY" and marked.reevaluation.model_version == "v2"
    assert marked.history[-1].event == "reevaluation_required"
    mark_audit = audited(stack, "reevaluation_required", marked.reevaluation.alert_id)
    assert mark_audit.decision == "marked"

    time.sleep(DRIFT_SETTINGS["drift_window_s"] + 1)  # the shifted samples leave the window
    stack.send_records("model.features", features("drifted", rng, 400, TRAINING))
    wait_until(lambda: [a for a in stack.read_records("monitor.alerts", idle_timeout_s=0.5)
                        if a.reason_code == "RISK_MODEL_DRIFT"
                        and a.payload.status is AlertStatus.RESOLVED], 15,
               what="drift resolved on healthy features")
    # the mark outlives the worker: the next one restores it from the rollout changelog
    worker.stop()
    worker = stack.start_worker(worker_id="worker-2", **DRIFT_SETTINGS)

    refused_cmd = command(scope, OpsAction.PROMOTE, "SHADOW")
    stack.send_records("ops.commands", [refused_cmd])
    refused = audit_of(stack, refused_cmd)
    assert refused.decision == "refused"
    assert refused.evidence["drift.status"] == "healthy", "drift is healthy again"
    assert refused.evidence["reason"].startswith("re-evaluation required: drift on v2 at ")
    assert "awaiting an evaluation on model.evaluations" in refused.evidence["reason"]
    assert refused.evidence["reevaluation"] == "REEVALUATION_REQUIRED"

    shown = wait_until(lambda: worker.get("/api/rollout")["rollout"].get(scope), 15,
                       what="the rollout in the API")
    assert shown["reevaluation"]["model_version"] == "v2"
    assert "polymon_rollout_reevaluation_required{scope=\"model:drifted\"} 1.0" in (
        worker.get_text("/metrics"))

    # a failing evaluation, reported by an operator through the API (EVALUATE)
    status, reply = post(worker, "/api/rollout/drifted/evaluation", {
        "reason": "backtest run 41", "model_version": "v2", "evaluation_id": "run-41",
        "result": "FAILED"})
    assert status == 202 and reply["action"] == "EVALUATE", reply
    failed_cmd = OpsCommand(command_id=reply["command_id"], scope=scope, actor="alice",
                            action=OpsAction.EVALUATE, target="v2", issued_time_ms=now_ms(),
                            evaluation=EvaluationReference(evaluation_id="run-41",
                                                           passed=False))
    failed = audit_of(stack, failed_cmd)
    assert failed.decision == "failed" and failed.actor == "operator:alice"
    assert failed.evidence["reevaluation"] == "REEVALUATION_REQUIRED"
    still_cmd = command(scope, OpsAction.PROMOTE, "SHADOW")
    stack.send_records("ops.commands", [still_cmd])
    assert audit_of(stack, still_cmd).decision == "refused"

    garbage = b"\x00\x00\x00\x00\x0e not avro"
    not_a_model = CODECS["ModelEvaluation"].encode(
        {"scope": "market:m1", "model_version": "v2", "evaluation_id": "x", "passed": True,
         "metrics": {}, "evaluator": "stage10", "event_time_ms": now_ms()})
    stack.send_raw("model.evaluations", [(b"model:drifted", garbage),
                                         (b"market:m1", not_a_model)])
    stack.send_records("model.evaluations", [ModelEvaluation(
        scope=scope, model_version="v2", evaluation_id="run-42", passed=True,
        metrics={"brier": 0.179}, evaluator="stage10", event_time_ms=now_ms())])
    passed = audited(stack, "evaluate", "run-42")
    assert passed.decision == "passed" and passed.actor == "evaluator:stage10"
    assert passed.evidence["reevaluation"] == "cleared"
    assert passed.evidence["metric.brier"] == "0.179"

    granted_cmd = command(scope, OpsAction.PROMOTE, "SHADOW")
    stack.send_records("ops.commands", [granted_cmd])
    granted = audit_of(stack, granted_cmd)
    assert granted.decision == "granted" and granted.evidence["reevaluation"] == "not required"
    final = wait_until(lambda: [s for s in rollout_states(stack, scope)
                                if s.stage.value == "SHADOW"], 15, what="SHADOW")[-1]
    assert final.reevaluation is None
    events = [(h.event, h.ref) for h in final.history]
    assert ("reevaluation_required", marked.reevaluation.alert_id) in events
    assert events.index(("evaluation", "run-41")) < events.index(("evaluation", "run-42"))
    assert events[-1] == ("transition", None)

    letters = wait_until(lambda: [d for d in stack.read_records(
        "monitor.deadletter", idle_timeout_s=0.5)
        if d.source_topic == stack.topic("model.evaluations")], 15,
        what="the malformed evaluations dead-lettered")
    assert sorted(d.stage for d in letters) == [DeadLetterStage.DECODE,
                                                DeadLetterStage.VALIDATE]
    assert {d.value for d in letters} == {garbage, not_a_model}
    assert any("model scope" in d.error for d in letters)
    assert processed(worker, stack, "model.evaluations") == 1


def test_the_full_ladder_is_walked_by_commands_through_the_canary_gate(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(**SETTINGS)
    unknown = command("model:ghost", OpsAction.PROMOTE, "SHADOW")
    stack.send_records("ops.commands", [unknown])
    assert "unknown model" in audit_of(stack, unknown).evidence["reason"]

    scope = register(stack, "pricer")
    skip = command(scope, OpsAction.PROMOTE, "PAPER")
    stack.send_records("ops.commands", [skip])
    assert "cannot skip SHADOW" in audit_of(stack, skip).evidence["reason"]

    walk(stack, scope, ["SHADOW", "PAPER", "CANARY"])
    early = command(scope, OpsAction.PROMOTE, "LIVE")
    stack.send_records("ops.commands", [early])
    held = audit_of(stack, early)
    assert held.decision == "refused"
    assert "canary: no verdict for leading metric brier" in held.evidence["reason"]

    # The seed's example: Brier 0.179 on the canary against 0.181, delta −0.002, within
    # the margin 0.01 — not worse, so eligible (it is not shown *better*: p_better > 0.05).
    at_ms = completed_window_time()
    stack.send_records("model.scores", scores("pricer", Cohort.CANARY, 0.179, 500, 1, at_ms)
                       + scores("pricer", Cohort.BASELINE, 0.181, 500, 2, at_ms))
    wait_until(lambda: processed(worker, stack, "model.scores") == 1000, 15,
               what="the scores processed")

    def decided() -> dict:
        found = worker.get(f"/api/drift?scope={scope}")["models"].get(scope) or {}
        brier = ((found.get("canary") or {}).get("metrics") or {}).get("brier") or {}
        # both cohorts counted: a window is decided again when more of its samples arrive
        return brier.get("n_canary") == 500 and brier.get("n_baseline") == 500 and brier
    brier = wait_until(decided, 15, what="the canary verdict of the completed window")
    assert brier["verdict"] == "promote_eligible"
    assert brier["mean_canary"] == pytest.approx(0.179, abs=1e-9)
    assert brier["mean_baseline"] == pytest.approx(0.181, abs=1e-9)
    assert brier["delta"] == pytest.approx(-0.002, abs=1e-9)
    assert brier["margin"] == 0.01 and brier["p_value"] < 0.05 < brier["p_better"]
    assert brier["window_start_ms"] == at_ms - 500

    live = command(scope, OpsAction.PROMOTE, "LIVE")
    stack.send_records("ops.commands", [live, live])  # a repeated command id is applied once
    granted = audit_of(stack, live)
    assert granted.decision == "granted", granted.evidence["reason"]
    assert granted.evidence["canary.brier.verdict"] == "promote_eligible"
    assert float(granted.evidence["canary.brier.delta"]) == pytest.approx(-0.002, abs=1e-6)
    assert float(granted.evidence["canary.brier.mean_canary"]) == pytest.approx(0.179)
    assert float(granted.evidence["canary.brier.mean_baseline"]) == pytest.approx(0.181)
    assert granted.evidence["canary.brier.margin"] == "0.01"
    assert float(granted.evidence["canary.brier.p_value"]) == pytest.approx(
        brier["p_value"], rel=1e-5)
    assert granted.evidence["canary.brier.n_canary"] == "500"

    past = command(scope, OpsAction.PROMOTE)
    stack.send_records("ops.commands", [past])
    assert "no stage past LIVE" in audit_of(stack, past).evidence["reason"]

    assert stages(stack, scope) == ["REPLAY", "SHADOW", "PAPER", "CANARY", "LIVE"]
    last: RolloutState = [s for s in stack.read_records("control.rollout", idle_timeout_s=0.5)
                          if s.scope == scope][-1]
    assert [(h.from_stage and h.from_stage.value, h.to_stage.value) for h in last.history] == [
        (None, "REPLAY"), ("REPLAY", "SHADOW"), ("SHADOW", "PAPER"), ("PAPER", "CANARY"),
        ("CANARY", "LIVE")]
    assert [h.actor for h in last.history] == ["agents.rollout"] + ["operator:alice"] * 4
    granted_audits = [(e.payload.action, e.payload.decision) for e in rollout_audit(stack)
                      if e.scope == scope and e.payload.decision == "granted"]
    assert granted_audits == [("register", "granted")] + [("promote", "granted")] * 4


def test_a_clearly_worse_canary_is_rolled_back_with_an_audit_naming_the_metric(
        stack: Stack) -> None:
    stack.create_topics()
    stack.start_worker(**SETTINGS)
    scope = register(stack, "shaky")
    walk(stack, scope, ["SHADOW", "PAPER", "CANARY"])
    at_ms = completed_window_time()
    stack.send_records("model.scores", scores("shaky", Cohort.CANARY, 0.25, 50, 3, at_ms)
                       + scores("shaky", Cohort.BASELINE, 0.181, 50, 4, at_ms))

    wait_until(lambda: stages(stack, scope)[-1:] == ["PAPER"], 20, what="rolled back to PAPER")
    [rollback] = [e for e in rollout_audit(stack) if e.payload.action == "auto_rollback"]
    payload = rollback.payload
    assert payload.decision == "granted" and payload.actor == "agents.rollout"
    assert rollback.scope == scope
    assert "canary regressed on brier" in payload.evidence["reason"]
    assert payload.evidence["canary.regressed"] == "brier"
    assert payload.evidence["reason_codes"] == "RISK_CANARY_REGRESSION"
    assert float(payload.evidence["canary.brier.delta"]) == pytest.approx(0.069, abs=1e-6)
    assert float(payload.evidence["canary.brier.p_inferior"]) < 0.05
    assert payload.evidence["canary.brier.margin"] == "0.01"
    assert (payload.before, payload.after) == ('{"stage": "CANARY"}', '{"stage": "PAPER"}')
    regression = [a for a in stack.read_records("monitor.alerts", idle_timeout_s=0.5)
                  if a.reason_code == "RISK_CANARY_REGRESSION"]
    assert regression[0].scope == scope and regression[0].payload.metric == "p_inferior:brier"

    again = command(scope, OpsAction.PROMOTE, "CANARY")
    stack.send_records("ops.commands", [again])
    refused = audit_of(stack, again)
    assert refused.decision == "refused"
    assert "open critical incident on the scope (RISK_CANARY_REGRESSION)" in \
        refused.evidence["reason"]
    assert stages(stack, scope) == ["REPLAY", "SHADOW", "PAPER", "CANARY", "PAPER"]


def heartbeat(scope: str, interval_ms: int) -> HealthEvent:
    return HealthEvent(event_id=uuid.uuid4().hex, scope=scope, kind=HealthEventKind.HEARTBEAT,
                       source="model-server", event_time_ms=now_ms(),
                       heartbeat_interval_ms=interval_ms)


def incident_versions(stack: Stack, scope: str) -> list[ReportEnvelope]:
    return [e for e in stack.read_records("monitor.incidents", idle_timeout_s=0.5)
            if e.scope == scope]


def wait_for_scope_read_model(worker: WorkerProcess, stack: Stack) -> None:
    """Every incident version re-keyed by scope has been taken in by the rollout's side."""
    published = len(stack.read("monitor.incident.scopes", idle_timeout_s=0.5))
    wait_until(lambda: processed(worker, stack, "monitor.incident.scopes") == published, 15,
               what=f"{published} incident versions in the per-scope read model")


def test_an_open_critical_incident_blocks_promotion_until_an_operator_resolves_it(
        stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(**SETTINGS)
    scope = register(stack, "guarded")  # murmur2 and CRC-32 put it on different partitions

    # The model server misses its heartbeats (0.5 s x 3), then beats again: the alert
    # resolves, the CRITICAL incident stays open until an operator resolves it.
    stack.send_records("health.events", [heartbeat(scope, 500)])
    opened = wait_until(lambda: [e for e in incident_versions(stack, scope)
                                 if e.payload.state.value == "OPEN"], 15,
                        what="the missed heartbeats' incident")[0]
    incident_id = opened.payload.incident_id
    assert (opened.reason_code, opened.severity.value) == ("GOV_HEARTBEAT_MISSED", "CRITICAL")
    stack.send_records("health.events", [heartbeat(scope, 600_000)])
    wait_until(lambda: any(e.payload.timeline[-1].what == "all alerts clear"
                           for e in incident_versions(stack, scope)), 15,
               what="the heartbeat alert resolved")
    wait_for_scope_read_model(worker, stack)
    # co-partitioned with the scope's inputs, where its rollout state lives
    [input_partition] = {m.partition for m in stack.read("health.events", idle_timeout_s=0.5)}
    assert {m.partition for m in stack.read("monitor.incident.scopes", idle_timeout_s=0.5)
            if m.key == scope.encode()} == {input_partition}

    refused_cmd = command(scope, OpsAction.PROMOTE, "SHADOW")
    stack.send_records("ops.commands", [refused_cmd])
    refused = audit_of(stack, refused_cmd)
    assert refused.decision == "refused"
    assert refused.evidence["reason"] == (
        "open critical incident on the scope (GOV_HEARTBEAT_MISSED): resolve it first")
    assert refused.evidence["incidents.open"] == f"GOV_HEARTBEAT_MISSED:{incident_id}"
    assert refused.evidence["alerts.critical"] == "none"

    resolve = command(scope, OpsAction.RESOLVE, incident_id).model_copy(update={
        "root_cause": "the bot's heartbeat thread stalled",
        "follow_ups": ["restart the thread on a stall"]})
    stack.send_records("ops.commands", [resolve])
    wait_until(lambda: incident_versions(stack, scope)[-1].payload.state.value == "RESOLVED",
               15, what="the incident resolved")
    wait_for_scope_read_model(worker, stack)

    granted_cmd = command(scope, OpsAction.PROMOTE, "SHADOW")
    stack.send_records("ops.commands", [granted_cmd])
    granted = audit_of(stack, granted_cmd)
    assert granted.decision == "granted", granted.evidence["reason"]
    assert granted.evidence["incidents.open"] == "none"
    assert stages(stack, scope) == ["REPLAY", "SHADOW"]
