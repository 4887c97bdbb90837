"""Mutations of the operator API against a real worker: no token 401, a token without
the right 403, a malformed request 400 with a precise message, unknown things 404 — and
after all of them nothing changed: no command on ops.commands, nothing in audit.log, no
pause. Then one valid request goes through, exactly once."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from streams.worker_process import WorkerProcess
from tests.conftest import Stack

pytestmark = pytest.mark.integration

ADMIN = "admin-token-0123456789"
VIEWER = "viewer-token-0123456789"
TOKENS = {
    ADMIN: {"actor": "alice", "rights": ["pause", "resume", "rollback", "promote", "ack",
                                         "resolve"]},
    VIEWER: {"actor": "victor", "rights": ["read"]},
}
UNKNOWN_INCIDENT = "inc-staleness-" + "0" * 24
MUTATIONS = [  # (path, a valid body, the right it needs)
    ("/api/scopes/market:m1/pause", {"reason": "r"}, "pause"),
    ("/api/scopes/market:m1/resume", {"reason": "r"}, "resume"),
    ("/api/scopes/model:m1/rollback", {"reason": "r", "to_stage": "paper"}, "rollback"),
    ("/api/rollout/m1/promote", {"reason": "r"}, "promote"),
    ("/api/rollout/m1/evaluation", {"reason": "r", "model_version": "v2",
                                    "evaluation_id": "run-1", "result": "passed"}, "promote"),
    (f"/api/incidents/{UNKNOWN_INCIDENT}/ack", {"reason": "r"}, "ack"),
    (f"/api/incidents/{UNKNOWN_INCIDENT}/resolve", {"reason": "r"}, "resolve"),
]


def call(worker: WorkerProcess, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    request = urllib.request.Request(f"{worker.url}{path}", data=body, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_refused_mutations_change_nothing_and_say_why(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(api_tokens=TOKENS, api_command_wait_s=5.0)

    for path, body, right in MUTATIONS:
        raw = json.dumps(body).encode()
        status, reply, headers = call(worker, "POST", path, raw)
        assert (status, reply) == (401, {"error": "missing Authorization header (expected "
                                         "'Bearer <token>')", "status": 401}), path
        assert headers["WWW-Authenticate"].startswith('Bearer realm="polymon"')
        status, reply, _ = call(worker, "POST", path, raw, bearer("not-a-token-0123456789"))
        assert (status, reply["error"]) == (401, "unknown token"), path
        status, reply, _ = call(worker, "POST", path, raw,
                                {"Authorization": f"Basic {ADMIN}"})
        assert status == 401, path
        status, reply, _ = call(worker, "POST", path, raw, bearer(VIEWER))
        assert (status, reply["error"]) == (
            403, f"victor lacks the '{right}' right (holds: read)"), path
        # Auth comes first: a bad body without a token is still a 401, not a hint.
        assert call(worker, "POST", path, b"{", {})[0] == 401

    bad_requests = [
        ("/api/scopes/market:m1/pause", b"{", "body is not valid JSON: Expecting property "
         "name enclosed in double quotes: line 1 column 2 (char 1)"),
        ("/api/scopes/market:m1/pause", b"", "body: expected a JSON object with 'reason', "
         "got an empty body"),
        ("/api/scopes/market:m1/pause", b'"pause"', "body: expected a JSON object with "
         "'reason', got str"),
        ("/api/scopes/market:m1/pause", b"{}", "reason: required"),
        ("/api/scopes/market:m1/pause", b'{"reason": " "}', "reason: must not be empty"),
        ("/api/scopes/market:m1/pause", b'{"reason": "x", "force": true}',
         "body: unknown field 'force' (allowed: reason)"),
        ("/api/scopes/market:m1/resume", b'{"reason": ["x"]}',
         "reason: expected a string, got list"),
        ("/api/scopes/market:/pause", b'{"reason": "x"}',
         "scope: scope 'market:': segment 'market:' is not kind:id"),
        ("/api/scopes/desk:d1/pause", b'{"reason": "x"}',
         "scope: scope 'desk:d1': unknown scope kind 'desk' (known: bot, feed, market, model, "
         "runner, strategy)"),
        ("/api/scopes/model:m1/rollback", b'{"reason": "x"}', "to_stage: required"),
        ("/api/scopes/model:m1/rollback", b'{"reason": "x", "to_stage": "prod"}',
         "to_stage: 'prod' is not one of replay, shadow, paper, canary, live"),
        ("/api/scopes/market:m1/rollback", b'{"reason": "x", "to_stage": "paper"}',
         "model: 'market:m1' is not a model or strategy (model:<id>, strategy:<id> or a bare "
         "model id)"),
        ("/api/rollout/m1/promote", b'{"reason": "x", "to_stage": 3}',
         "to_stage: expected a string, got int"),
        ("/api/rollout/strategy:s1/evaluation", b'{"reason": "x", "model_version": "v2", '
         b'"evaluation_id": "e1", "result": "PASSED"}',
         "model: evaluations are of models (model:<id>), not 'strategy:s1'"),
        ("/api/rollout/m1/evaluation", b'{"reason": "x", "model_version": "v2", '
         b'"evaluation_id": "e1", "result": "maybe"}',
         "result: 'maybe' is not one of passed, failed"),
        ("/api/rollout/m1/evaluation", b'{"reason": "x", "model_version": "v2", '
         b'"result": "PASSED"}', "evaluation_id: required"),
        ("/api/incidents/INC-7/ack", b'{"reason": "x"}',
         "'INC-7' is not an incident id (expected inc-<family>-<24 hex digits>)"),
    ]
    for path, raw, message in bad_requests:
        status, reply, _ = call(worker, "POST", path, raw, bearer(ADMIN))
        assert (status, reply) == (400, {"error": message, "status": 400}), path
    status, reply, _ = call(worker, "POST", "/api/scopes/market:m1/pause", b'{"reason": "x"}',
                            {**bearer(ADMIN), "Idempotency-Key": "has space"})
    assert status == 400 and reply["error"].startswith("Idempotency-Key:")
    status, reply, _ = call(worker, "POST", f"/api/incidents/{UNKNOWN_INCIDENT}/ack",
                            b'{"reason": "x"}', bearer(ADMIN))
    assert (status, reply["error"]) == (404, f"unknown incident {UNKNOWN_INCIDENT}")
    status, reply, _ = call(worker, "POST", "/api/scopes/model:m1/rollback",
                            b'{"reason": "x", "to_stage": "replay"}', bearer(ADMIN))
    assert (status, reply["error"]) == (404, "no rollout state for model:m1 on "
                                             "control.rollout")
    status, reply, _ = call(worker, "POST", "/api/rollout/m1/evaluation", json.dumps(
        {"reason": "x", "model_version": "v2", "evaluation_id": "e1", "result": "PASSED"}
    ).encode(), bearer(ADMIN))
    assert (status, reply["error"]) == (404, "no rollout state for model:m1 on "
                                             "control.rollout")
    status, reply, _ = call(worker, "GET", "/api/incidents?state=closed")
    assert (status, reply["error"]) == (400, "state: CLOSED is not one of open, "
                                             "acknowledged, resolved")
    status, reply, _ = call(worker, "GET", "/api/freshness?scope=market:m1&verbose=1")
    assert (status, reply["error"]) == (400, "unknown query parameter 'verbose' (allowed: "
                                             "scope, kind, stale)")

    # Nothing changed anywhere.
    assert stack.read_records("ops.commands", idle_timeout_s=1.0) == []
    assert stack.read_records("audit.log", idle_timeout_s=0.5) == []
    assert stack.read_records("control.pauses", idle_timeout_s=0.5) == []
    assert worker.get("/api/pauses")["pauses"] == {}
    metrics = worker.get_text("/metrics")
    assert 'route="/api/scopes/{scope}/pause",status="401"' in metrics
    assert "polymon_operator_commands_total{" not in metrics

    # The one valid request goes through, once; a retry under its key answers the same.
    keyed = {**bearer(ADMIN), "Idempotency-Key": "pause-m1-1"}
    status, reply, _ = call(worker, "POST", "/api/scopes/market:m1/pause",
                            b'{"reason": "book looks wrong"}', keyed)
    assert status == 202 and reply["outcome"]["decision"] == "paused", reply
    status, again, _ = call(worker, "POST", "/api/scopes/market:m1/pause",
                            b'{"reason": "book looks wrong"}', keyed)
    assert status == 202 and again["outcome"] == reply["outcome"]
    # The key bound to that request: reused for another scope or reason, a 409 naming it,
    # and nothing paused.
    for path, body, differs in (("/api/scopes/market:m2/pause", b'{"reason": "book looks wrong"}',
                                 "scope"),
                                ("/api/scopes/market:m1/pause", b'{"reason": "another"}',
                                 "reason")):
        status, conflict, _ = call(worker, "POST", path, body, keyed)
        assert status == 409 and conflict["error"].startswith(
            "Idempotency-Key pause-m1-1 was used for another request"), conflict
        assert conflict["error"].endswith(f"differs in {differs}: send a new key")
    commands = stack.read_records("ops.commands", idle_timeout_s=0.5)
    assert [(c.action.value, c.scope, c.actor, c.reason) for c in commands] == [
        ("PAUSE", "market:m1", "alice", "book looks wrong")]
    assert worker.get("/api/pauses")["paused"] == ["market:m1"]


def test_reads_can_require_a_token_and_the_console_and_spec_are_served(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(api_tokens=TOKENS, api_read_requires_token=True,
                                api_command_wait_s=5.0)
    status, reply, _ = call(worker, "GET", "/api/incidents")
    assert status == 401
    status, reply, _ = call(worker, "GET", "/api/incidents", headers=bearer(VIEWER))
    assert status == 200 and reply["incidents"] == []
    # The admin token has no 'read' right: reads are a right like any other.
    assert call(worker, "GET", "/api/pauses", headers=bearer(ADMIN))[0] == 403
    # Scopes may come percent-encoded (the console encodes model:m1 as model%3Am1); a
    # promotion goes to the rollout agent, which refuses a model it has never seen.
    status, reply, _ = call(worker, "GET", "/api/rollout/model%3Am1", headers=bearer(VIEWER))
    assert (status, reply["error"]) == (404, "no rollout state for model:m1 on "
                                             "control.rollout")
    status, reply, _ = call(worker, "POST", "/api/rollout/model%3Am1/promote",
                            b'{"reason": "try"}', bearer(ADMIN))
    assert status == 202 and reply["scope"] == "model:m1", reply
    assert reply["outcome"]["decision"] == "refused"
    assert "unknown model" in reply["outcome"]["evidence"]["refused_because"]
    status, spec, _ = call(worker, "GET", "/api/openapi.json")
    assert status == 200 and "/api/incidents/{incident_id}/ack" in spec["paths"]
    assert spec["servers"] == [{"url": worker.url}]
    html = worker.get_text("/")
    assert "<title>polymon · operator console</title>" in html
    for path in ("/api/incidents", "/api/freshness", "/api/heartbeats", "/api/pauses",
                 "/api/rollout", "/api/drift", "/api/execution", "/api/audit"):
        assert f'"{path}' in html, path
