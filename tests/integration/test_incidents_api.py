"""Incidents through the operator API on the real broker with real workers: a stale book
fires an alert → an incident opens → an operator acknowledges and resolves it over HTTP;
each state on monitor.incidents and in audit.log; re-delivery never duplicates; a new
alert after resolution opens a new incident; two workers route and merge; `polymon ctl`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.control.keying import partition_for
from streams.records import (
    AlertStatus,
    AuditPayload,
    HealthEvent,
    HealthEventKind,
    IncidentPayload,
    ReportEnvelope,
)
from streams.settings import Settings
from streams.worker_process import WorkerProcess
from tests.conftest import CODECS, Stack, wait_until
from tests.integration.test_openapi_contract import call as call_with_headers

pytestmark = pytest.mark.integration

ROOT_CAUSE = "the book feed's upstream socket hung after a venue failover"
FOLLOW_UPS = ["alert on the feed's reconnect count", "failover drill each quarter"]
FAST = {"evaluation_interval_s": 0.1, "stale_hold_down_s": 1.0, "api_command_wait_s": 5.0}
ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789abc"
TOKENS = {
    ALICE: {"actor": "alice", "rights": ["pause", "resume", "rollback", "promote", "ack",
                                         "resolve"]},
    BOB: {"actor": "bob", "rights": ["ack", "resolve"]},
}


def now_ms() -> int:
    return int(time.time() * 1000)


def book(scope: str, sequence: int) -> HealthEvent:
    return HealthEvent(event_id=uuid.uuid4().hex, scope=scope, kind=HealthEventKind.DATA_UPDATE,
                       source="test-feed", event_time_ms=now_ms(), feed="book",
                       sequence=sequence)


def call(worker: WorkerProcess, method: str, path: str, body: Any = None,
         token: str | None = None, key: str | None = None) -> tuple[int, Any]:
    status, answer, _ = call_with_headers(worker, method, path, body, token, key)
    return status, answer


def incidents_of(worker: WorkerProcess, scope: str) -> list[dict[str, Any]]:
    status, body = call(worker, "GET", f"/api/incidents?scope={scope}")
    assert status == 200, body
    return body["incidents"]


def incident_records(stack: Stack) -> list[ReportEnvelope]:
    return stack.read_records("monitor.incidents", idle_timeout_s=0.5)


def audit_entries(stack: Stack) -> list[ReportEnvelope]:
    return [e for e in stack.read_records("audit.log", idle_timeout_s=0.5)
            if isinstance(e.payload, AuditPayload)]


def states_in_order(records: list[ReportEnvelope], incident_id: str) -> list[str]:
    states: list[str] = []
    for record in records:
        assert isinstance(record.payload, IncidentPayload)
        if record.payload.incident_id == incident_id and (
                not states or states[-1] != record.payload.state.value):
            states.append(record.payload.state.value)
    return states


def test_alert_incident_acknowledge_resolve_through_the_api(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(**FAST, api_tokens=TOKENS)
    scope = "market:inc1"
    stack.send_records("health.events", [book(scope, i) for i in range(1, 4)])

    # The book stops: RISK_STALE_BOOK fires after 2 s, the incident opens, the pause joins it.
    opened = wait_until(lambda: [i for i in incidents_of(worker, scope)
                                 if any(e["what"].startswith("scope paused")
                                        for e in i["timeline"])], 15,
                        what="an open incident with its pause")[0]
    incident_id = opened["incident_id"]
    assert incident_id.startswith("inc-staleness-")
    assert (opened["state"], opened["severity"], opened["reason_family"]) == \
        ("OPEN", "CRITICAL", "staleness")
    assert opened["timeline"][0]["what"].startswith("alert firing RISK_STALE_BOOK")
    assert opened["timeline"][0]["actor"] == "agents.health"
    assert opened["paused"] is True and opened["firing_alerts"] == 1

    status, acked = call(worker, "POST", f"/api/incidents/{incident_id}/ack",
                         {"reason": "book feed down, paging the feed owner"}, ALICE, "ack-1")
    assert status == 202, acked
    assert acked["status"] == "done" and acked["command_id"] == "ack-1"
    assert acked["outcome"]["decision"] == "acknowledged"
    assert acked["outcome"]["before"]["state"] == "OPEN"
    assert acked["outcome"]["after"]["state"] == "ACKNOWLEDGED"
    wait_until(lambda: incidents_of(worker, scope)[0]["state"] == "ACKNOWLEDGED", 10,
               what="the read view acknowledged")
    assert incidents_of(worker, scope)[0]["acknowledged_by"] == "operator:alice"

    # A retry with the same Idempotency-Key changes nothing and answers the same.
    status, again = call(worker, "POST", f"/api/incidents/{incident_id}/ack",
                         {"reason": "book feed down, paging the feed owner"}, ALICE, "ack-1")
    assert status == 202 and again["outcome"] == acked["outcome"]
    status, conflict = call(worker, "POST", f"/api/incidents/{incident_id}/ack",
                            {"reason": "me too"}, BOB)
    assert status == 409 and "already acknowledged by operator:alice" in conflict["error"]

    status, unreviewed = call(worker, "POST", f"/api/incidents/{incident_id}/resolve",
                              {"reason": "feed restarted"}, BOB)
    assert status == 409 and unreviewed["error"] == (
        f"incident {incident_id}: a CRITICAL incident is resolved with its root cause and "
        "at least one follow-up (root_cause, follow_ups)")
    status, resolved = call(worker, "POST", f"/api/incidents/{incident_id}/resolve",
                            {"reason": "feed restarted", "root_cause": ROOT_CAUSE,
                             "follow_ups": FOLLOW_UPS}, BOB)
    assert status == 202 and resolved["outcome"]["decision"] == "resolved", resolved
    assert resolved["outcome"]["evidence"]["root_cause"] == ROOT_CAUSE
    assert json.loads(resolved["outcome"]["evidence"]["follow_ups"]) == FOLLOW_UPS
    assert resolved["outcome"]["actor"] == "operator:bob"
    review_and_response_times(stack, worker, incident_id)

    # Every state on monitor.incidents, in order, with who did what in the timeline.
    records = incident_records(stack)
    assert states_in_order(records, incident_id) == ["OPEN", "ACKNOWLEDGED", "RESOLVED"]
    final = [r for r in records if r.payload.incident_id == incident_id][-1]
    assert final.scope == scope and final.dedup_key == f"{scope}|staleness"
    whats = [(e.what, e.actor) for e in final.payload.timeline]
    assert whats[0][0].startswith("alert firing RISK_STALE_BOOK")
    assert ("acknowledged: book feed down, paging the feed owner", "operator:alice") in whats
    assert any(w.startswith("resolved: feed restarted") and a == "operator:bob"
               for w, a in whats)
    assert any(w == "scope paused (RISK_STALE_BOOK, AUTO_CLEAR)" for w, _ in whats)

    # ... and in audit.log: opened, acknowledged, resolved, with actor, reason, before/after.
    audit = [e for e in audit_entries(stack) if e.payload.action in ("incident", "ack",
                                                                      "resolve")]
    assert [(e.payload.action, e.payload.decision) for e in audit] == [
        ("incident", "opened"), ("ack", "acknowledged"), ("resolve", "resolved")]
    ack = audit[1].payload
    assert ack.actor == "operator:alice" and ack.evidence["command_id"] == "ack-1"
    assert ack.evidence["reason"] == "book feed down, paging the feed owner"
    assert json.loads(ack.before)["state"] == "OPEN"
    assert json.loads(ack.after)["state"] == "ACKNOWLEDGED"
    assert json.loads(audit[2].payload.after)["state"] == "RESOLVED"
    assert all(e.payload.evidence.get("incident_id") == incident_id for e in audit)
    commands = stack.read_records("ops.commands", idle_timeout_s=0.5)
    assert [(c.action.value, c.actor, c.target) for c in commands] == [
        ("ACK", "alice", incident_id), ("RESOLVE", "bob", incident_id)]

    # Re-delivery of the alert that opened the incident opens nothing.
    firing = [m for m in stack.read("monitor.alerts", idle_timeout_s=0.5)
              if (a := CODECS["ReportEnvelope"].decode_record(m.value)).scope == scope
              and a.payload.status is AlertStatus.FIRING]
    versions_before = len([r for r in incident_records(stack)
                           if r.payload.incident_id == incident_id])
    producer = Producer({"bootstrap.servers": stack.bootstrap})
    producer.produce(stack.topic("monitor.alerts"), key=firing[0].key, value=firing[0].value,
                     partition=firing[0].partition)
    producer.flush(10)

    # Fresh data clears the alert and, after the hold-down, the pause; then the book stops
    # again: a new firing alert on a resolved incident's key opens a new incident.
    stack.send_records("health.events", [book(scope, 4)])
    wait_until(lambda: any(e.what.startswith("scope resumed") for e in [
        r for r in incident_records(stack) if r.payload.incident_id == incident_id][-1]
        .payload.timeline), 15, what="the resume joins the resolved incident")
    second = wait_until(lambda: [i for i in incidents_of(worker, scope)
                                 if i["incident_id"] != incident_id], 15,
                        what="a second incident")[0]
    assert second["state"] == "OPEN"
    everything = incidents_of(worker, scope)
    assert len(everything) == 2
    assert {i["incident_id"]: i["state"] for i in everything}[incident_id] == "RESOLVED"
    records = incident_records(stack)
    first_versions = [r for r in records if r.payload.incident_id == incident_id]
    assert all(r.payload.state.value == "RESOLVED" for r in first_versions[versions_before:])
    assert len({r.payload.incident_id for r in records}) == 2, "re-delivery opened nothing"


def review_and_response_times(stack: Stack, worker: WorkerProcess, incident_id: str) -> None:
    """The resolved incident's figures: its review (API and ctl), its family's response
    times (API and Prometheus)."""
    view = wait_until(lambda: (i := call(worker, "GET", f"/api/incidents/{incident_id}")[1])
                      ["state"] == "RESOLVED" and i, 10, what="the read view resolved")
    to_ack = (view["acknowledged_ms"] - view["opened_ms"]) / 1000
    to_resolve = (view["resolved_ms"] - view["opened_ms"]) / 1000
    status, stats = call(worker, "GET", "/api/incidents/stats")
    assert status == 200, stats
    staleness = stats["families"]["staleness"]
    assert (staleness["incidents"], staleness["RESOLVED"]) == (1, 1)
    assert staleness["time_to_acknowledge_s"]["count"] == 1
    assert staleness["time_to_acknowledge_s"]["mean"] == pytest.approx(to_ack)
    assert staleness["time_to_resolve_s"]["max"] == pytest.approx(to_resolve)
    metrics = worker.get_text("/metrics")
    assert (f'polymon_incident_time_to_resolve_seconds{{family="staleness",stat="max"}} '
            f"{to_resolve}") in metrics

    status, review = call(worker, "GET", f"/api/incidents/{incident_id}/review")
    assert status == 200 and review["state"] == "RESOLVED", review
    text = review["markdown"]
    assert text.startswith(f"# Incident review: {incident_id}\n")
    assert f"## Root cause\n\n{ROOT_CAUSE}\n" in text
    assert "".join(f"- [ ] {item}\n" for item in FOLLOW_UPS) in text
    assert (view["root_cause"], view["follow_ups"]) == (ROOT_CAUSE, FOLLOW_UPS)
    assert "| Resolved |" in text and "by operator:bob" in text
    assert "acknowledged: book feed down, paging the feed owner" in text
    pauses = text.split("## Pauses")[1]
    assert "RISK_STALE_BOOK, AUTO_CLEAR" in pauses
    decisions = text.split("## Decisions and their causes")[1].split("## Pauses")[0]
    assert "| alert | alert firing RISK_STALE_BOOK" in decisions
    assert "| pause | paused (RISK_STALE_BOOK) |" in decisions, "the pause, with its cause"
    assert call(worker, "GET", "/api/incidents/inc-staleness-" + "0" * 24 + "/review")[0] == 404

    printed = polymon_ctl(stack, worker, "incident-report", incident_id)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith(f"# Incident review: {incident_id}\n")
    assert "| pause | paused (RISK_STALE_BOOK) |" in printed.stdout


def owner(members: list[dict[str, Any]], partition: int) -> str:
    return next(m["url"] for m in members if partition in m["partitions"])


def test_two_workers_route_commands_to_the_incident_owner_and_merge_views(
        stack: Stack) -> None:
    stack.create_topics()
    first = stack.start_worker("worker-a", **FAST, api_tokens=TOKENS)
    second = stack.start_worker("worker-b", **FAST, api_tokens=TOKENS)

    def split() -> list[dict[str, Any]] | None:
        members = first.get("/api/workers")["members"]
        ready = first.get("/healthz")["ready"] and second.get("/healthz")["ready"]
        return members if ready and len(members) == 2 and all(
            m["partitions"] for m in members) else None

    members = wait_until(split, 30, what="two workers sharing the partitions")
    # Markets whose ACK (ops.commands, keyed by scope) and incident (keyed by dedup key)
    # live on different workers: the command must be re-keyed to reach the incident.
    # (ops.commands: the input producers' partitioner; monitor.alerts: Faust's, murmur2.)
    inputs = Settings.model_fields["input_partitioner"].default
    crossing = [f"market:x{i}" for i in range(60)
                if owner(members, partition_for(f"market:x{i}".encode(), 4, inputs))
                != owner(members, partition_for(f"market:x{i}|staleness".encode(), 4,
                                                "murmur2"))][:4]
    assert len(crossing) == 4
    stack.send_records("health.events", [book(scope, 1) for scope in crossing])

    def all_open() -> list[dict[str, Any]] | None:
        found = [i for i in incidents_of(first, "global") if i["scope"] in crossing]
        return found if len(found) == len(crossing) else None

    opened = wait_until(all_open, 20, what="an incident per market")
    # Every worker lists every incident (its read view of monitor.incidents).
    assert {i["incident_id"] for i in incidents_of(second, "global")} == \
        {i["incident_id"] for i in opened}

    for incident in opened:  # all through worker-b's API
        status, reply = call(second, "POST", f"/api/incidents/{incident['incident_id']}/ack",
                             {"reason": "on it"}, ALICE)
        assert status == 202 and reply["outcome"]["decision"] == "acknowledged", reply
    wait_until(lambda: all(i["state"] == "ACKNOWLEDGED" for i in incidents_of(first, "global")
                           if i["scope"] in crossing), 10, what="all acknowledged")

    # Table views fan out and merge: each worker alone knows part, either answers all.
    whole = first.get("/api/freshness?kind=market")
    assert whole["complete"] and len(whole["workers"]) == 2
    assert all(w["ok"] for w in whole["workers"])
    assert set(whole["scopes"]) == set(crossing)
    assert all(whole["scopes"][s]["paused_by"] == s for s in crossing)
    parts = [set(w.get("/api/freshness?local=true")["data"]) for w in (first, second)]
    assert parts[0] | parts[1] == set(crossing) and not parts[0] & parts[1]
    assert set(second.get("/api/freshness")["scopes"]) == set(crossing)

    # A pause sent to one worker for a scope the other owns is applied once.
    target = crossing[0]
    status, reply = call(first, "POST", "/api/scopes/feed:shared/pause",
                         {"reason": "maintenance"}, ALICE)
    assert status == 202 and reply["outcome"]["decision"] == "paused", reply
    # the other worker's read view follows control.pauses (eventually, not in the reply)
    wait_until(lambda: second.get("/api/pauses?scope=feed:shared")["pauses"]
               .get("feed:shared", {}).get("paused"), 5, what="the pause in the other view")
    metrics = first.get_text("/metrics")
    assert 'polymon_incidents_open{severity="CRITICAL",state="ACKNOWLEDGED"} 4.0' in metrics
    assert 'polymon_scopes_paused{scope_kind="feed"} 1.0' in metrics
    assert target not in metrics, "no per-market series"


def polymon_ctl(stack: Stack, worker: WorkerProcess, *args: str,
                token: str | None = ALICE) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.env(), "POLYMON_CTL_URL": worker.url}
    env.pop("POLYMON_CTL_TOKEN", None)
    if token:
        env["POLYMON_CTL_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "streams", "ctl", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_polymon_ctl_pauses_resumes_and_reports_precisely(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(**FAST, api_tokens=TOKENS)

    paused = polymon_ctl(stack, worker, "pause", "bot:b9", "--reason", "runaway orders",
                         "--idempotency-key", "ctl-1")
    assert paused.returncode == 0, paused.stderr
    assert "PAUSE bot:b9: paused (scope paused)" in paused.stdout
    assert "command ctl-1 by alice" in paused.stdout
    listed = polymon_ctl(stack, worker, "--json", "pauses", "--paused")
    assert listed.returncode == 0 and json.loads(listed.stdout)["paused"] == ["bot:b9"]

    bad = polymon_ctl(stack, worker, "pause", "bot:", "--reason", "x")
    assert bad.returncode == 2 and "segment 'bot:' is not kind:id" in bad.stderr
    denied = polymon_ctl(stack, worker, "resume", "bot:b9", "--reason", "x", token=BOB)
    assert denied.returncode == 3 and "HTTP 403: bob lacks the 'resume' right" in denied.stderr
    unknown = polymon_ctl(stack, worker, "ack", "inc-staleness-" + "0" * 24, "--reason", "x")
    assert unknown.returncode == 2 and "HTTP 404: unknown incident" in unknown.stderr
    stage = polymon_ctl(stack, worker, "rollback", "model:m1", "--to", "prod", "--reason", "x")
    assert stage.returncode == 2 and "stage 'prod' is not one of" in stage.stderr

    resumed = polymon_ctl(stack, worker, "resume", "bot:b9", "--reason", "fixed")
    assert resumed.returncode == 0 and "RESUME bot:b9: resumed" in resumed.stdout
    noop = polymon_ctl(stack, worker, "resume", "bot:b9", "--reason", "again")
    assert noop.returncode == 0 and "RESUME bot:b9: noop (scope was not paused)" in noop.stdout
    commands = stack.read_records("ops.commands", idle_timeout_s=0.5)
    assert [(c.action.value, c.scope) for c in commands] == [
        ("PAUSE", "bot:b9"), ("RESUME", "bot:b9"), ("RESUME", "bot:b9")]
    decisions = [(e.payload.action, e.payload.decision, e.payload.evidence["reason"])
                 for e in audit_entries(stack) if e.payload.evidence.get("command_id")]
    assert decisions == [("pause", "paused", "runaway orders"), ("resume", "resumed", "fixed"),
                         ("resume", "noop", "again")]


def test_a_resolved_incident_is_tombstoned_after_its_retention(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(**FAST, api_tokens=TOKENS, incident_retention_s=2.0)
    scope = "bot:kept"
    beat = dict(kind=HealthEventKind.HEARTBEAT, source="test-bot", scope=scope)
    # Heartbeats missed (0.5 s x 3), then back for good: the alert fires and clears.
    stack.send_records("health.events", [HealthEvent(
        event_id=uuid.uuid4().hex, event_time_ms=now_ms(), heartbeat_interval_ms=500, **beat)])
    opened = wait_until(lambda: incidents_of(worker, scope), 15, what="the incident")[0]
    incident_id = opened["incident_id"]
    stack.send_records("health.events", [HealthEvent(
        event_id=uuid.uuid4().hex, event_time_ms=now_ms(), heartbeat_interval_ms=600_000,
        **beat)])
    wait_until(lambda: incidents_of(worker, scope)[0]["firing_alerts"] == 0, 15,
               what="the alert cleared")
    time.sleep(3.0)  # past the retention: an unresolved incident is kept all the same
    assert [i["state"] for i in incidents_of(worker, scope)] == ["OPEN"]

    status, resolved = call(worker, "POST", f"/api/incidents/{incident_id}/resolve",
                            {"reason": "bot restarted", "root_cause": "the bot hung",
                             "follow_ups": ["a watchdog"]}, BOB)
    assert status == 202 and resolved["outcome"]["decision"] == "resolved", resolved
    resolved_at = time.monotonic()

    def tombstones() -> list[Any]:
        return [m for m in stack.read("monitor.incidents", idle_timeout_s=0.5)
                if m.key == incident_id.encode() and m.value is None]

    [tombstone] = wait_until(tombstones, 15, what="the incident's tombstone")
    assert time.monotonic() - resolved_at >= 2.0, "not before its retention"
    versions = [m for m in stack.read("monitor.incidents", idle_timeout_s=0.5)
                if m.key == incident_id.encode() and m.value is not None]
    assert len(versions) >= 3 and {m.partition for m in versions} == {tombstone.partition}, \
        "on the partition of its versions, so compaction drops them"
    assert versions[-1].offset < tombstone.offset
    wait_until(lambda: incidents_of(worker, scope) == [], 10, what="the read view forgot it")
    time.sleep(1.5)  # swept once more: one tombstone, the key is gone from the table
    assert len(tombstones()) == 1
