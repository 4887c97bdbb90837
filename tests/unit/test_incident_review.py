"""An incident's review rendered from its view and the decisions of its scope: every
section there, pause durations computed from the timeline, cells that stay cells."""

from __future__ import annotations

from typing import Any

from streams.incident_review import decisions_during, incident_review, pause_spans

T0 = 1_790_006_400_000


def incident(**changes: Any) -> dict[str, Any]:
    view = {
        "incident_id": "inc-staleness-0123456789abcdef01234567", "state": "RESOLVED",
        "severity": "CRITICAL", "scope": "market:m1", "dedup_key": "market:m1|staleness",
        "reason_code": "RISK_STALE_BOOK", "reason_family": "staleness", "opened_ms": T0,
        "updated_ms": T0 + 600_000, "acknowledged_by": "operator:alice",
        "acknowledged_ms": T0 + 90_000, "resolved_by": "operator:bob",
        "resolved_ms": T0 + 600_000, "firing_alerts": 0, "alerts": 1, "paused": False,
        "timeline": [
            {"time_ms": T0, "what": "alert firing RISK_STALE_BOOK: book 12 s old",
             "actor": "agents.health", "ref": "alert-1"},
            {"time_ms": T0 + 5, "what": "scope paused (RISK_STALE_BOOK, AUTO_CLEAR)",
             "actor": "agents.health", "ref": "state-1"},
            {"time_ms": T0 + 90_000, "what": "acknowledged: paging | the feed owner",
             "actor": "operator:alice", "ref": "ack-1"},
            {"time_ms": T0 + 300_005, "what": "scope resumed (released RISK_STALE_BOOK)",
             "actor": "agents.health", "ref": "state-2"},
            {"time_ms": T0 + 600_000, "what": "resolved: feed restarted",
             "actor": "operator:bob", "ref": "res-1"},
        ],
        "envelope_id": "env-1",
        "root_cause": "the book feed's upstream socket hung\nafter a venue failover",
        "follow_ups": ["alert on the feed's reconnect count", "failover drill"],
    }
    return {**view, **changes}


def audit(time_ms: int, scope: str = "market:m1", **evidence: str) -> dict[str, Any]:
    return {"envelope_id": f"a{time_ms}", "time_ms": time_ms, "scope": scope,
            "reason_code": "RISK_STALE_BOOK", "severity": "CRITICAL", "source": "agents",
            "action": "pause", "actor": "agents.health", "decision": "paused",
            "before": None, "after": None, "evidence": evidence}


def test_the_review_has_every_section_with_the_incidents_figures() -> None:
    view = incident()
    decisions = decisions_during(view, [audit(T0 + 5, cause_id="alert-1"),
                                        audit(T0 + 5, scope="market:m2"),
                                        audit(T0 + 700_000)], T0 + 800_000)
    assert [d["time_ms"] for d in decisions] == [T0 + 5], "its scope, its window"
    text = incident_review(view, decisions, T0 + 800_000)
    assert text.startswith("# Incident review: inc-staleness-0123456789abcdef01234567\n")
    for heading in ("## Root cause", "## Follow-ups", "## Timeline",
                    "## Decisions and their causes", "## Pauses"):
        assert f"\n{heading}\n" in text
    assert "by operator:alice (+1 min 30 s)" in text
    assert "by operator:bob (+10 min 0 s)" in text
    assert "- [ ] alert on the feed's reconnect count\n- [ ] failover drill" in text
    assert "the book feed's upstream socket hung\nafter a venue failover" in text
    # the pause lasted from its entry to the resume: 300 s
    assert "| 5 min 0 s | RISK_STALE_BOOK, AUTO_CLEAR | agents.health |" in text
    # the decision names its cause, the alert
    assert "| pause | paused (RISK_STALE_BOOK) | agents.health | alert-1 |" in text
    # a pipe from outside stays inside its cell
    assert "acknowledged: paging \\| the feed owner" in text


def test_a_review_before_resolution_says_what_is_missing() -> None:
    view = incident(state="OPEN", acknowledged_by=None, acknowledged_ms=None,
                    resolved_by=None, resolved_ms=None, root_cause=None, follow_ups=[],
                    timeline=incident()["timeline"][:2])
    text = incident_review(view, [], T0 + 60_000)
    assert "| Acknowledged | not acknowledged |" in text
    assert "| Resolved | not resolved |" in text
    assert "## Root cause\n\n_Not recorded._" in text
    assert "## Follow-ups\n\n_None recorded._" in text
    assert "| still paused | 60.0 s |" in text


def test_pause_spans_pair_pauses_with_resumes() -> None:
    timeline = [{"time_ms": 1, "what": "scope paused (X, LATCH)", "actor": "a"},
                {"time_ms": 5, "what": "scope resumed (released X)", "actor": "b"},
                {"time_ms": 9, "what": "scope paused (Y, AUTO_CLEAR)", "actor": "c"}]
    assert pause_spans(timeline, 20) == [(1, 5, "X, LATCH", "a"), (9, None, "Y, AUTO_CLEAR", "c")]
