"""Rollout gatekeeper: the ladder replay → shadow → paper → canary → live per model or
strategy scope, on compacted control.rollout with its full history; every decision,
granted or refused, on audit.log with actor and evidence.

- Entering the ladder: a model enters at REPLAY when its training profile is on this
  worker (streams.agents.drift) — the tick registers it, and so does a PROMOTE that
  finds a profile but no state yet. A strategy enters by PROMOTE target=REPLAY.
- PROMOTE / ROLLBACK arrive on ops.commands (keyed by scope, so on the partition of
  the scope's rollout, drift and canary state); the pure ladder and gates live in
  streams.control.rollout, the evidence is gathered here (:func:`gates`).
- The tick rolls back a scope in CANARY or LIVE with an active drift or canary
  regression alert it has not acted on yet, one stage down or to ``rollout_safe_stage``.
  Reconciling on the tick (rather than on the alert event) also catches an alert whose
  rollback a crash interrupted.

Gate "no open critical incident": incidents live on the partitions of their dedup keys;
every version is also published keyed by scope (monitor.incident.scopes), and the
scope's unresolved incidents are kept on its partition, here
(streams.agents.incidents.open_critical_incidents). An operator resolves an incident
before the scope moves up. A CRITICAL alert firing now blocks too
(:func:`open_critical_alerts`): it is known here at once, before its incident is.
Gate "SLOs met": no active GOV_SLO_BURN alert of the scope (the health agent's SLO
state, same partition).

Drift forces re-evaluation: the tick (and a PROMOTE) marks the version under rollout
REEVALUATION_REQUIRED when its drift alert fires; the mark is in the rollout state (the
table and control.rollout) and refuses promotions until a passing evaluation of that
version arrives on model.evaluations (same key and partition count, so on this
worker) or as an EVALUATE operator command. Every mark and evaluation is in the rollout
history and on audit.log.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.agents import canary, causes, drift, health, incidents
from streams.agents.commands import handles
from streams.agents.decoding import InvalidInput, consume
from streams.agents.outputs import owned_partitions, send, store
from streams.agents.ticks import every_tick
from streams.app import app, clock, settings, topics
from streams.codec import InputMessage
from streams.control import rollout
from streams.control.canary import summary as canary_summary
from streams.envelope import audit_envelope
from streams.reason_codes import Severity, reason
from streams.records import ModelEvaluation, OpsAction, OpsCommand, RolloutState

SOURCE = "agents.rollout"
_json = faust.Schema(key_serializer="json", value_serializer="json")
rollout_entries = app.Table("rollout-state", default=None, schema=_json,
                            partitions=topics.health_events.partitions)
# Alerts with a gate of their own are not counted again as "open critical incident".
_OWN_GATES = {"RISK_MODEL_DRIFT", "GOV_SLO_BURN"}
# Incidents whose gate outlives their alert: a drift incident's is the version's
# REEVALUATION_REQUIRED mark, which only a passing evaluation clears (resolving the
# incident does not, and a passing evaluation is enough).
_INCIDENTS_GATED_ELSEWHERE = {"RISK_MODEL_DRIFT"}


def _entry(scope: str) -> dict[str, Any] | None:
    stored = rollout_entries.data.get(scope)
    if not stored:
        return None
    return {"state": stored["state"], "commands": stored["commands"], "acted": stored["acted"],
            "marked": stored.get("marked", [])}


async def _apply(scope: str, partition: int, entry: dict[str, Any] | None,
                 decision: rollout.Decision | None, now_ms: int) -> None:
    """Keep the entry, publish a granted transition's state, audit every decision."""
    if entry is not None:
        store(rollout_entries, scope, {"partition": partition, **entry}, partition)
    if decision is None:
        return
    if decision.granted:
        assert entry is not None
        await send(topics.rollout, scope.encode(), RolloutState(**entry["state"]))
    after = decision.to_stage if decision.granted else decision.from_stage
    outcome = decision.outcome if decision.granted else None
    await send(topics.audit, scope.encode(), audit_envelope(
        decision_id=decision.decision_id, scope=scope, reason_code="GOV_ROLLOUT_TRANSITION",
        action=decision.action, actor=decision.actor,
        decision=outcome or ("granted" if decision.granted else "refused"),
        before={"stage": decision.from_stage}, after={"stage": after},
        evidence={"reason": decision.reason, **decision.evidence},
        source=SOURCE, observed_ms=now_ms, event_time_ms=now_ms,
        config_version=settings.config_version, cause=causes.of(scope),
    ))


# --- gate evidence ----------------------------------------------------------------------


def open_critical_alerts(scope: str) -> dict[str, str]:
    """Active CRITICAL alerts of ``scope`` on this worker (alert id → reason code), other
    than drift and SLO burn, which have gates of their own."""
    active: list[dict[str, Any]] = []
    canary_state = canary.canary_state.data.get(scope)
    if canary_state and canary_state["alert"]:
        active.append(canary_state["alert"])
    scope_health = health.scope_health.data.get(scope)
    if scope_health:
        active += [feed["alert"] for feed in scope_health["feeds"].values() if feed["alert"]]
        beat = scope_health["heartbeat"]
        if beat and beat["alert"]:
            active.append(beat["alert"])
    return {alert["alert_id"]: alert["reason_code"] for alert in active
            if alert["reason_code"] not in _OWN_GATES
            and reason(alert["reason_code"]).severity is Severity.CRITICAL}


def slo_burns(scope: str) -> dict[str, str]:
    """Active SLO burn alerts of ``scope``: SLO name → alert id."""
    return {state["slo"]: state["alert"]["alert_id"]
            for key, state in list(health.slo_windows.items())
            if state and key.startswith(f"{scope}|") and state["alert"]}


def gates(scope: str, now_ms: int) -> rollout.Gates:
    return rollout.Gates(
        drift=drift.drift_state.data.get(scope), canary=canary.current_evaluation(scope, now_ms),
        leading_metrics=list(settings.canary_leading_metrics),
        critical_incidents={incident: code for incident, code
                            in incidents.open_critical_incidents(scope).items()
                            if code not in _INCIDENTS_GATED_ELSEWHERE},
        critical_alerts=open_critical_alerts(scope), slo_burns=slo_burns(scope),
    )


# --- entering the ladder ----------------------------------------------------------------


async def register_from_profile(scope: str, now_ms: int) -> None:
    """A model whose training profile is here enters the ladder (or re-enters it with a
    new version)."""
    profile = drift.drift_profiles.data.get(scope)
    if not profile:
        return
    entry, decision = rollout.register(
        _entry(scope), scope, profile["model_version"], now_ms, SOURCE,
        cause=f"profile:{profile['model_version']}@{profile['created_ms']}")
    if decision is not None:
        await _apply(scope, profile["partition"], entry, decision, now_ms)


# --- operator commands ------------------------------------------------------------------


@handles(OpsAction.PROMOTE, OpsAction.ROLLBACK)
async def on_rollout_command(command: OpsCommand, message: InputMessage) -> None:
    now_ms = clock.now_ms()
    scope, actor = command.scope, f"operator:{command.actor}"
    if command.action is OpsAction.PROMOTE:
        await register_from_profile(scope, now_ms)
        await mark_if_drifted(scope, message.partition, now_ms)
        entry, decision = rollout.promote(
            _entry(scope), scope, command.target, gates(scope, now_ms), actor,
            command.command_id, command.reason, now_ms)
    else:
        entry, decision = rollout.roll_back(
            _entry(scope), scope, command.target, actor, command.command_id, command.reason,
            now_ms)
    await _apply(scope, message.partition, entry, decision, now_ms)


# --- drift forces re-evaluation --------------------------------------------------------


async def mark_if_drifted(scope: str, partition: int, now_ms: int) -> None:
    """Mark the version under rollout REEVALUATION_REQUIRED when its drift alert fires."""
    drift_state = drift.drift_state.data.get(scope)
    if not drift_state or not drift_state["alert"]:
        return
    evaluation = drift_state.get("alert_evaluation") or {}
    version = evaluation.get("model_version")
    if version is None:
        return
    evidence = {"drift.max_kl": str(evaluation.get("max_drift")),
                "drift.feature": str(evaluation.get("max_feature")),
                "drift.threshold": str(evaluation.get("threshold")),
                "drift.samples": str(evaluation.get("samples"))}
    entry, decision = rollout.require_reevaluation(
        _entry(scope), scope, drift_state["alert"]["alert_id"], version, evidence, SOURCE,
        now_ms)
    if decision is not None or (entry is not None and entry != _entry(scope)):
        await _apply(scope, partition, entry, decision, now_ms)


async def on_evaluation(record: ModelEvaluation, message: InputMessage) -> None:
    """An evaluation result from model.evaluations: recorded, and a passing one of the
    marked version clears REEVALUATION_REQUIRED."""
    if rollout.rollout_scope_problem(record.scope):
        raise InvalidInput(rollout.rollout_scope_problem(record.scope))
    now_ms = clock.now_ms()
    entry, decision = rollout.record_evaluation(
        _entry(record.scope), record.scope,
        rollout.Evaluation(record.model_version, record.evaluation_id, record.passed,
                           record.evaluator, record.event_time_ms, record.metrics),
        f"evaluator:{record.evaluator}", now_ms)
    await _apply(record.scope, message.partition, entry, decision, now_ms)


@handles(OpsAction.EVALUATE)
async def on_evaluate_command(command: OpsCommand, message: InputMessage) -> None:
    """An operator reports an evaluation by its reference (EVALUATE, target = version)."""
    assert command.evaluation is not None and command.target is not None  # the record's rule
    now_ms = clock.now_ms()
    actor = f"operator:{command.actor}"
    entry, decision = rollout.record_evaluation(
        _entry(command.scope), command.scope,
        rollout.Evaluation(command.target, command.evaluation.evaluation_id,
                           command.evaluation.passed, actor, command.issued_time_ms),
        actor, now_ms, command_id=command.command_id, reason=command.reason)
    await _apply(command.scope, message.partition, entry, decision, now_ms)


consume(topics.model_evaluations, "ModelEvaluation", on_evaluation)


# --- automatic rollback -----------------------------------------------------------------


def rollback_causes(scope: str) -> list[rollout.RollbackCause]:
    """Active drift and canary regression alerts of ``scope``, with their evidence."""
    causes = []
    drift_state = drift.drift_state.data.get(scope)
    if drift_state and drift_state["alert"]:
        evaluation = drift_state["alert_evaluation"] or {}
        causes.append(rollout.RollbackCause(
            alert_id=drift_state["alert"]["alert_id"], reason_code="RISK_MODEL_DRIFT",
            summary=(f"drift: KL {evaluation.get('max_drift', float('nan')):.4f} on feature "
                     f"{evaluation.get('max_feature')!r} >= {evaluation.get('threshold')}"),
            evidence={"drift.max_kl": str(evaluation.get("max_drift")),
                      "drift.feature": str(evaluation.get("max_feature")),
                      "drift.threshold": str(evaluation.get("threshold")),
                      "drift.samples": str(evaluation.get("samples"))},
        ))
    canary_state = canary.canary_state.data.get(scope)
    if canary_state and canary_state["alert"]:
        evaluation = canary_state["alert_evaluation"] or {"metrics": {}, "regressed": []}
        regressed = evaluation["regressed"]
        evidence = {"canary.regressed": ",".join(regressed),
                    "canary.version": str(evaluation.get("canary_version"))}
        for metric in regressed:
            m = evaluation["metrics"][metric]
            for name in ("verdict", "mean_canary", "mean_baseline", "delta", "margin",
                         "p_value", "p_noninferior", "p_inferior", "n_canary", "n_baseline",
                         "alpha", "window_start_ms"):
                evidence[f"canary.{metric}.{name}"] = str(m.get(name))
        causes.append(rollout.RollbackCause(
            alert_id=canary_state["alert"]["alert_id"], reason_code="RISK_CANARY_REGRESSION",
            summary="canary regressed on " + "; ".join(
                canary_summary(evaluation, metric) for metric in regressed),
            evidence=evidence,
        ))
    return causes


@every_tick
async def reconcile_rollouts(now_ms: int) -> None:
    """Register models whose profile arrived; mark drifted versions REEVALUATION_REQUIRED;
    roll back on drift or regression."""
    owned = owned_partitions(topics.ops_commands)
    for scope, profile in list(drift.drift_profiles.items()):
        if profile and profile["partition"] in owned:
            await register_from_profile(scope, now_ms)
    for scope, stored in list(rollout_entries.items()):
        if not stored or stored["partition"] not in owned:
            continue
        await mark_if_drifted(scope, stored["partition"], now_ms)
        stored = rollout_entries.data.get(scope) or stored
        if stored["state"]["stage"] not in rollout.AUTO_ROLLBACK_STAGES:
            continue
        entry, decision = rollout.auto_roll_back(
            _entry(scope), scope, rollback_causes(scope), settings.rollout_safe_stage, SOURCE,
            now_ms)
        if decision is not None:
            await _apply(scope, stored["partition"], entry, decision, now_ms)
