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
"""

from __future__ import annotations

from typing import Any

import faust

from streams.agents import canary, drift, health, incidents
from streams.agents.commands import handles
from streams.agents.outputs import owned_partitions, send, store
from streams.agents.ticks import every_tick
from streams.app import app, clock, settings, topics
from streams.codec import InputMessage
from streams.control import rollout
from streams.control.canary import summary as canary_summary
from streams.envelope import audit_envelope
from streams.reason_codes import Severity, reason
from streams.records import OpsAction, OpsCommand, RolloutState

SOURCE = "agents.rollout"
_json = faust.Schema(key_serializer="json", value_serializer="json")
rollout_entries = app.Table("rollout-state", default=None, schema=_json,
                            partitions=topics.health_events.partitions)
# Alerts with a gate of their own are not counted again as "open critical incident".
_OWN_GATES = {"RISK_MODEL_DRIFT", "GOV_SLO_BURN"}


def _entry(scope: str) -> dict[str, Any] | None:
    stored = rollout_entries.data.get(scope)
    if not stored:
        return None
    return {"state": stored["state"], "commands": stored["commands"], "acted": stored["acted"]}


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
    await send(topics.audit, scope.encode(), audit_envelope(
        decision_id=decision.decision_id, scope=scope, reason_code="GOV_ROLLOUT_TRANSITION",
        action=decision.action, actor=decision.actor,
        decision="granted" if decision.granted else "refused",
        before={"stage": decision.from_stage}, after={"stage": after},
        evidence={"reason": decision.reason, **decision.evidence},
        source=SOURCE, observed_ms=now_ms, event_time_ms=now_ms,
        config_version=settings.config_version,
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
        critical_incidents=incidents.open_critical_incidents(scope),
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
        entry, decision = rollout.promote(
            _entry(scope), scope, command.target, gates(scope, now_ms), actor,
            command.command_id, command.reason, now_ms)
    else:
        entry, decision = rollout.roll_back(
            _entry(scope), scope, command.target, actor, command.command_id, command.reason,
            now_ms)
    await _apply(scope, message.partition, entry, decision, now_ms)


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
    """Register models whose profile arrived; roll back on drift or regression."""
    owned = owned_partitions(topics.ops_commands)
    for scope, profile in list(drift.drift_profiles.items()):
        if profile and profile["partition"] in owned:
            await register_from_profile(scope, now_ms)
    for scope, stored in list(rollout_entries.items()):
        if not stored or stored["partition"] not in owned:
            continue
        if stored["state"]["stage"] not in rollout.AUTO_ROLLBACK_STAGES:
            continue
        entry, decision = rollout.auto_roll_back(
            _entry(scope), scope, rollback_causes(scope), settings.rollout_safe_stage, SOURCE,
            now_ms)
        if decision is not None:
            await _apply(scope, stored["partition"], entry, decision, now_ms)
