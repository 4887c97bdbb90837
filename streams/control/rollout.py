"""The rollout ladder of one model or strategy scope, and the gates of a promotion.

    REPLAY → SHADOW → PAPER → CANARY → LIVE

Pure: an entry is a plain dict ``{"state": <RolloutState fields>, "commands": [...],
"acted": [...]}``, time is passed in, every call returns the new entry and a
:class:`Decision` to publish (a transition, or a refusal that changes nothing but the
remembered command ids). Nothing is mutated in place.

- A model enters the ladder at REPLAY when its first training profile arrives
  (:func:`register`); a profile of a new version puts the scope back to REPLAY, since
  the ladder vets one version. A strategy has no profile: an operator registers it
  with PROMOTE target=REPLAY. Promoting an unknown scope otherwise is refused.
- Promotion goes one stage up, only through the gates (:func:`check_gates`): drift
  healthy, no open critical incident, SLOs met, and for CANARY → LIVE the canary
  verdict ``promote_eligible`` on every leading metric. Skipping a stage, promoting
  past LIVE or to an unknown stage is refused with the reason.
- An operator rollback goes to the target stage (default: one stage down).
- A regression or drift while in CANARY or LIVE rolls back automatically
  (:func:`auto_roll_back`): one stage down, or to the configured safe stage; once per
  alert (the alert ids acted on are remembered).
- Drift over its threshold on the version under rollout marks it REEVALUATION_REQUIRED
  (:func:`require_reevaluation`, once per drift alert): the mark is kept in the rollout
  state, survives the alert resolving, and refuses every promotion until an evaluation
  of that version passes (:func:`record_evaluation`, from model.evaluations or an
  EVALUATE command). A failing evaluation, or one of another version, is recorded and
  leaves the mark. Rollbacks are never blocked by it; a new version starts unmarked.
- Commands are idempotent by command id, evaluations by evaluation id.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.envelope import derive_id
from streams.records import RolloutStage
from streams.scopes import ScopeError, parse_scope

STAGES: tuple[str, ...] = tuple(stage.value for stage in RolloutStage)
ROLLOUT_KINDS = ("model", "strategy")
AUTO_ROLLBACK_STAGES = frozenset({RolloutStage.CANARY.value, RolloutStage.LIVE.value})
_REMEMBERED = 200
_LADDER = " → ".join(STAGES)
REEVALUATION_REQUIRED = "REEVALUATION_REQUIRED"


@dataclass(frozen=True, slots=True)
class Gates:
    """What a promotion is judged on, gathered by the agent from the scope's state.

    drift: the drift state (``alert`` id when drifted, ``evaluation`` of the last
        evaluation) or None when the scope has no profile/evaluation yet.
    canary: the latest canary evaluation (per metric: verdict, delta, p-values, n) or None.
    leading_metrics: the metrics that must each be ``promote_eligible``.
    critical_incidents: the scope's unresolved (open or acknowledged) CRITICAL incidents,
        incident id → reason code, from the incident read model.
    critical_alerts: CRITICAL alerts of the scope firing now, alert id → reason code,
        other than those with a gate of their own (drift, SLO burn): caught at once, even
        before their incident reaches the read model.
    slo_burns: active SLO burn alerts of the scope, SLO name → alert id.
    """

    drift: Mapping[str, Any] | None = None
    canary: Mapping[str, Any] | None = None
    leading_metrics: Sequence[str] = ()
    critical_incidents: Mapping[str, str] = field(default_factory=dict)
    critical_alerts: Mapping[str, str] = field(default_factory=dict)
    slo_burns: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """One rollout decision, granted (a transition) or refused."""

    decision_id: str
    scope: str
    action: str  # register | promote | rollback | auto_rollback
    granted: bool
    from_stage: str | None
    to_stage: str | None
    actor: str
    reason: str
    evidence: dict[str, str]
    outcome: str | None = None  # what the audit says when not granted/refused


def rollout_scope_problem(scope: str) -> str | None:
    """Why ``scope`` cannot have a rollout ladder, or None."""
    try:
        segments = parse_scope(scope)
    except ScopeError as exc:
        return str(exc)
    if len(segments) != 1 or segments[0][0] not in ROLLOUT_KINDS:
        return f"rollout scopes are model:<id> or strategy:<id>, not {scope!r}"
    return None


def _kind(scope: str) -> str:
    return scope.split(":", 1)[0]


def stage_of(entry: Mapping[str, Any] | None) -> str | None:
    return entry["state"]["stage"] if entry else None


def _parse_stage(target: str | None) -> str | None:
    if target is None:
        return None
    name = target.strip().upper()
    if name not in STAGES:
        raise ValueError(f"unknown stage {target!r} (the ladder is {_LADDER})")
    return name


def _remember(entry: dict[str, Any], key: str, value: str) -> None:
    entry[key] = [*entry[key], value][-_REMEMBERED:]


def _transition(entry: dict[str, Any] | None, scope: str, to_stage: str, now_ms: int,
                actor: str, reason: str, decision_id: str,
                model_version: str | None = None) -> dict[str, Any]:
    entry = copy.deepcopy(entry) if entry else {
        "state": {"scope": scope, "stage": to_stage, "model_version": model_version,
                  "updated_ms": now_ms, "history": []},
        "commands": [], "acted": [],
    }
    state = entry["state"]
    from_stage = state["stage"] if state["history"] else None
    state["history"].append({"from_stage": from_stage, "to_stage": to_stage, "time_ms": now_ms,
                             "actor": actor, "reason": reason, "decision_id": decision_id})
    state["stage"] = to_stage
    state["updated_ms"] = now_ms
    if model_version is not None:
        state["model_version"] = model_version
    return entry


def _refuse(entry: dict[str, Any] | None, scope: str, action: str, command_id: str,
            actor: str, target: str | None, reasons: Sequence[str],
            evidence: Mapping[str, str] | None = None) -> tuple[dict[str, Any] | None, Decision]:
    if entry is not None:
        entry = copy.deepcopy(entry)
        _remember(entry, "commands", command_id)
    stage = stage_of(entry)
    decision = Decision(
        decision_id=derive_id("rollout", scope, action, command_id, "refused"), scope=scope,
        action=action, granted=False, from_stage=stage, to_stage=target, actor=actor,
        reason="; ".join(reasons),
        evidence={"stage": stage or "unknown", "target": target or "none",
                  "command_id": command_id, "refused_because": "; ".join(reasons),
                  **(evidence or {})},
    )
    return entry, decision


def register(entry: dict[str, Any] | None, scope: str, model_version: str, now_ms: int,
             actor: str, cause: str) -> tuple[dict[str, Any] | None, Decision | None]:
    """A training profile arrived: an unknown model enters at REPLAY; a new version of a
    known model starts the ladder again at REPLAY; the same version changes nothing."""
    if rollout_scope_problem(scope):
        return entry, None
    if entry is not None and entry["state"]["model_version"] == model_version:
        return entry, None
    before = stage_of(entry)
    reason = (f"model version {model_version} registered from its training profile"
              if entry is None else
              f"new model version {model_version} (was {entry['state']['model_version']}) "
              f"starts the ladder again")
    decision_id = derive_id("rollout", scope, "register", model_version, cause)
    entry = _transition(entry, scope, RolloutStage.REPLAY.value, now_ms, actor, reason,
                        decision_id, model_version)
    entry["state"]["reevaluation"] = None  # a mark is of one version: the new one has none
    return entry, Decision(
        decision_id=decision_id, scope=scope, action="register", granted=True,
        from_stage=before, to_stage=RolloutStage.REPLAY.value, actor=actor, reason=reason,
        evidence={"model_version": model_version, "cause": cause},
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def check_gates(target: str, gates: Gates) -> tuple[list[str], dict[str, str]]:
    """(refusal reasons, evidence) of a promotion to ``target``: no reasons = pass."""
    reasons: list[str] = []
    evidence: dict[str, str] = {}

    drift = gates.drift or {}
    evaluation = drift.get("alert_evaluation") if drift.get("alert") else drift.get("evaluation")
    if evaluation:
        evidence.update({"drift.max_kl": _fmt(evaluation["max_drift"]),
                         "drift.feature": evaluation["max_feature"],
                         "drift.threshold": _fmt(evaluation["threshold"]),
                         "drift.samples": _fmt(evaluation["samples"]),
                         "drift.evaluated_ms": _fmt(evaluation["evaluated_ms"])})
    if drift.get("alert"):
        evidence["drift.status"] = "drifted"
        latest = drift.get("evaluation") or {}
        reasons.append(
            f"drift: KL {_fmt(evaluation and evaluation['max_drift'])} on feature "
            f"{(evaluation or {}).get('max_feature')!r} reached the threshold "
            f"{_fmt(evaluation and evaluation['threshold'])}, so promotions are blocked until "
            f"a fresh evaluation passes (latest KL: {_fmt(latest.get('max_drift'))})")
    else:
        evidence["drift.status"] = "healthy" if evaluation else "not evaluated"

    evidence["incidents.open"] = _listed(gates.critical_incidents)
    if gates.critical_incidents:
        reasons.append(f"open critical incident on the scope "
                       f"({_codes(gates.critical_incidents)}): resolve it first")
    evidence["alerts.critical"] = _listed(gates.critical_alerts)
    if gates.critical_alerts:
        reasons.append(f"critical alert firing on the scope ({_codes(gates.critical_alerts)})")

    evidence["slo.burning"] = ",".join(sorted(gates.slo_burns)) or "none"
    if gates.slo_burns:
        reasons.append(f"SLOs not met: burning {', '.join(sorted(gates.slo_burns))}")

    if target == RolloutStage.LIVE.value:
        reasons += _canary_gate(gates, evidence)
    return reasons, evidence


def _listed(found: Mapping[str, str]) -> str:
    """``reason code:id`` of each, or "none"."""
    return ",".join(f"{code}:{ident}" for ident, code in sorted(found.items())) or "none"


def _codes(found: Mapping[str, str]) -> str:
    return ", ".join(sorted(set(found.values())))


def _canary_gate(gates: Gates, evidence: dict[str, str]) -> list[str]:
    canary = gates.canary or {}
    metrics = canary.get("metrics", {})
    evidence["canary.version"] = _fmt(canary.get("canary_version"))
    evidence["canary.combined"] = _fmt(canary.get("combined"))
    reasons = []
    if not gates.leading_metrics:
        return ["canary: no leading metrics configured"]
    for metric in gates.leading_metrics:
        m = metrics.get(metric)
        if m is None:
            reasons.append(f"canary: no verdict for leading metric {metric}")
            continue
        for name in ("verdict", "mean_canary", "mean_baseline", "delta", "margin", "p_value",
                     "p_noninferior", "p_inferior", "n_canary", "n_baseline", "alpha",
                     "window_start_ms"):
            evidence[f"canary.{metric}.{name}"] = _fmt(m.get(name))
        if m["verdict"] != "promote_eligible":
            reasons.append(f"canary: {metric} is {m['verdict']} ({m['reason']})")
    return reasons


def promote(entry: dict[str, Any] | None, scope: str, target: str | None, gates: Gates,
            actor: str, command_id: str, reason: str,
            now_ms: int) -> tuple[dict[str, Any] | None, Decision | None]:
    """An operator asks to promote ``scope`` to ``target`` (None: the next stage)."""
    if entry is not None and command_id in entry["commands"]:
        return entry, None
    action = "promote"
    problem = rollout_scope_problem(scope)
    if problem:
        return _refuse(entry, scope, action, command_id, actor, target, [problem])
    try:
        wanted = _parse_stage(target)
    except ValueError as exc:
        return _refuse(entry, scope, action, command_id, actor, target, [str(exc)])
    if entry is None:
        if _kind(scope) == "strategy" and wanted == RolloutStage.REPLAY.value:
            decision_id = derive_id("rollout", scope, "register", command_id)
            text = reason or "strategy registered by an operator"
            entry = _transition(None, scope, wanted, now_ms, actor, text, decision_id)
            _remember(entry, "commands", command_id)
            return entry, Decision(decision_id, scope, action, True, None, wanted, actor,
                                   text, {"command_id": command_id})
        why = ("unknown model: a model enters the ladder at REPLAY when its training profile "
               "arrives on model.profiles" if _kind(scope) == "model" else
               "unknown strategy: register it first with PROMOTE target=REPLAY")
        return _refuse(None, scope, action, command_id, actor, target, [why])
    current = entry["state"]["stage"]
    index = STAGES.index(current)
    if index == len(STAGES) - 1:
        return _refuse(entry, scope, action, command_id, actor, wanted,
                       [f"already {current}: there is no stage past {current}"])
    wanted = wanted or STAGES[index + 1]
    step = STAGES.index(wanted) - index
    if step <= 0:
        return _refuse(entry, scope, action, command_id, actor, wanted,
                       [f"{wanted} is not above the current stage {current} "
                        f"(use ROLLBACK to go down)"])
    if step > 1:
        skipped = ", ".join(STAGES[index + 1:index + step])
        return _refuse(entry, scope, action, command_id, actor, wanted,
                       [f"cannot skip {skipped}: promotions go one stage at a time "
                        f"({current} → {STAGES[index + 1]})"])
    refusals, evidence = check_gates(wanted, gates)
    refusals += _reevaluation_gate(entry, evidence)
    if refusals:
        return _refuse(entry, scope, action, command_id, actor, wanted, refusals, evidence)
    decision_id = derive_id("rollout", scope, action, command_id)
    text = reason or f"promoted {current} → {wanted}: gates passed"
    entry = _transition(entry, scope, wanted, now_ms, actor, text, decision_id)
    _remember(entry, "commands", command_id)
    return entry, Decision(decision_id, scope, action, True, current, wanted, actor, text,
                           {"command_id": command_id, **evidence})


def roll_back(entry: dict[str, Any] | None, scope: str, target: str | None, actor: str,
              command_id: str, reason: str,
              now_ms: int) -> tuple[dict[str, Any] | None, Decision | None]:
    """An operator rolls ``scope`` back to ``target`` (None: one stage down)."""
    if entry is not None and command_id in entry["commands"]:
        return entry, None
    action = "rollback"
    problem = rollout_scope_problem(scope)
    if problem:
        return _refuse(entry, scope, action, command_id, actor, target, [problem])
    if entry is None:
        return _refuse(None, scope, action, command_id, actor, target,
                       [f"unknown {_kind(scope)}: {scope} has no rollout state"])
    try:
        wanted = _parse_stage(target)
    except ValueError as exc:
        return _refuse(entry, scope, action, command_id, actor, target, [str(exc)])
    current = entry["state"]["stage"]
    index = STAGES.index(current)
    if wanted is None:
        if index == 0:
            return _refuse(entry, scope, action, command_id, actor, None,
                           [f"already {current}: there is no stage below it"])
        wanted = STAGES[index - 1]
    if STAGES.index(wanted) >= index:
        return _refuse(entry, scope, action, command_id, actor, wanted,
                       [f"{wanted} is not below the current stage {current}"])
    decision_id = derive_id("rollout", scope, action, command_id)
    text = reason or f"rolled back {current} → {wanted} by an operator"
    entry = _transition(entry, scope, wanted, now_ms, actor, text, decision_id)
    _remember(entry, "commands", command_id)
    return entry, Decision(decision_id, scope, action, True, current, wanted, actor, text,
                           {"command_id": command_id})


@dataclass(frozen=True, slots=True)
class RollbackCause:
    """An active alert that demands a rollback (drift, canary regression)."""

    alert_id: str
    reason_code: str
    summary: str
    evidence: Mapping[str, str]


def auto_roll_back(entry: dict[str, Any] | None, scope: str, causes: Sequence[RollbackCause],
                   safe_stage: str | None, actor: str,
                   now_ms: int) -> tuple[dict[str, Any] | None, Decision | None]:
    """Roll back a scope in CANARY or LIVE once for each new cause (one stage down, or
    to ``safe_stage`` when that is lower). Causes already acted on change nothing."""
    if entry is None or entry["state"]["stage"] not in AUTO_ROLLBACK_STAGES:
        return entry, None
    fresh = [cause for cause in causes if cause.alert_id not in entry["acted"]]
    if not fresh:
        return entry, None
    current = entry["state"]["stage"]
    index = STAGES.index(current)
    wanted = STAGES[index - 1]
    if safe_stage is not None and STAGES.index(safe_stage) < index - 1:
        wanted = safe_stage
    ids = ",".join(sorted(cause.alert_id for cause in fresh))
    decision_id = derive_id("rollout", scope, "auto_rollback", ids)
    text = f"automatic rollback {current} → {wanted}: " + "; ".join(c.summary for c in fresh)
    entry = _transition(entry, scope, wanted, now_ms, actor, text, decision_id)
    for cause in fresh:
        _remember(entry, "acted", cause.alert_id)
    evidence: dict[str, str] = {"causes": ids,
                                "reason_codes": ",".join(c.reason_code for c in fresh)}
    for cause in fresh:
        evidence.update(cause.evidence)
    return entry, Decision(decision_id, scope, "auto_rollback", True, current, wanted, actor,
                           text, evidence)


# --- drift forces re-evaluation ---------------------------------------------------------


def reevaluation_of(entry: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The REEVALUATION_REQUIRED mark of the entry's model version, or None."""
    return entry["state"].get("reevaluation") if entry else None


def _reevaluation_gate(entry: Mapping[str, Any], evidence: dict[str, str]) -> list[str]:
    mark = reevaluation_of(entry)
    evidence["reevaluation"] = REEVALUATION_REQUIRED if mark else "not required"
    if not mark:
        return []
    evidence.update({"reevaluation.model_version": mark["model_version"],
                     "reevaluation.since_ms": str(mark["since_ms"]),
                     "reevaluation.alert_id": mark["alert_id"]})
    return [mark["reason"]]


def _iso(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def _note(entry: dict[str, Any], now_ms: int, actor: str, reason: str, decision_id: str,
          event: str, ref: str) -> None:
    """A history entry that keeps the stage (a mark set, an evaluation recorded)."""
    state = entry["state"]
    state["history"].append({"from_stage": state["stage"], "to_stage": state["stage"],
                             "time_ms": now_ms, "actor": actor, "reason": reason,
                             "decision_id": decision_id, "event": event, "ref": ref})
    state["updated_ms"] = now_ms


def require_reevaluation(entry: dict[str, Any] | None, scope: str, alert_id: str,
                         model_version: str, evidence: Mapping[str, str], actor: str,
                         now_ms: int) -> tuple[dict[str, Any] | None, Decision | None]:
    """The drift alert ``alert_id`` fired on ``model_version``: mark it REEVALUATION_REQUIRED
    when it is the version under rollout (once per alert; an already marked version keeps
    its first mark)."""
    if entry is None or entry["state"].get("model_version") != model_version:
        return entry, None
    if alert_id in entry.get("marked", ()):
        return entry, None
    entry = copy.deepcopy(entry)
    entry.setdefault("marked", [])
    _remember(entry, "marked", alert_id)
    mark = reevaluation_of(entry)
    if mark is not None and mark["model_version"] == model_version:
        return entry, None
    reason = (f"re-evaluation required: drift on {model_version} at {_iso(now_ms)} "
              f"(alert {alert_id}); awaiting an evaluation on model.evaluations")
    decision_id = derive_id("rollout", scope, "reevaluation_required", alert_id)
    entry["state"]["reevaluation"] = {"model_version": model_version, "since_ms": now_ms,
                                      "alert_id": alert_id, "reason": reason}
    _note(entry, now_ms, actor, reason, decision_id, "reevaluation_required", alert_id)
    stage = entry["state"]["stage"]
    return entry, Decision(decision_id, scope, "reevaluation_required", True, stage, stage,
                           actor, reason,
                           {"model_version": model_version, "alert_id": alert_id,
                            "reevaluation": REEVALUATION_REQUIRED, **evidence},
                           outcome="marked")


@dataclass(frozen=True, slots=True)
class Evaluation:
    """An evaluation result of one model version (model.evaluations or EVALUATE)."""

    model_version: str
    evaluation_id: str
    passed: bool
    evaluator: str
    time_ms: int
    metrics: Mapping[str, float] = field(default_factory=dict)


def record_evaluation(entry: dict[str, Any] | None, scope: str, evaluation: Evaluation,
                      actor: str, now_ms: int, command_id: str | None = None,
                      reason: str = "") -> tuple[dict[str, Any] | None, Decision | None]:
    """Record an evaluation in the rollout history; a passing one of the marked version
    clears REEVALUATION_REQUIRED. Idempotent by evaluation id (and by ``command_id``, the
    operator command that reported it, if any)."""
    key = f"evaluation:{evaluation.evaluation_id}"
    if entry is not None and (key in entry["commands"] or command_id in entry["commands"]):
        return entry, None
    verdict = "passed" if evaluation.passed else "failed"
    evidence = {**({"command_id": command_id, "target": evaluation.model_version,
                    "reason": reason} if command_id else {}),
                "evaluation_id": evaluation.evaluation_id,
                "model_version": evaluation.model_version, "passed": str(evaluation.passed),
                "evaluator": evaluation.evaluator, "evaluated_ms": str(evaluation.time_ms),
                **{f"metric.{name}": _fmt(value)
                   for name, value in sorted(evaluation.metrics.items())}}
    problem = rollout_scope_problem(scope)
    if problem is None and _kind(scope) != "model":
        problem = f"evaluations are of models, not {scope}"
    if problem is None and entry is None:
        problem = f"unknown model: {scope} has no rollout state"
    if problem is not None:
        return _refuse(entry, scope, "evaluate", key, actor, None, [problem], evidence)
    assert entry is not None
    entry = copy.deepcopy(entry)
    _remember(entry, "commands", key)
    if command_id:
        _remember(entry, "commands", command_id)
    mark = reevaluation_of(entry)
    clears = evaluation.passed and mark is not None and (
        mark["model_version"] == evaluation.model_version)
    reason = (f"evaluation {evaluation.evaluation_id} of {evaluation.model_version} "
              f"{verdict} (evaluator {evaluation.evaluator})")
    if clears:
        assert mark is not None
        reason += f": clears the re-evaluation required since {_iso(mark['since_ms'])}"
        entry["state"]["reevaluation"] = None
    elif mark is not None:
        reason += (f": re-evaluation of {mark['model_version']} still required (it needs a "
                   f"passing evaluation of {mark['model_version']})")
    evidence["summary"] = reason
    evidence["reevaluation"] = ("cleared" if clears else
                                REEVALUATION_REQUIRED if mark else "not required")
    decision_id = derive_id("rollout", scope, "evaluation", evaluation.evaluation_id)
    _note(entry, now_ms, actor, reason, decision_id, "evaluation", evaluation.evaluation_id)
    stage = entry["state"]["stage"]
    return entry, Decision(decision_id, scope, "evaluate", True, stage, stage, actor, reason,
                           evidence, outcome=verdict)
