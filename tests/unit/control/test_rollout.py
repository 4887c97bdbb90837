"""The rollout ladder and its gates, with plain values: registration, one-step promotions
through the gates, refusals with reasons, operator and automatic rollbacks, idempotent
commands. Entries must survive a JSON round trip (they live in a Faust table)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.control import rollout
from streams.control.rollout import Gates, RollbackCause
from streams.records import RolloutState

SCOPE = "model:pricer"
T0 = 1_790_000_000_000
LEADING = ["brier", "slippage_abs_error_bps"]


def round_trip(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    restored = json.loads(json.dumps(entry))
    assert restored == entry
    return restored


def metric(verdict: str = "promote_eligible", delta: float = -0.002) -> dict[str, Any]:
    return {"verdict": verdict, "delta": delta, "margin": 0.01, "p_value": 0.001,
            "p_noninferior": 0.001, "p_inferior": 0.999, "p_better": 0.2, "p_worse": 0.8,
            "n_canary": 60, "n_baseline": 60, "mean_canary": 0.179, "mean_baseline": 0.181,
            "direction": "lower_is_better", "alpha": 0.05, "window_start_ms": T0,
            "reason": f"{verdict} because"}


def eligible_canary(**overrides: dict[str, Any]) -> dict[str, Any]:
    metrics = {name: metric() for name in LEADING} | overrides
    return {"evaluated_ms": T0, "window_s": 3600.0, "canary_version": "v2",
            "combined": "promote_eligible", "regressed": [], "metrics": metrics}


GREEN = Gates(canary=eligible_canary(), leading_metrics=LEADING)


def registered(version: str = "v2") -> dict[str, Any]:
    entry, decision = rollout.register(None, SCOPE, version, T0, "agents.rollout", "profile:1")
    assert decision is not None and decision.granted
    return round_trip(entry)


def at(stage: str) -> dict[str, Any]:
    entry = registered()
    for n, target in enumerate(rollout.STAGES[1:rollout.STAGES.index(stage) + 1]):
        entry, decision = rollout.promote(entry, SCOPE, target, GREEN, "operator:alice",
                                          f"walk-{n}", "", T0 + n + 1)
        assert decision is not None and decision.granted, decision
    assert entry["state"]["stage"] == stage
    return round_trip(entry)


def promote(entry: dict[str, Any] | None, target: str | None = None, gates: Gates = GREEN,
            command_id: str = "c1", scope: str = SCOPE) -> tuple[Any, rollout.Decision]:
    new, decision = rollout.promote(entry, scope, target, gates, "operator:alice", command_id,
                                    "", T0 + 100)
    assert decision is not None
    return round_trip(new), decision


# --- entering the ladder ------------------------------------------------------------------


def test_a_profile_registers_an_unknown_model_at_replay() -> None:
    entry, decision = rollout.register(None, SCOPE, "v2", T0, "agents.rollout", "profile:v2@1")
    assert decision.granted and decision.action == "register"
    assert (decision.from_stage, decision.to_stage) == (None, "REPLAY")
    state = RolloutState(**entry["state"])  # the entry's state is a valid RolloutState
    assert state.stage.value == "REPLAY" and state.model_version == "v2"
    assert state.history[0].from_stage is None and state.history[0].actor == "agents.rollout"
    assert state.history[0].decision_id == decision.decision_id


def test_the_same_profile_again_changes_nothing_and_a_new_version_restarts_the_ladder() -> None:
    entry = at("CANARY")
    same, decision = rollout.register(entry, SCOPE, "v2", T0 + 5, "agents.rollout", "p")
    assert decision is None and same == entry
    new, decision = rollout.register(entry, SCOPE, "v3", T0 + 5, "agents.rollout", "p3")
    assert decision.granted and (decision.from_stage, decision.to_stage) == ("CANARY", "REPLAY")
    assert new["state"]["model_version"] == "v3" and new["state"]["stage"] == "REPLAY"
    assert entry["state"]["stage"] == "CANARY", "the input entry is not mutated"


def test_promoting_an_unknown_model_is_refused_with_how_models_enter() -> None:
    entry, decision = promote(None, "SHADOW")
    assert entry is None and not decision.granted
    assert "unknown model" in decision.reason and "model.profiles" in decision.reason
    _, decision = promote(None, "REPLAY")
    assert not decision.granted, "a model cannot be registered by a command"


def test_a_strategy_is_registered_by_promote_to_replay() -> None:
    scope = "strategy:mm1"
    _, refused = promote(None, "SHADOW", scope=scope)
    assert not refused.granted and "unknown strategy" in refused.reason
    entry, decision = promote(None, "REPLAY", scope=scope)
    assert decision.granted and decision.action == "promote" and decision.to_stage == "REPLAY"
    assert entry["state"]["stage"] == "REPLAY" and entry["commands"] == ["c1"]


@pytest.mark.parametrize("scope", ["market:m1", "bot:b1", "model:a/market:m1", "global"])
def test_only_model_and_strategy_scopes_have_a_ladder(scope: str) -> None:
    _, decision = promote(None, "SHADOW", scope=scope)
    assert not decision.granted and "model:<id> or strategy:<id>" in decision.reason
    assert rollout.register(None, scope, "v1", T0, "x", "c") == (None, None)


# --- promotion ----------------------------------------------------------------------------


def test_the_full_ladder_is_walked_one_stage_at_a_time() -> None:
    entry = at("LIVE")
    history = RolloutState(**entry["state"]).history
    assert [(h.from_stage and h.from_stage.value, h.to_stage.value) for h in history] == [
        (None, "REPLAY"), ("REPLAY", "SHADOW"), ("SHADOW", "PAPER"), ("PAPER", "CANARY"),
        ("CANARY", "LIVE")]
    assert len({h.decision_id for h in history}) == 5
    assert entry["commands"] == ["walk-0", "walk-1", "walk-2", "walk-3"]


def test_promote_without_target_goes_to_the_next_stage() -> None:
    entry, decision = promote(registered(), None)
    assert decision.granted and (decision.from_stage, decision.to_stage) == ("REPLAY", "SHADOW")
    assert entry["state"]["stage"] == "SHADOW"


def test_skipping_a_stage_is_refused_and_changes_nothing_but_the_command_memory() -> None:
    entry = registered()
    new, decision = promote(entry, "PAPER")
    assert not decision.granted
    assert "cannot skip SHADOW" in decision.reason
    assert new["state"] == entry["state"] and new["commands"] == ["c1"]
    assert decision.evidence["refused_because"] == decision.reason
    assert decision.evidence["stage"] == "REPLAY" and decision.evidence["target"] == "PAPER"


def test_promoting_past_live_is_refused() -> None:
    _, decision = promote(at("LIVE"), None)
    assert not decision.granted and "no stage past LIVE" in decision.reason


@pytest.mark.parametrize(("target", "words"), [
    ("SHADOW", "not above the current stage PAPER"), ("PAPER", "not above"),
    ("PRODUCTION", "unknown stage 'PRODUCTION'"),
])
def test_a_promotion_that_is_not_one_step_up_is_refused(target: str, words: str) -> None:
    _, decision = promote(at("PAPER"), target)
    assert not decision.granted and words in decision.reason


def test_stage_names_are_case_insensitive() -> None:
    _, decision = promote(registered(), "shadow")
    assert decision.granted and decision.to_stage == "SHADOW"


def test_a_repeated_command_id_is_ignored() -> None:
    entry, decision = promote(registered(), "SHADOW", command_id="same")
    assert decision.granted
    again, repeat = rollout.promote(entry, SCOPE, "PAPER", GREEN, "operator:bob", "same", "",
                                    T0 + 200)
    assert repeat is None and again == entry
    refused, decision = promote(entry, "LIVE", command_id="r1")
    assert not decision.granted
    assert rollout.promote(refused, SCOPE, "LIVE", GREEN, "x", "r1", "", T0)[1] is None


def test_decision_ids_are_deterministic() -> None:
    _, first = promote(registered(), "SHADOW")
    _, second = promote(registered(), "SHADOW")
    assert first.decision_id == second.decision_id
    _, other = promote(registered(), "SHADOW", command_id="c2")
    assert other.decision_id != first.decision_id


# --- gates --------------------------------------------------------------------------------


DRIFTED = {"alert": {"alert_id": "alert-d1", "reason_code": "RISK_MODEL_DRIFT"},
           "evaluation": {"max_drift": 0.31, "max_feature": "spread", "threshold": 0.2,
                          "samples": 500, "evaluated_ms": T0, "healthy": False},
           "alert_evaluation": {"max_drift": 0.43, "max_feature": "spread", "threshold": 0.2,
                                "samples": 400, "evaluated_ms": T0 - 1, "healthy": False}}
HEALTHY_DRIFT = {"alert": None, "alert_evaluation": None,
                 "evaluation": {"max_drift": 0.04, "max_feature": "depth", "threshold": 0.2,
                                "samples": 500, "evaluated_ms": T0, "healthy": True}}


@pytest.mark.parametrize("stage", ["REPLAY", "PAPER", "CANARY"])
def test_drift_blocks_every_promotion(stage: str) -> None:
    gates = Gates(drift=DRIFTED, canary=eligible_canary(), leading_metrics=LEADING)
    _, decision = promote(at(stage), None, gates)
    assert not decision.granted
    assert decision.reason.startswith("drift: KL 0.43 on feature 'spread'")
    assert "until a fresh evaluation passes" in decision.reason
    assert decision.evidence["drift.status"] == "drifted"
    assert decision.evidence["drift.max_kl"] == "0.43"


def test_healthy_drift_passes_and_is_in_the_evidence() -> None:
    gates = Gates(drift=HEALTHY_DRIFT, canary=eligible_canary(), leading_metrics=LEADING)
    _, decision = promote(registered(), "SHADOW", gates)
    assert decision.granted
    assert decision.evidence["drift.status"] == "healthy"
    assert decision.evidence["drift.max_kl"] == "0.04"
    assert decision.evidence["drift.feature"] == "depth"


def test_no_drift_evaluation_yet_does_not_block() -> None:
    _, decision = promote(registered(), "SHADOW", Gates())
    assert decision.granted and decision.evidence["drift.status"] == "not evaluated"


def test_an_open_critical_incident_blocks_promotion() -> None:
    gates = Gates(critical_incidents={"inc-heartbeat-1": "GOV_HEARTBEAT_MISSED"})
    _, decision = promote(registered(), "SHADOW", gates)
    assert not decision.granted
    assert decision.reason == ("open critical incident on the scope (GOV_HEARTBEAT_MISSED): "
                               "resolve it first")
    assert decision.evidence["incidents.open"] == "GOV_HEARTBEAT_MISSED:inc-heartbeat-1"
    assert decision.evidence["alerts.critical"] == "none"


def test_a_critical_alert_firing_blocks_promotion_before_its_incident_is_known() -> None:
    gates = Gates(critical_alerts={"alert-x": "RISK_STALE_BOOK"})
    _, decision = promote(registered(), "SHADOW", gates)
    assert not decision.granted
    assert decision.reason == "critical alert firing on the scope (RISK_STALE_BOOK)"
    assert decision.evidence["alerts.critical"] == "RISK_STALE_BOOK:alert-x"
    assert decision.evidence["incidents.open"] == "none"


def test_no_incident_and_no_alert_is_evidence_too() -> None:
    _, decision = promote(registered(), "SHADOW", Gates())
    assert decision.granted
    assert (decision.evidence["incidents.open"], decision.evidence["alerts.critical"]) == (
        "none", "none")


def test_slo_burn_blocks_promotion() -> None:
    _, decision = promote(registered(), "SHADOW", Gates(slo_burns={"inference": "alert-s"}))
    assert not decision.granted and "SLOs not met: burning inference" in decision.reason


def test_every_failing_gate_is_named() -> None:
    gates = Gates(drift=DRIFTED, critical_incidents={"i": "RISK_CANARY_REGRESSION"},
                  critical_alerts={"a": "RISK_CANARY_REGRESSION"},
                  slo_burns={"inference": "s"}, canary=None, leading_metrics=LEADING)
    _, decision = promote(at("CANARY"), "LIVE", gates)
    reasons = decision.reason.split("; ")
    assert [r.split(":")[0].split(" ")[0] for r in reasons] == [
        "drift", "open", "critical", "SLOs", "canary", "canary"]


def test_canary_to_live_needs_every_leading_metric_eligible() -> None:
    _, granted = promote(at("CANARY"), "LIVE")
    assert granted.granted
    assert granted.evidence["canary.brier.delta"] == "-0.002"
    assert granted.evidence["canary.brier.margin"] == "0.01"
    assert granted.evidence["canary.brier.p_value"] == "0.001"
    assert granted.evidence["canary.brier.mean_canary"] == "0.179"
    assert granted.evidence["canary.brier.mean_baseline"] == "0.181"
    assert granted.evidence["canary.brier.verdict"] == "promote_eligible"
    assert granted.evidence["canary.slippage_abs_error_bps.n_canary"] == "60"

    held = Gates(canary=eligible_canary(brier=metric("hold", 0.0)), leading_metrics=LEADING)
    _, refused = promote(at("CANARY"), "LIVE", held)
    assert not refused.granted and refused.reason.startswith("canary: brier is hold")
    assert refused.evidence["canary.brier.verdict"] == "hold"

    missing = Gates(canary=eligible_canary(), leading_metrics=[*LEADING, "fill_ratio"])
    _, refused = promote(at("CANARY"), "LIVE", missing)
    assert "no verdict for leading metric fill_ratio" in refused.reason


def test_the_canary_gate_applies_only_to_live() -> None:
    no_canary = Gates(canary=None, leading_metrics=LEADING)
    _, decision = promote(at("PAPER"), "CANARY", no_canary)
    assert decision.granted


# --- rollback -----------------------------------------------------------------------------


def test_operator_rollback_goes_one_stage_down_or_to_the_target() -> None:
    entry, decision = rollout.roll_back(at("LIVE"), SCOPE, None, "operator:bob", "r1", "why",
                                        T0 + 9)
    assert decision.granted and (decision.from_stage, decision.to_stage) == ("LIVE", "CANARY")
    assert entry["state"]["history"][-1]["reason"] == "why"
    entry, decision = rollout.roll_back(entry, SCOPE, "REPLAY", "operator:bob", "r2", "",
                                        T0 + 10)
    assert decision.granted and entry["state"]["stage"] == "REPLAY"


@pytest.mark.parametrize(("stage", "target", "words"), [
    ("REPLAY", None, "no stage below it"), ("PAPER", "PAPER", "not below"),
    ("PAPER", "LIVE", "not below"), ("PAPER", "NOWHERE", "unknown stage"),
])
def test_impossible_rollbacks_are_refused(stage: str, target: str | None, words: str) -> None:
    _, decision = rollout.roll_back(at(stage), SCOPE, target, "operator:bob", "r", "", T0)
    assert decision is not None and not decision.granted and words in decision.reason


def test_rolling_back_an_unknown_model_is_refused() -> None:
    entry, decision = rollout.roll_back(None, SCOPE, None, "operator:bob", "r", "", T0)
    assert entry is None and not decision.granted and "no rollout state" in decision.reason


REGRESSION = RollbackCause(alert_id="alert-c1", reason_code="RISK_CANARY_REGRESSION",
                           summary="canary regressed on brier", evidence={"metric": "brier"})


@pytest.mark.parametrize(("stage", "expected"), [("CANARY", "PAPER"), ("LIVE", "CANARY")])
def test_a_regression_in_canary_or_live_rolls_back_one_stage_once(stage: str,
                                                                  expected: str) -> None:
    entry, decision = rollout.auto_roll_back(at(stage), SCOPE, [REGRESSION], None,
                                             "agents.rollout", T0 + 50)
    assert decision.granted and decision.action == "auto_rollback"
    assert (decision.from_stage, decision.to_stage) == (stage, expected)
    assert "canary regressed on brier" in decision.reason
    assert decision.evidence["metric"] == "brier"
    assert decision.evidence["reason_codes"] == "RISK_CANARY_REGRESSION"
    entry = round_trip(entry)
    assert entry["acted"] == ["alert-c1"]
    assert rollout.auto_roll_back(entry, SCOPE, [REGRESSION], None, "x", T0 + 60)[1] is None


@pytest.mark.parametrize("stage", ["REPLAY", "SHADOW", "PAPER"])
def test_below_canary_nothing_rolls_back_automatically(stage: str) -> None:
    entry = at(stage)
    assert rollout.auto_roll_back(entry, SCOPE, [REGRESSION], None, "x", T0) == (entry, None)


def test_the_safe_stage_is_where_an_automatic_rollback_goes() -> None:
    _, decision = rollout.auto_roll_back(at("LIVE"), SCOPE, [REGRESSION], "SHADOW", "x", T0)
    assert decision.to_stage == "SHADOW"
    _, decision = rollout.auto_roll_back(at("CANARY"), SCOPE, [REGRESSION], "CANARY", "x", T0)
    assert decision.to_stage == "PAPER", "a safe stage above one-down is not a rollback target"


def test_drift_and_regression_together_roll_back_once() -> None:
    drift_cause = RollbackCause("alert-d1", "RISK_MODEL_DRIFT", "drift", {"drift.max_kl": "1"})
    entry, decision = rollout.auto_roll_back(at("LIVE"), SCOPE, [REGRESSION, drift_cause],
                                             None, "x", T0)
    assert decision.to_stage == "CANARY"
    assert decision.evidence["causes"] == "alert-c1,alert-d1"
    assert sorted(entry["acted"]) == ["alert-c1", "alert-d1"]


# --- drift forces re-evaluation -------------------------------------------------------------

EVIDENCE = {"drift.max_kl": "0.9", "drift.feature": "spread"}


def marked(stage: str = "PAPER", alert_id: str = "alert-drift-1") -> dict[str, Any]:
    entry, decision = rollout.require_reevaluation(at(stage), SCOPE, alert_id, "v2", EVIDENCE,
                                                   "agents.rollout", T0 + 50)
    assert decision is not None and decision.action == "reevaluation_required"
    return round_trip(entry)


def evaluate(entry: dict[str, Any], passed: bool, version: str = "v2",
             evaluation_id: str = "eval-1") -> tuple[Any, rollout.Decision]:
    new, decision = rollout.record_evaluation(
        entry, SCOPE, rollout.Evaluation(version, evaluation_id, passed, "stage10", T0 + 60,
                                         {"brier": 0.179}),
        "evaluator:stage10", T0 + 70)
    assert decision is not None
    return round_trip(new), decision


def test_drift_on_the_version_under_rollout_marks_it_reevaluation_required() -> None:
    entry = marked()
    state = RolloutState(**entry["state"])  # the mark is part of the published state
    assert state.stage.value == "PAPER"  # the stage is unchanged
    assert state.reevaluation is not None and state.reevaluation.model_version == "v2"
    assert state.reevaluation.alert_id == "alert-drift-1"
    assert state.history[-1].event == "reevaluation_required"
    assert state.history[-1].ref == "alert-drift-1"
    # once per alert: the same alert again changes nothing
    again, decision = rollout.require_reevaluation(entry, SCOPE, "alert-drift-1", "v2", {},
                                                   "agents.rollout", T0 + 90)
    assert decision is None and again["state"] == entry["state"]


def test_drift_on_another_version_does_not_mark() -> None:
    entry, decision = rollout.require_reevaluation(at("PAPER"), SCOPE, "a1", "v1", {},
                                                   "agents.rollout", T0)
    assert decision is None and rollout.reevaluation_of(entry) is None


def test_a_marked_version_is_refused_promotion_even_with_every_gate_green() -> None:
    # GREEN: drift healthy again (no alert), canary eligible, no incident
    entry, decision = promote(marked(), "CANARY")
    assert not decision.granted and entry["state"]["stage"] == "PAPER"
    assert "re-evaluation required: drift on v2 at" in decision.reason
    assert "awaiting an evaluation on model.evaluations" in decision.reason
    assert decision.evidence["reevaluation"] == "REEVALUATION_REQUIRED"
    assert decision.evidence["reevaluation.alert_id"] == "alert-drift-1"


def test_a_failing_evaluation_is_recorded_and_keeps_the_mark() -> None:
    entry, decision = evaluate(marked(), passed=False)
    assert decision.outcome == "failed" and decision.evidence["reevaluation"] == (
        "REEVALUATION_REQUIRED")
    assert decision.action == "evaluate"  # the action of EVALUATE, as the API's retries check
    assert rollout.reevaluation_of(entry) is not None
    last = entry["state"]["history"][-1]
    assert (last["event"], last["ref"]) == ("evaluation", "eval-1")
    assert "failed" in last["reason"]
    _, refused = promote(entry, "CANARY")
    assert not refused.granted and "re-evaluation required" in refused.reason


def test_a_passing_evaluation_of_another_version_keeps_the_mark() -> None:
    entry, decision = evaluate(marked(), passed=True, version="v1")
    assert decision.outcome == "passed" and rollout.reevaluation_of(entry) is not None
    assert "still required" in decision.reason
    _, refused = promote(entry, "CANARY")
    assert not refused.granted


def test_a_passing_evaluation_of_the_version_clears_the_mark() -> None:
    entry, decision = evaluate(marked(), passed=True)
    assert decision.outcome == "passed" and decision.evidence["reevaluation"] == "cleared"
    assert decision.evidence["metric.brier"] == "0.179"
    assert rollout.reevaluation_of(entry) is None
    assert RolloutState(**entry["state"]).reevaluation is None
    entry, granted = promote(entry, "CANARY")
    assert granted.granted and entry["state"]["stage"] == "CANARY"
    assert granted.evidence["reevaluation"] == "not required"


def test_evaluations_are_idempotent_by_id_and_need_a_known_model() -> None:
    entry, _ = evaluate(marked(), passed=False)
    again, decision = rollout.record_evaluation(
        entry, SCOPE, rollout.Evaluation("v2", "eval-1", True, "x", T0), "x", T0 + 80)
    assert decision is None and again == entry  # the same id: already recorded
    _, unknown = rollout.record_evaluation(
        None, SCOPE, rollout.Evaluation("v2", "eval-2", True, "x", T0), "x", T0)
    assert unknown is not None and not unknown.granted and "unknown model" in unknown.reason


def test_the_mark_does_not_block_rollbacks_and_a_new_version_starts_unmarked() -> None:
    entry = marked("CANARY")
    back, decision = rollout.roll_back(entry, SCOPE, None, "operator:alice", "rb1", "",
                                       T0 + 100)
    assert decision is not None and decision.granted and back["state"]["stage"] == "PAPER"
    assert rollout.reevaluation_of(back) is not None  # still marked after a rollback
    fresh, registered_decision = rollout.register(back, SCOPE, "v3", T0 + 200, "agents.rollout",
                                                  "profile:v3")
    assert registered_decision is not None and rollout.reevaluation_of(fresh) is None
