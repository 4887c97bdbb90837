"""The API's pure parts: precise 400s for malformed requests, scope filters, and the JSON
views built from table state and output records."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from streams.control.incidents import resolved_alert_id
from streams.records import (
    AuditPayload,
    IncidentPayload,
    PauseState,
    ReportEnvelope,
    RolloutState,
    TimelineEntry,
)
from streams.web import api
from streams.web.api import REASON, ApiError, ScopeFilter


def error_of(call: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


# --- bodies ---------------------------------------------------------------------------

STAGE = api.STAGE


def test_a_valid_body_is_parsed_and_trimmed() -> None:
    body = api.parse_body(b'{"reason": " feed down ", "to_stage": "paper"}',
                          {"reason": REASON, "to_stage": STAGE})
    assert body == {"reason": "feed down", "to_stage": "PAPER"}


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "body: expected a JSON object with 'reason', got an empty body"),
    (b"{", "body is not valid JSON: Expecting property name enclosed in double quotes: "
           "line 1 column 2 (char 1)"),
    (b"[1]", "body: expected a JSON object with 'reason', got list"),
    (b'{"reason": "x", "force": true}', "body: unknown field 'force' (allowed: reason)"),
    (b"{}", "reason: required"),
    (b'{"reason": "  "}', "reason: must not be empty"),
    (b'{"reason": 3}', "reason: expected a string, got int"),
    (b'{"reason": "' + b"x" * 501 + b'"}', "reason: at most 500 characters, got 501"),
    # the bound is on what came, before trimming: the document's maxLength says the same
    (b'{"reason": " ' + b"x" * 499 + b' "}', "reason: at most 500 characters, got 501"),
    (b'{"reason": null}', "reason: expected a string, got null"),
    (b"\xff\xfe", "body is not valid JSON"),
])
def test_malformed_bodies_are_400_with_a_precise_message(raw: bytes, message: str) -> None:
    error = error_of(api.parse_body, raw, {"reason": REASON})
    assert error.status == 400 and error.message.startswith(message)


def test_a_stage_outside_the_ladder_is_named() -> None:
    error = error_of(api.parse_body, b'{"reason": "x", "to_stage": "prod"}',
                     {"reason": REASON, "to_stage": STAGE})
    assert error.message == "to_stage: 'prod' is not one of replay, shadow, paper, canary, live"


@pytest.mark.parametrize(("stage", "message"), [
    ("Paper", "to_stage: 'Paper' must be in upper or lower case (PAPER or paper)"),
    (" paper", "to_stage: ' paper' is not one of"),  # a choice is not trimmed
    ("x" * 600, "to_stage: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... "
                "(600 chars) is not one of"),
])
def test_a_stage_is_one_of_the_documented_spellings(stage: str, message: str) -> None:
    raw = json.dumps({"reason": "x", "to_stage": stage}).encode()
    assert error_of(api.parse_body, raw, api.ROLLBACK_BODY).message.startswith(message)
    assert api.parse_body(b'{"reason": "x", "to_stage": "LIVE"}', api.ROLLBACK_BODY) == \
        {"reason": "x", "to_stage": "LIVE"}


def test_an_optional_stage_may_be_absent_but_not_null() -> None:
    assert api.parse_body(b'{"reason": "x"}', api.PROMOTE_BODY) == {"reason": "x"}
    error = error_of(api.parse_body, b'{"reason": "x", "to_stage": null}', api.PROMOTE_BODY)
    assert error.message == "to_stage: expected a string, got null"


def test_idempotency_keys() -> None:
    assert api.command_id("ticket-42:retry.1") == "ticket-42:retry.1"
    assert api.command_id(None).startswith("api-")
    assert api.command_id(None) != api.command_id(None)
    for bad in ("", "a b", "x" * 129, "ü", "key\n", ".", ".key"):
        assert error_of(api.command_id, bad).status == 400


# --- path parameters ------------------------------------------------------------------


def test_scopes_incident_ids_and_models_in_paths() -> None:
    assert api.check_scope("bot:b1/market:m7") == "bot:b1/market:m7"
    assert error_of(api.check_scope, "market:").message == \
        "scope: scope 'market:': segment 'market:' is not kind:id"
    assert "unknown scope kind 'desk'" in error_of(api.check_scope, "desk:d1").message
    assert api.rollout_scope("m1") == "model:m1"
    assert api.rollout_scope("strategy:s1") == "strategy:s1"
    assert api.rollout_scope("model:..") == "model:.."
    assert error_of(api.rollout_scope, "..").message == \
        "model: a bare model id must not start with '.' (got '..'): write model:<id>"
    assert api.rollback_scope("model:m1") == "model:m1"
    assert "is not kind:id" in error_of(api.rollback_scope, "m1").message
    assert "not a model or strategy" in error_of(api.rollout_scope, "market:m1").message
    assert "not a model or strategy" in error_of(api.rollout_scope, "model:a/market:b").message
    assert "not an incident id" in error_of(api.incident_path_id, "INC-1").message
    incident = "inc-staleness-" + "a" * 24
    assert api.incident_path_id(incident) == incident
    assert "not an incident id" in error_of(api.incident_path_id, incident + "\n").message
    assert error_of(api.incident_path_id, "inc-" + "a" * 130).message == \
        "incident_id: at most 128 characters, got 134"
    assert error_of(api.check_scope, "market:m1\n").status == 400
    assert error_of(api.check_scope, "market:" + "m" * 128 + "/bot:" + "b" * 128).message \
        .endswith("268 characters, at most 256")
    assert api.command_path_id("api-0a1b") == "api-0a1b"
    assert "not a command id" in error_of(api.command_path_id, "a b").message
    assert api.metric_names(["polymon_api_requests_total"]) == ["polymon_api_requests_total"]
    assert error_of(api.metric_names, ["up", "1bad"]).message == \
        "name[]: '1bad' is not a metric name"


def test_promotion_and_rollback_checks_against_the_current_stage() -> None:
    paper = {"stage": "PAPER"}
    api.check_promotion("model:m", paper, None)
    api.check_promotion("model:m", paper, "CANARY")
    api.check_promotion("model:m", None, "SHADOW")  # unknown here: the rollout agent decides
    assert error_of(api.check_promotion, "model:m", paper, "SHADOW").status == 409
    assert "already LIVE" in error_of(api.check_promotion, "model:m", {"stage": "LIVE"},
                                      None).message
    api.check_rollback("model:m", paper, "REPLAY")
    assert error_of(api.check_rollback, "model:m", paper, "PAPER").status == 409
    assert error_of(api.check_rollback, "model:m", None, "REPLAY").status == 404


# --- query parameters -----------------------------------------------------------------


def test_query_parameters_are_checked() -> None:
    incidents = api.ROUTE_QUERIES["/api/incidents"]
    params = api.parse_query({"scope": "bot:b1", "state": "open,ACKNOWLEDGED", "limit": "5"},
                             incidents)
    assert params == {"scope": "bot:b1", "state": ["OPEN", "ACKNOWLEDGED"], "limit": 5}
    assert error_of(api.parse_query, {"scoep": "x"}, api.ROUTE_QUERIES["/api/rollout"]) \
        .message == "unknown query parameter 'scoep' (allowed: scope, kind)"
    assert error_of(api.parse_query, {"x": "1"}, {}).message == \
        "unknown query parameter 'x' (allowed: none)"
    assert error_of(api.parse_query, [("limit", "1"), ("limit", "2")], incidents).message == \
        "limit: given more than once"
    assert error_of(api.parse_query, {"state": "closed"}, incidents).message == \
        "state: CLOSED is not one of open, acknowledged, resolved"
    assert error_of(api.parse_query, {"state": "open,"}, incidents).message == \
        "state: nothing is not one of open, acknowledged, resolved"
    assert error_of(api.parse_query, {"state": " open"}, incidents).message == \
        "state: ' open' is not one of open, acknowledged, resolved"
    assert error_of(api.parse_query, {"state": "Open"}, incidents).message == \
        "state: 'Open' must be in upper or lower case (OPEN or open)"
    assert api.parse_query({"severity": "info,INFO"}, incidents) == {"severity": ["INFO"] * 2}
    assert error_of(api.parse_query, {"severity": ",".join(["info"] * 7)}, incidents) \
        .message == "severity: at most 6 values, got 7"
    for bad in ("0", "5001", "+5", "1.5", "²"):
        assert "limit: expected an integer from 1 to 5000" in error_of(
            api.parse_query, {"limit": bad}, incidents).message
    assert "kind: 'desk' is not one of" in error_of(api.parse_query, {"kind": "desk"},
                                                    incidents).message
    pauses = api.ROUTE_QUERIES["/api/pauses"]
    for bad in ("maybe", "1", "TRUE", "yes"):
        assert "paused: expected true or false" in error_of(api.parse_query, {"paused": bad},
                                                            pauses).message
    assert api.parse_query({"paused": "false"}, pauses) == {"paused": False}
    freshness = api.ROUTE_QUERIES["/api/freshness"]
    assert api.parse_query({"local": "true"}, freshness)["local"] is True
    assert error_of(api.parse_query, {"local": "true"}, pauses).message == \
        "unknown query parameter 'local' (allowed: scope, kind, paused)"
    assert error_of(api.parse_query, {"verbose": "1"}, freshness).message == \
        "unknown query parameter 'verbose' (allowed: scope, kind, stale)"
    audit = api.ROUTE_QUERIES["/api/audit"]
    assert api.parse_query({"action": "PAUSE"}, audit) == {"action": "pause"}
    assert "not an action name" in error_of(api.parse_query, {"action": "a b"}, audit).message
    scopes = api.ROUTE_QUERIES["/api/scopes"]
    assert api.parse_query({"scope": "market:"}, scopes) == {"scope": "market:"}
    assert "not a scope prefix" in error_of(api.parse_query, {"scope": "x" * 257},
                                            scopes).message


def test_a_scope_filter_covers_what_a_pause_of_it_would_cover() -> None:
    market = ScopeFilter("market:m7")
    assert market.matches("market:m7") and market.matches("bot:b1/market:m7")
    assert not market.matches("market:m70") and not market.matches("bot:b1")
    assert ScopeFilter("global").matches("feed:x")
    assert ScopeFilter(kind="bot").matches("bot:b1")
    assert not ScopeFilter(kind="bot").matches("bot:b1/market:m7")


# --- views of table state -------------------------------------------------------------

HEALTH = [
    ("market:m1", {"partition": 0, "heartbeat": None, "feeds": {
        "book": {"last_event_ms": 1_000, "alert": {"alert_id": "alert-1"}, "highest": 20,
                 "count": 17, "gaps": {"outstanding": [11, 12], "lost": 3, "duplicates": 1,
                                       "reorders": 2}},
        "registry": {"last_event_ms": 5_000, "alert": None, "highest": None, "count": 0,
                     "gaps": None}}}),
    ("bot:b1", {"partition": 1, "feeds": {},
                "heartbeat": {"last_event_ms": 4_000, "interval_ms": 500, "alert": None}}),
]


def test_freshness_rows_carry_age_threshold_and_gap_counts() -> None:
    rows = api.freshness_rows(HEALTH, 6_000, lambda scope, feed: 2.0 if feed == "book" else 10,
                              ScopeFilter())
    assert set(rows) == {"market:m1"}
    book = rows["market:m1"]["feeds"]["book"]
    assert book == {"last_event_ms": 1_000, "age_s": 5.0, "threshold_s": 2.0, "stale": True,
                    "alert_id": "alert-1", "highest_sequence": 20, "missing": 5,
                    "duplicates": 1, "reorders": 2, "count": 17}
    assert rows["market:m1"]["feeds"]["registry"]["stale"] is False
    assert rows["market:m1"]["stale"] and rows["market:m1"]["missing"] == 5
    only_stale = api.freshness_rows(HEALTH, 6_000, lambda s, f: 2.0, ScopeFilter(), True)
    assert set(only_stale["market:m1"]["feeds"]) == {"book"}
    assert api.freshness_rows(HEALTH, 6_000, lambda s, f: 9.0, ScopeFilter(), True) == {}


def test_heartbeat_rows() -> None:
    rows = api.heartbeat_rows(HEALTH, 5_600, 3.0, ScopeFilter())
    assert rows == {"bot:b1": {"last_event_ms": 4_000, "age_s": 1.6, "interval_ms": 500,
                               "limit_s": 1.5, "healthy": False, "alert_id": None}}
    assert api.heartbeat_rows(HEALTH, 5_600, 3.0, ScopeFilter("market:m1")) == {}


def test_execution_and_drift_rows() -> None:
    figures = {"tumbling": {"fill_ratio": 0.4, "fills": 30}}
    execution = [
        ("market:m1", {"partition": 0, "figures": figures, "last_event_ms": 9,
                       "alerts": {"EXEC_FILL_RATIO_LOW": {"alert_id": "a1"},
                                  "EXEC_SLIPPAGE_BREACH": None}}),
        ("model:x#CANARY", {"partition": 0, "figures": {}, "alerts": {}}),
    ]
    rows = api.execution_rows(execution, ScopeFilter())
    assert rows["market:m1"]["breaching"] == ["EXEC_FILL_RATIO_LOW"]
    assert rows["market:m1"]["windows"] == figures
    assert rows["model:x#CANARY"]["scope"] == "model:x" and rows["model:x#CANARY"][
        "cohort"] == "CANARY"
    assert set(api.execution_rows(execution, ScopeFilter("model:x"))) == {"model:x#CANARY"}
    models = api.drift_rows(
        [("model:x", {"evaluation": {"max_drift": 0.09, "healthy": True}, "alert": None})],
        [("model:x", {"evaluation": {"combined": "hold", "metrics": {"brier": {"delta": -0.002}},
                                     "baseline_delta": {"brier": {"delta": 0.004}}},
                      "alert": {"alert_id": "c1"}})], ScopeFilter())
    assert models["model:x"]["drift"] == {"max_drift": 0.09, "healthy": True, "alert_id": None}
    assert models["model:x"]["canary"]["metrics"]["brier"]["delta"] == -0.002
    assert models["model:x"]["canary"]["baseline_delta"]["brier"]["delta"] == 0.004
    assert models["model:x"]["canary"]["alert_id"] == "c1"


def test_an_evaluation_is_reported_for_a_model_and_a_retry_must_match() -> None:
    assert api.evaluation_scope("m1") == api.evaluation_scope("model:m1") == "model:m1"
    with pytest.raises(ApiError, match="evaluations are of models"):
        api.evaluation_scope("strategy:s1")
    body = api.parse_body(json.dumps({"reason": "r", "model_version": "v2",
                                      "evaluation_id": "run-1", "result": "passed"}).encode(),
                          api.EVALUATION_BODY)
    assert body["result"] == "PASSED"
    previous = {"action": "evaluate", "actor": "operator:alice", "scope": "model:m1",
                "evidence": {"reason": "r", "target": "v2", "model_version": "v2",
                             "evaluation_id": "run-1", "passed": "True"}}
    assert api.reuse_differences(previous, "alice", "EVALUATE", "model:m1", body) == []
    other = {**body, "evaluation_id": "run-2", "result": "FAILED"}
    assert api.reuse_differences(previous, "alice", "EVALUATE", "model:m1", other) == [
        "evaluation_id", "result"]


# --- views of output records ----------------------------------------------------------


def incident_envelope(state: str, timeline: list[TimelineEntry]) -> ReportEnvelope:
    return ReportEnvelope(
        envelope_id="incident-v", source="agents.incidents", reason_code="RISK_STALE_BOOK",
        severity="CRITICAL", scope="market:m1", dedup_key="market:m1|staleness",
        observed_time_ms=9, event_time_ms=9, config_version="c",
        payload=IncidentPayload(incident_id="inc-staleness-" + "a" * 24, state=state,
                                reason_family="staleness", opened_time_ms=1,
                                timeline=timeline))


def test_incident_view_derives_who_acknowledged_and_what_still_fires() -> None:
    timeline = [
        TimelineEntry(time_ms=1, what="alert firing RISK_STALE_BOOK: x", actor="h", ref="a1"),
        TimelineEntry(time_ms=2, what="scope paused (RISK_STALE_BOOK, AUTO_CLEAR)", actor="l",
                      ref="p1"),
        TimelineEntry(time_ms=3, what="alert firing RISK_STALE_BOOK: y", actor="h", ref="a2"),
        TimelineEntry(time_ms=4, what="alert resolved RISK_STALE_BOOK: z", actor="h",
                      ref=resolved_alert_id("a1")),
        TimelineEntry(time_ms=5, what="acknowledged: on it", actor="operator:alice", ref="c1"),
    ]
    view = api.incident_view(incident_envelope("ACKNOWLEDGED", timeline))
    assert view["state"] == "ACKNOWLEDGED" and view["acknowledged_by"] == "operator:alice"
    assert view["acknowledged_ms"] == 5 and view["resolved_by"] is None
    assert (view["alerts"], view["firing_alerts"], view["paused"]) == (2, 1, True)
    assert view["updated_ms"] == 5 and len(view["timeline"]) == 5


def test_selecting_incidents_puts_unresolved_and_severe_first() -> None:
    def incident(i: str, state: str, severity: str, opened: int, scope: str = "market:m1"
                 ) -> dict[str, Any]:
        return {"incident_id": i, "state": state, "severity": severity, "opened_ms": opened,
                "scope": scope}

    everything = [incident("r", "RESOLVED", "CRITICAL", 9), incident("w", "OPEN", "WARNING", 8),
                  incident("c", "ACKNOWLEDGED", "CRITICAL", 1),
                  incident("n", "OPEN", "CRITICAL", 5, "bot:b1")]
    assert [i["incident_id"] for i in api.select_incidents(everything, {})] == \
        ["n", "c", "w", "r"]
    assert [i["incident_id"] for i in api.select_incidents(
        everything, {"state": ["OPEN"], "scope": "market:m1"})] == ["w"]
    assert [i["incident_id"] for i in api.select_incidents(
        everything, {"severity": ["CRITICAL"], "limit": 1})] == ["n"]


def test_pause_rollout_and_audit_views() -> None:
    pause = PauseState(scope="market:m1", paused=True, reason_code="RISK_STALE_BOOK",
                       since_ms=1, cause_id="a", policy="AUTO_CLEAR", actor="x", updated_ms=2,
                       state_id="p")
    assert api.pause_view(pause)["policy"] == "AUTO_CLEAR"
    rollout = RolloutState(scope="model:m", stage="PAPER", updated_ms=3)
    assert api.rollout_view(rollout)["stage_index"] == 2
    audit = ReportEnvelope(
        envelope_id="audit-1", source="s", reason_code="GOV_OPERATOR_ACTION", severity="INFO",
        scope="market:m1", dedup_key="market:m1|operator", observed_time_ms=5, event_time_ms=5,
        config_version="c", payload=AuditPayload(
            action="pause", actor="operator:alice", decision="paused",
            before=json.dumps({"paused": False}), after="not json",
            evidence={"command_id": "c1", "reason": "why"}))
    view = api.audit_view(audit)
    assert view["before"] == {"paused": False} and view["after"] == "not json"
    assert view["evidence"]["reason"] == "why" and view["time_ms"] == 5
    assert (view["trace_id"], view["cause_span_id"], view["cause_events"]) == (None, None, [])
    traced = audit.model_copy(update={"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                                      "cause_span_id": "00f067aa0ba902b7",
                                      "cause_events": ["ops.commands/0@3"]})
    assert api.audit_view(traced)["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert api.audit_view(traced)["cause_events"] == ["ops.commands/0@3"]
    assert api.pause_view(pause.model_copy(update={"cause_events": ["t/0@1"]}))[
        "cause_events"] == ["t/0@1"]


def test_an_idempotency_key_is_bound_to_its_request() -> None:
    previous = {"action": "pause", "actor": "operator:alice", "scope": "market:m1",
                "evidence": {"reason": "book looks wrong", "target": ""}}
    retry = {"reason": "book looks wrong"}
    assert api.reuse_differences(previous, "alice", "PAUSE", "market:m1", retry) == []
    assert api.reuse_differences(previous, "bob", "PAUSE", "market:m2", retry) == [
        "actor", "scope"]
    assert api.reuse_differences(previous, "alice", "RESUME", "market:m1",
                                 {"reason": "other"}) == ["action", "reason"]
    rollback = {"action": "rollback", "actor": "operator:alice", "scope": "model:m1",
                "evidence": {"reason": "r", "target": "paper"}}
    assert api.reuse_differences(rollback, "alice", "ROLLBACK", "model:m1",
                                 {"reason": "r", "to_stage": "shadow"}) == ["to_stage"]
    incident = {"action": "ack", "actor": "operator:alice", "scope": "market:m1",
                "evidence": {"reason": "r", "target": "inc-1"}}
    assert api.reuse_differences(incident, "alice", "ACK", "inc-1", {"reason": "r"}) == []


@pytest.mark.parametrize(("reason", "found"), [
    ("feed down\x1b[2J", "U+001B at 9"), ("line\nbreak", "U+000A at 4"),
    ("evil \u202egnp.exe", "U+202E at 5"), ("nul\x00", "U+0000 at 3"),
])
def test_reasons_with_control_or_bidi_characters_are_refused(reason: str, found: str) -> None:
    with pytest.raises(ApiError, match=re.escape(
            f"reason: control and bidi characters are not allowed ({found})")):
        api.parse_body(json.dumps({"reason": reason}).encode(), api.REASON_BODY)
    assert not re.fullmatch(api.REASON_PATTERN, reason)  # the document says the same


def test_a_printable_reason_in_any_script_is_taken() -> None:
    reason = "  рынок: книга устарела — 板情報が古い  "
    assert api.parse_body(json.dumps({"reason": reason}).encode(), api.REASON_BODY) == {
        "reason": reason.strip()}
    assert re.fullmatch(api.REASON_PATTERN, reason)


def test_slo_rows_show_owner_compliance_budget_and_alerts() -> None:
    status = {"target": 0.995, "evaluated_ms": 7, "windows": {"3600": {"compliance": 0.9964}},
              "budget_window_s": 3600, "error_budget_remaining": 0.28, "rules": [],
              "firing_rules": []}
    state = {"partition": 0, "scope": "market:m1", "slo": "ingestion", "owner": "team-data",
             "status": status, "alert": None, "ticket_alert": {"alert_id": "t1"},
             "endangers": ["global"]}
    rows = api.slo_rows([("market:m1|ingestion", state), ("bot:b1|x", None)], ScopeFilter())
    row = rows["market:m1|ingestion"]
    assert (row["owner"], row["target"], row["error_budget_remaining"]) == (
        "team-data", 0.995, 0.28)
    assert row["endangers"] == ["global"]
    assert row["windows"]["3600"]["compliance"] == 0.9964
    assert row["alerts"] == {"GOV_SLO_BURN": None, "GOV_SLO_BURN_TICKET": "t1"}
    assert api.slo_rows([("market:m1|ingestion", state)], ScopeFilter("bot:")) == {}


def test_a_resolution_body_takes_its_review_as_a_bounded_list_of_texts() -> None:
    parsed = api.parse_body(json.dumps({
        "reason": "fixed", "root_cause": " feed hung ",
        "follow_ups": [" alert on reconnects ", "drill"]}).encode(), api.RESOLVE_BODY)
    assert parsed == {"reason": "fixed", "root_cause": "feed hung",
                      "follow_ups": ["alert on reconnects", "drill"]}
    for body, message in [
        ({"reason": "r", "follow_ups": "drill"}, "follow_ups: expected a list of strings, got str"),
        ({"reason": "r", "follow_ups": ["a", 3]}, "follow_ups[1]: expected a string, got int"),
        ({"reason": "r", "follow_ups": ["a", "\u202e"]},
         "follow_ups[1]: control and bidi characters are not allowed (U+202E at 0)"),
        ({"reason": "r", "follow_ups": ["x"] * 21}, "follow_ups: at most 20 items, got 21"),
        ({"reason": "r", "root_cause": "  "}, "root_cause: must not be empty"),
    ]:
        with pytest.raises(ApiError) as caught:
            api.parse_body(json.dumps(body).encode(), api.RESOLVE_BODY)
        assert (caught.value.status, caught.value.message) == (400, message)
