"""The OpenAPI document says what the API does: schemathesis (property-based, every check)
runs against a live worker on the real broker from the worker's own GET /api/openapi.json,
with a token of every right and with none, and any finding fails the test. Without a
token, every mutation must be 401 and every GET 200, or 401 where reads need the 'read'
right: asserted operation by operation, from the document.

The worker has data first (stale books open incidents, a model enters the rollout ladder,
a command has an outcome), so operations reach their logic and the document's links (an
incident id from GET /api/incidents into the incident, ack and resolve) have ids to carry.

POLYMON_CONTRACT_EXAMPLES (examples per operation) and POLYMON_CONTRACT_SEED change the
run; the counts are printed (pytest -s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams.records import FeatureHistogram, FeatureProfile, HealthEvent, HealthEventKind
from streams.web.auth import RIGHTS
from streams.worker_process import WorkerProcess
from tests.conftest import Stack, wait_until

pytestmark = pytest.mark.integration

TOKEN = "contract-token-0123456789"
TOKENS = {TOKEN: {"actor": "tester", "rights": list(RIGHTS)}}
SETTINGS = {"evaluation_interval_s": 0.1, "stale_hold_down_s": 1.0,
            "api_command_wait_s": 2.0, "api_tokens": TOKENS}
# Bounded so that both tests take about three minutes on two cores, broker start included.
EXAMPLES = int(os.environ.get("POLYMON_CONTRACT_EXAMPLES", "20"))
SEED = int(os.environ.get("POLYMON_CONTRACT_SEED", "29"))
STALE_MARKETS = ("market:contract1", "market:contract2", "market:contract3")
MODEL = "contract"
COMMAND = "contract-pause-1"


def now_ms() -> int:
    return int(time.time() * 1000)


def call(worker: WorkerProcess, method: str, path: str, body: Any = None,
         token: str | None = None, key: str | None = None) -> tuple[int, Any, Any]:
    """(status, body as JSON or text, headers) of one request."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key:
        headers["Idempotency-Key"] = key
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{worker.url}{path}", data=data, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            status, raw, answer_headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, answer_headers = exc.code, exc.read(), exc.headers
    if answer_headers.get_content_type() == "application/json":
        return status, json.loads(raw), answer_headers
    return status, raw.decode(errors="replace"), answer_headers


def seed(stack: Stack, worker: WorkerProcess) -> dict[str, str]:
    """Incidents, a rollout and a command outcome: ids for the operations that name one."""
    stack.send_records("health.events", [
        HealthEvent(event_id=uuid.uuid4().hex, scope=scope, kind=HealthEventKind.DATA_UPDATE,
                    source="contract-feed", event_time_ms=now_ms(), feed="book", sequence=1)
        for scope in STALE_MARKETS])
    stack.send_records("model.profiles", [FeatureProfile(
        model=MODEL, model_version="v1", created_time_ms=now_ms(), features=[
            FeatureHistogram(name="spread", bin_edges=[-1.0, 0.0, 1.0],
                             probabilities=[0.1, 0.4, 0.4, 0.1])])])
    status, reply, _ = call(worker, "POST", "/api/scopes/market:contract9/pause",
                            {"reason": "contract test"}, TOKEN, COMMAND)
    assert status == 202, reply
    incidents = wait_until(lambda: call(worker, "GET", "/api/incidents")[1]["incidents"], 30,
                           what="the stale books' incidents")
    wait_until(lambda: call(worker, "GET", f"/api/rollout/{MODEL}")[0] == 200, 30,
               what=f"model:{MODEL} on the rollout ladder")
    wait_until(lambda: call(worker, "GET", f"/api/commands/{COMMAND}")[0] == 200, 30,
               what="the seeded command's outcome")
    return {"incident_id": incidents[0]["incident_id"], "model": MODEL, "command_id": COMMAND,
            "scope": "market:contract1"}


# --- schemathesis -------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    operations: int
    requests: int
    findings: int
    report: dict[str, Any]
    output: str

    def summary(self) -> str:
        return (f"schemathesis {self.report['schemathesis_version']} [{self.label}]: "
                f"{self.operations} operations, {self.requests} requests generated, "
                f"{self.findings} findings")


def config(ids: dict[str, str]) -> str:
    """schemathesis.toml: the known ids drawn now and then for path parameters, so that
    operations naming a thing also meet one that exists (the rest stays generated)."""
    known = {"incident_id": [ids["incident_id"]], "command_id": [ids["command_id"]],
             "model": [MODEL, f"model:{MODEL}"],
             "scope": [f"model:{MODEL}", *STALE_MARKETS, "global"]}
    lines = ["[dictionaries]"]
    lines += [f"{name} = {{ values = {json.dumps(values)} }}" for name, values in known.items()]
    lines += ["", "[parameters]"]
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.3 }}'
              for name in known]
    return "\n".join(lines) + "\n"


def schemathesis(worker: WorkerProcess, label: str, workdir: Path, ids: dict[str, str],
                 token: str | None = None) -> Run:
    """`schemathesis run` of the worker's document with every check; its JSON report."""
    report_path = workdir / f"{label}.json"
    config_path = workdir / "schemathesis.toml"
    config_path.write_text(config(ids))
    command = [str(Path(sys.executable).with_name("schemathesis")),
               "--config-file", str(config_path), "run",
               f"{worker.url}/api/openapi.json", "--checks", "all",
               "--max-examples", str(EXAMPLES), "--seed", str(SEED),
               "--request-timeout", "20", "--no-color", "--report", "json",
               "--report-json-path", str(report_path)]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    # cwd: schemathesis and hypothesis write their own files there, not in the repository
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1"})
    output = done.stdout + done.stderr
    assert report_path.exists(), f"schemathesis wrote no report:\n{output[-5000:]}"
    report = json.loads(report_path.read_text())
    run = Run(label, report["operations"]["tested"], report["test_cases"]["generated"],
              sum(failure["count"] for failure in report["failures"]), report, output)
    links = [line.strip() for line in output.splitlines() if "API Links:" in line]
    print(f"\n{run.summary()}" + (f" ({links[0]})" if links else ""))
    return run


def assert_no_finding(run: Run, expected_warnings: dict[str, list[str]] | None = None) -> None:
    """No failure, no error, every operation tested, and no warning but the expected ones
    (without a token: schemathesis notes that the guarded operations answered only 401)."""
    report = run.report
    warnings = {name: sorted(found) for name, found in report["warnings"].items() if found}
    for name, operations_warned in (expected_warnings or {}).items():
        assert warnings.pop(name, []) == sorted(operations_warned), (name, run.summary())
    problems = [f"{f['code']} {f['title']}: {f['count']} ({', '.join(f['operations'])})"
                for f in report["failures"]]
    problems += [f"error: {e}" for e in report["errors"]]
    problems += [f"warning {name}: {found}" for name, found in warnings.items()]
    assert report["operations"]["tested"] == report["operations"]["total"], report["operations"]
    assert report["exit_code"] == 0 and not problems, (
        "\n".join([run.summary(), *problems]) + f"\n{run.output[-12000:]}")


# --- the document, operation by operation, without a token -----------------------------


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation)
            for path, methods in document["paths"].items()
            for method, operation in methods.items()]


def valid_request(path: str, operation: dict[str, Any],
                  ids: dict[str, str]) -> tuple[str, dict[str, str] | None]:
    """The operation's path with known ids in it, and a valid body for a mutation."""
    for name, value in ids.items():
        path = path.replace(f"{{{name}}}", urllib.parse.quote(value, safe=":"))
    if "requestBody" not in operation:
        return path, None
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    body = {"reason": "contract test"}
    if "to_stage" in schema["required"]:
        body["to_stage"] = "REPLAY"
    return path, body


def refused_without_a_token(worker: WorkerProcess, ids: dict[str, str],
                            read_requires_token: bool) -> dict[str, int]:
    """Every operation of the worker's document, valid but without a token: each mutation
    401, each GET 200 (401 for the JSON API's reads when they need the 'read' right)."""
    status, document, _ = call(worker, "GET", "/api/openapi.json")
    assert status == 200
    seen: dict[str, int] = {}
    for method, template, operation in operations(document):
        path, body = valid_request(template, operation, ids)
        status, reply, headers = call(worker, method, path, body)
        seen[f"{method} {template}"] = status
        guarded = method == "POST" or (read_requires_token and template.startswith("/api/")
                                       and template != "/api/openapi.json")
        assert bool(operation["security"]) is guarded, (method, template)
        if guarded:
            assert status == 401, (method, path, status, reply)
            assert reply["status"] == 401 and reply["error"].startswith("missing Authorization")
            assert headers["WWW-Authenticate"].startswith('Bearer realm="polymon"')
            assert "401" in operation["responses"], (method, template)
        else:
            assert status == 200, (method, path, status, reply)
    return seen


# --- the tests ----------------------------------------------------------------------------


def test_the_document_holds_with_a_token_of_every_right_and_without_one(
        stack: Stack, tmp_path: Path) -> None:
    stack.create_topics()
    worker = stack.start_worker(**SETTINGS)
    ids = seed(stack, worker)

    seen = refused_without_a_token(worker, ids, read_requires_token=False)
    mutations = sorted(op for op in seen if op.startswith("POST"))
    print(f"\nwithout a token: {len(mutations)} mutations 401, "
          f"{len(seen) - len(mutations)} GETs 200")
    assert (len(mutations), len(seen)) == (7, 28)

    every_right = schemathesis(worker, "token of every right", tmp_path, ids, TOKEN)
    # The generated requests reached the logic: incidents acknowledged and resolved by the
    # test's actor (ids from the links and the seeded ones), commands decided.
    decided = {action: sorted({e["decision"] for e in call(
        worker, "GET", f"/api/audit?action={action}&limit=5000")[1]["entries"]
        if e["actor"] == "operator:tester"}) for action in ("ack", "resolve", "pause")}
    print(f"decisions of the generated commands: {decided}")
    assert "acknowledged" in decided["ack"] and "resolved" in decided["resolve"], decided
    no_token = schemathesis(worker, "no token", tmp_path, ids)
    assert_no_finding(every_right)
    assert_no_finding(no_token, {"missing_auth": mutations})
    assert worker.exit_code is None, worker.log_tail()


def test_reads_that_need_a_token_are_documented_and_refused_without_one(
        stack: Stack, tmp_path: Path) -> None:
    stack.create_topics()
    worker = stack.start_worker(**SETTINGS, api_read_requires_token=True)
    ids = {"incident_id": "inc-staleness-" + "0" * 24, "model": MODEL,
           "command_id": COMMAND, "scope": "market:contract1"}

    seen = refused_without_a_token(worker, ids, read_requires_token=True)
    refused = sorted(op for op, status in seen.items() if status == 401)
    print(f"\nreads need a token: {len(refused)} of {len(seen)} operations 401 without one")
    assert sorted(op for op in seen if op not in refused) == [
        "GET /", "GET /api/openapi.json", "GET /healthz", "GET /metrics"]

    no_token = schemathesis(worker, "no token, reads need one", tmp_path, ids)
    # schemathesis does not test the document's own operation: GET /api/openapi.json
    assert_no_finding(no_token, {"missing_auth": [
        op for op in refused if op != "GET /api/openapi.json"]})
    assert worker.exit_code is None, worker.log_tail()
