"""The incident lifecycle, with plain values: grouping by dedup key, open → acknowledged →
resolved, the timeline, re-delivery and precise refusals."""

from __future__ import annotations

from typing import Any

import pytest

from streams.control import incidents
from streams.control.incidents import (
    ACKNOWLEDGED,
    OPEN,
    RESOLVED,
    IncidentIdError,
    dedup_key_of,
    family_of,
    new_key_state,
    on_alert,
    on_command,
    on_pause,
    resolved_alert_id,
)

KEY = "market:m1|staleness"


def state() -> dict[str, Any]:
    return new_key_state(KEY, "market:m1", "staleness")


def fire(s: dict[str, Any], alert_id: str, at: int = 1000, severity: str = "CRITICAL",
         code: str = "RISK_STALE_BOOK") -> tuple[dict[str, Any], incidents.Outcome]:
    return on_alert(s, alert_id=alert_id, status="FIRING", reason_code=code, severity=severity,
                    message="book last updated 4.6s ago", time_ms=at, source="agents.health")


def clear(s: dict[str, Any], fired_id: str, at: int = 2000) -> tuple[dict[str, Any],
                                                                     incidents.Outcome]:
    return on_alert(s, alert_id=resolved_alert_id(fired_id), status="RESOLVED",
                    reason_code="RISK_STALE_BOOK", severity="CRITICAL", message="fresh again",
                    time_ms=at, source="agents.health")


def command(s: dict[str, Any], action: str, incident: str, command_id: str = "c1",
            at: int = 3000, actor: str = "alice") -> tuple[dict[str, Any], incidents.Outcome]:
    review: dict[str, Any] = {}
    if action == "RESOLVE":
        review = {"root_cause": "feed hung", "follow_ups": ["alert on reconnects"]}
    return on_command(s, command_id=command_id, action=action, incident=incident, actor=actor,
                      reason="looking", time_ms=at, **review)


def test_a_firing_alert_opens_an_incident_with_a_deterministic_id() -> None:
    _, outcome = fire(state(), "alert-1")
    assert outcome.decision == "opened" and outcome.audit
    incident = outcome.incident
    assert incident is not None and incident["state"] == OPEN
    assert incident["incident_id"] == incidents.incident_id(KEY, "staleness", "alert-1")
    assert incident["incident_id"].startswith("inc-staleness-")
    assert incident["timeline"] == [{"time_ms": 1000, "ref": "alert-1",
                                     "actor": "agents.health",
                                     "what": "alert firing RISK_STALE_BOOK: book last "
                                             "updated 4.6s ago"}]
    assert outcome.before is None and outcome.after["state"] == OPEN
    again, _ = fire(state(), "alert-1")
    assert again["current"]["incident_id"] == incident["incident_id"]


def test_redelivered_alert_changes_nothing() -> None:
    s, _ = fire(state(), "alert-1")
    s2, outcome = fire(s, "alert-1")
    assert outcome.decision == "duplicate" and not outcome.changed
    assert s2 == s


def test_alerts_of_one_key_group_into_one_incident_and_severity_escalates() -> None:
    s, opened = fire(state(), "alert-1", severity="WARNING", code="RISK_STALE_DATA")
    s, added = fire(s, "alert-2", at=1500)
    assert added.decision == "updated" and added.incident is not None
    assert added.incident["incident_id"] == opened.incident["incident_id"]
    assert added.incident["severity"] == "CRITICAL"
    assert added.incident["firing"] == ["alert-1", "alert-2"]
    assert not added.audit, "timeline growth is published, not audited"


def test_resolved_alert_clears_its_firing_alert_but_not_the_incident() -> None:
    s, _ = fire(state(), "alert-1")
    s, outcome = clear(s, "alert-1")
    incident = outcome.incident
    assert incident is not None and incident["state"] == OPEN and incident["firing"] == []
    assert [e["what"] for e in incident["timeline"]][1:] == [
        "alert resolved RISK_STALE_BOOK: fresh again", "all alerts clear"]


def test_a_resolved_alert_that_ends_no_firing_alert_is_ignored() -> None:
    s, _ = fire(state(), "alert-1")
    _, outcome = clear(s, "alert-other")
    assert outcome.decision == "ignored" and not outcome.changed


def test_acknowledge_then_resolve_with_who_and_when() -> None:
    s, opened = fire(state(), "alert-1")
    incident_id = opened.incident_id
    s, acked = command(s, "ACK", incident_id, "c1", at=3000)
    assert acked.decision == "acknowledged" and acked.audit
    assert acked.before["state"] == OPEN and acked.after["state"] == ACKNOWLEDGED
    assert acked.incident["acknowledged"] == {"actor": "alice", "time_ms": 3000,
                                              "reason": "looking", "command_id": "c1"}
    s, resolved = command(s, "RESOLVE", incident_id, "c2", at=4000, actor="bob")
    assert resolved.decision == "resolved"
    assert resolved.before["state"] == ACKNOWLEDGED and resolved.after["state"] == RESOLVED
    timeline = resolved.incident["timeline"]
    assert [(e["what"], e["actor"], e["time_ms"], e["ref"]) for e in timeline[1:]] == [
        ("acknowledged: looking", "alice", 3000, "c1"),
        ("resolved: looking (1 alert still firing)", "bob", 4000, "c2"),
        ("root cause: feed hung", "bob", 4000, "c2"),
        ("follow-up: alert on reconnects", "bob", 4000, "c2"),
    ]


def test_commands_are_idempotent_by_command_id() -> None:
    s, opened = fire(state(), "alert-1")
    s, _ = command(s, "ACK", opened.incident_id, "c1")
    s2, again = command(s, "ACK", opened.incident_id, "c1")
    assert again.decision == "duplicate" and not again.audit and s2 == s
    _, other = command(s, "ACK", opened.incident_id, "c9")
    assert other.decision == "noop" and "already acknowledged by alice" in other.detail


def test_resolve_straight_from_open_and_again_is_a_noop() -> None:
    s, opened = fire(state(), "alert-1")
    s, resolved = command(s, "RESOLVE", opened.incident_id, "c1")
    assert resolved.decision == "resolved"
    _, again = command(s, "RESOLVE", opened.incident_id, "c2")
    assert again.decision == "noop" and not again.changed
    _, ack = command(s, "ACK", opened.incident_id, "c3")
    assert ack.decision == "refused" and "resolved" in ack.detail


def test_unknown_incident_is_refused_precisely() -> None:
    s, _ = fire(state(), "alert-1")
    _, outcome = command(s, "ACK", "inc-staleness-" + "0" * 24)
    assert outcome.decision == "refused" and "unknown incident" in outcome.detail
    _, none_yet = command(state(), "RESOLVE", "inc-staleness-" + "0" * 24)
    assert none_yet.decision == "refused"


def test_a_new_firing_alert_after_resolution_opens_a_new_incident() -> None:
    s, first = fire(state(), "alert-1")
    s, _ = command(s, "RESOLVE", first.incident_id, "c1")
    s, second = fire(s, "alert-2", at=5000)
    assert second.decision == "opened" and second.incident_id != first.incident_id
    assert s["history"][-1] == {"incident_id": first.incident_id, "state": RESOLVED,
                                "opened_ms": 1000, "updated_ms": 3000}
    # Re-delivery of the first alert still opens nothing.
    _, again = fire(s, "alert-1")
    assert again.decision == "duplicate"
    # A command about the old incident says what happened to it.
    _, late = command(s, "ACK", first.incident_id, "c2")
    assert late.decision == "refused" and second.incident_id in late.detail


def test_pauses_join_the_incident_of_their_alert() -> None:
    s, opened = fire(state(), "alert-1")
    s, paused = on_pause(s, state_id="p1", paused=True, reason_code="RISK_STALE_BOOK",
                         cause_id="alert-1", policy="AUTO_CLEAR", actor="agents.latches",
                         time_ms=1001)
    assert paused.decision == "updated" and paused.incident["paused"] is True
    assert paused.incident["timeline"][-1] == {
        "time_ms": 1001, "what": "scope paused (RISK_STALE_BOOK, AUTO_CLEAR)",
        "actor": "agents.latches", "ref": "p1"}
    s, _ = command(s, "RESOLVE", opened.incident_id, "c1")
    # The auto-resume after the hold-down still lands on the (resolved) incident it ends.
    s, resumed = on_pause(s, state_id="p2", paused=False, reason_code="RISK_STALE_BOOK",
                          cause_id="alert-1", policy="AUTO_CLEAR", actor="agents.latches",
                          time_ms=9000)
    assert resumed.incident["state"] == RESOLVED and resumed.incident["paused"] is False
    _, dup = on_pause(s, state_id="p2", paused=False, reason_code="RISK_STALE_BOOK",
                      cause_id="alert-1", policy="AUTO_CLEAR", actor="x", time_ms=9000)
    assert dup.decision == "duplicate"
    _, unrelated = on_pause(s, state_id="p3", paused=True, reason_code="RISK_STALE_BOOK",
                            cause_id="alert-zzz", policy="AUTO_CLEAR", actor="x", time_ms=9500)
    assert unrelated.decision == "ignored"


def test_timeline_is_bounded_and_keeps_the_opening_entry() -> None:
    s, _ = fire(state(), "alert-0")
    for i in range(1, 30):
        s, outcome = fire(s, f"alert-{i}", at=1000 + i)
        s, outcome = on_alert(s, alert_id=resolved_alert_id(f"alert-{i}"), status="RESOLVED",
                              reason_code="RISK_STALE_BOOK", severity="CRITICAL", message="",
                              time_ms=1000 + i, source="h")
    s, outcome = fire(s, "alert-last", at=5000)
    s, outcome = on_pause(s, state_id="p", paused=True, reason_code="RISK_STALE_BOOK",
                          cause_id="alert-last", policy="AUTO_CLEAR", actor="l", time_ms=5001)
    s, outcome = command(s, "ACK", s["current"]["incident_id"], "c")
    s, outcome = on_alert(s, alert_id="alert-more", status="FIRING",
                          reason_code="RISK_STALE_BOOK", severity="CRITICAL", message="",
                          time_ms=6000, source="h", timeline_limit=10)
    timeline = outcome.incident["timeline"]
    assert len(timeline) == 10 and timeline[0]["ref"] == "alert-0"
    assert timeline[-1]["ref"] == "alert-more"
    assert outcome.incident["timeline_dropped"] > 0


def test_incident_ids_name_their_family_and_dedup_key() -> None:
    _, opened = fire(state(), "alert-1")
    assert family_of(opened.incident_id) == "staleness"
    assert dedup_key_of("market:m1", opened.incident_id) == KEY
    for bad in ("", "inc-staleness", "inc-Staleness-" + "a" * 24, "alert-" + "a" * 24,
                "inc-staleness-" + "g" * 24):
        with pytest.raises(IncidentIdError, match="not an incident id"):
            family_of(bad)


def test_only_ack_and_resolve_are_incident_commands() -> None:
    with pytest.raises(ValueError, match="not an incident command"):
        on_command(state(), command_id="c", action="PAUSE", incident="x", actor="a",
                   reason="", time_ms=0)


# --- the read model per scope (the rollout gate's "no open critical incident") ---------


def test_a_scope_tracks_its_unresolved_incidents_and_drops_resolved_ones() -> None:
    tracked = incidents.track_on_scope({}, incident_id="inc-staleness-1", state="OPEN",
                                       severity="CRITICAL", reason_code="RISK_STALE_BOOK")
    tracked = incidents.track_on_scope(tracked, incident_id="inc-gaps-1", state="OPEN",
                                       severity="WARNING", reason_code="GOV_DATA_GAP")
    assert incidents.critical_of(tracked) == {"inc-staleness-1": "RISK_STALE_BOOK"}
    acked = incidents.track_on_scope(tracked, incident_id="inc-staleness-1",
                                     state="ACKNOWLEDGED", severity="CRITICAL",
                                     reason_code="RISK_STALE_BOOK")
    assert incidents.critical_of(acked) == {"inc-staleness-1": "RISK_STALE_BOOK"}, \
        "acknowledged is still unresolved"
    resolved = incidents.track_on_scope(acked, incident_id="inc-staleness-1",
                                        state="RESOLVED", severity="CRITICAL",
                                        reason_code="RISK_STALE_BOOK")
    assert incidents.critical_of(resolved) == {}
    assert set(resolved) == {"inc-gaps-1"}
    assert incidents.critical_of(tracked) == {"inc-staleness-1": "RISK_STALE_BOOK"}, \
        "the input map is not changed"


def test_a_warning_incident_escalated_to_critical_counts() -> None:
    tracked = incidents.track_on_scope({}, incident_id="inc-gaps-1", state="OPEN",
                                       severity="WARNING", reason_code="GOV_DATA_GAP")
    tracked = incidents.track_on_scope(tracked, incident_id="inc-gaps-1", state="OPEN",
                                       severity="CRITICAL", reason_code="GOV_DATA_GAP")
    assert incidents.critical_of(tracked) == {"inc-gaps-1": "GOV_DATA_GAP"}


def test_a_redelivered_version_changes_nothing() -> None:
    once = incidents.track_on_scope({}, incident_id="inc-canary-1", state="OPEN",
                                    severity="CRITICAL", reason_code="RISK_CANARY_REGRESSION")
    twice = incidents.track_on_scope(once, incident_id="inc-canary-1", state="OPEN",
                                     severity="CRITICAL", reason_code="RISK_CANARY_REGRESSION")
    assert once == twice


# --- retention ------------------------------------------------------------------------

DAY_MS = 24 * 3600 * 1000


def test_an_open_or_acknowledged_incident_is_never_expired() -> None:
    opened, outcome = fire(state(), "alert-1")
    assert incidents.expired_incidents(opened, 1000 + 30 * DAY_MS, DAY_MS) is None
    acked, _ = command(opened, "ACK", outcome.incident_id)
    assert incidents.expired_incidents(acked, 1000 + 30 * DAY_MS, DAY_MS) is None


def test_a_resolved_incident_expires_a_retention_after_its_last_change() -> None:
    opened, first = fire(state(), "alert-1", at=1000)
    cleared, _ = clear(opened, "alert-1", at=2000)
    resolved, _ = command(cleared, "RESOLVE", first.incident_id, at=3000)
    assert incidents.expired_incidents(resolved, 3000 + DAY_MS - 1, DAY_MS) is None
    assert incidents.expired_incidents(resolved, 3000 + DAY_MS, DAY_MS) == [first.incident_id]


def test_a_resolved_incident_with_an_alert_still_firing_is_kept() -> None:
    opened, first = fire(state(), "alert-1")
    resolved, _ = command(opened, "RESOLVE", first.incident_id)
    assert resolved["current"]["firing"] == ["alert-1"]
    assert incidents.expired_incidents(resolved, 30 * DAY_MS, DAY_MS) is None
    cleared, _ = clear(resolved, "alert-1", at=5000)
    assert incidents.expired_incidents(cleared, 5000 + DAY_MS, DAY_MS) == [first.incident_id]


def test_expiry_names_the_earlier_incidents_the_key_remembers() -> None:
    opened, first = fire(state(), "alert-1", at=1000)
    s, _ = clear(opened, "alert-1", at=1500)
    s, _ = command(s, "RESOLVE", first.incident_id, command_id="r1", at=2000)
    s, second = fire(s, "alert-2", at=4000)
    assert second.decision == "opened"
    s, _ = clear(s, "alert-2", at=4500)
    s, _ = command(s, "RESOLVE", second.incident_id, command_id="r2", at=5000)
    assert incidents.expired_incidents(s, 5000 + DAY_MS, DAY_MS) == [
        first.incident_id, second.incident_id]


def test_a_key_that_never_opened_an_incident_goes_at_once() -> None:
    stray, outcome = clear(state(), "alert-9")
    assert outcome.decision == "ignored"
    assert incidents.expired_incidents(stray, 0, DAY_MS) == []


def response_view(family: str, state: str, opened: int, acked: int | None = None,
                  resolved: int | None = None) -> dict[str, Any]:
    return {"reason_family": family, "state": state, "opened_ms": opened,
            "acknowledged_ms": acked, "resolved_ms": resolved}


def test_response_times_per_family_count_only_incidents_that_got_there() -> None:
    views = [response_view("staleness", "RESOLVED", 0, 10_000, 60_000),
             response_view("staleness", "RESOLVED", 0, None, 30_000),  # resolved unacked
             response_view("staleness", "ACKNOWLEDGED", 0, 50_000),
             response_view("staleness", "OPEN", 0),
             response_view("execution", "OPEN", 0)]
    stats = incidents.response_times(views)
    assert list(stats) == ["execution", "staleness"]
    staleness = stats["staleness"]
    assert (staleness["incidents"], staleness["OPEN"], staleness["ACKNOWLEDGED"],
            staleness["RESOLVED"]) == (4, 1, 1, 2)
    assert staleness["time_to_acknowledge_s"] == {"count": 2, "mean": 30.0, "p50": 10.0,
                                                  "p90": 50.0, "max": 50.0}
    assert staleness["time_to_resolve_s"] == {"count": 2, "mean": 45.0, "p50": 30.0,
                                              "p90": 60.0, "max": 60.0}
    assert stats["execution"]["time_to_acknowledge_s"] is None
    assert stats["execution"]["time_to_resolve_s"] is None


@pytest.mark.parametrize("review", [
    {}, {"root_cause": "feed hung"}, {"follow_ups": ["drill"]},
    {"root_cause": "  ", "follow_ups": ["drill"]}, {"root_cause": "x", "follow_ups": [" "]}])
def test_a_critical_incident_is_resolved_only_with_its_root_cause_and_follow_ups(
        review: dict[str, Any]) -> None:
    s, opened = fire(state(), "alert-1")
    assert opened.incident is not None and opened.incident["severity"] == "CRITICAL"
    before = s
    s, refused = on_command(s, command_id="r1", action="RESOLVE", incident=opened.incident_id,
                            actor="bob", reason="done", time_ms=5000, **review)
    assert refused.decision == "refused" and refused.audit
    assert refused.detail.endswith("its root cause and at least one follow-up "
                                   "(root_cause, follow_ups)")
    assert s["current"]["state"] == OPEN and s["current"] == before["current"]

    s, resolved = on_command(s, command_id="r2", action="RESOLVE",
                             incident=opened.incident_id, actor="bob", reason="done",
                             time_ms=6000, root_cause=" feed hung ",
                             follow_ups=["alert on reconnects", "failover drill"])
    assert resolved.decision == "resolved"
    incident = s["current"]
    assert (incident["root_cause"], incident["follow_ups"]) == (
        "feed hung", ["alert on reconnects", "failover drill"])
    assert [(e["what"], e["ref"]) for e in incident["timeline"][-3:]] == [
        ("root cause: feed hung", "r2"), ("follow-up: alert on reconnects", "r2"),
        ("follow-up: failover drill", "r2")]


def test_a_warning_incident_is_resolved_without_a_review() -> None:
    s, opened = fire(state(), "alert-1", severity="WARNING")
    s, resolved = on_command(s, command_id="r1", action="RESOLVE", incident=opened.incident_id,
                             actor="bob", reason="done", time_ms=5000)
    assert resolved.decision == "resolved" and s["current"]["follow_ups"] == []
