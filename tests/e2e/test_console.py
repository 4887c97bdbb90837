"""The operator console's own script, run against a live worker: it renders every panel
from the real API without errors, and its acknowledge button acknowledges the incident
through the API with the operator's reason and token.

No browser is installed where the tests run, so the page's script runs under Node with
a minimal DOM stand-in (the script only uses getElementById, innerHTML/textContent,
fetch, sessionStorage and a dialog); skipped where Node is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from streams.records import HealthEvent, HealthEventKind
from tests.conftest import Stack, wait_until

pytestmark = pytest.mark.e2e
NODE = shutil.which("node")
PAGE = Path(__file__).resolve().parents[2] / "streams" / "web" / "static" / "console.html"
TOKEN = "console-token-0123456789"

HARNESS = r"""
const [base, token, scriptPath] = process.argv.slice(2);
const script = require("fs").readFileSync(scriptPath, "utf8");
const els = {};
function el(id) {
  return els[id] || (els[id] = {
    id, innerHTML: "", textContent: "", className: "", value: "", checked: false, style: {},
    dataset: {}, open: false, returnValue: "", children: [],
    querySelector() { return {textContent: ""}; }, addEventListener(type, fn) {},
    appendChild(child) { this.children.push(child); },
    showModal() {  // the operator types a reason and confirms
      this.open = true; els["action-reason"].value = "seen in the console";
      setTimeout(() => { this.open = false; this.returnValue = "ok"; this.onclose(); }, 10);
    },
  });
}
let clickHandler = null;
global.document = {
  getElementById: el, createElement: () => ({className: "", textContent: "", remove() {}}),
  addEventListener(type, fn) { if (type === "click") clickHandler = fn; },
};
const store = {"polymon-token": token};
global.sessionStorage = {getItem: (k) => store[k] ?? null, setItem: (k, v) => { store[k] = v; }};
global.setInterval = () => 0;
const realFetch = fetch;
const requests = [];
global.fetch = (path, options) => { requests.push([options?.method || "GET", path]);
                                     return realFetch(base + path, options); };
(0, eval)(script);
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  await wait(1500);
  const html = Object.fromEntries(Object.entries(els).map(([k, v]) => [k, v.innerHTML]));
  const match = /data-incident="([^"]+)"/.exec(html["incidents-body"]);
  if (match) {  // click "ack" on the first incident row
    const row = {dataset: {incident: match[1]}};
    const button = {dataset: {act: "ack"}, closest: (sel) => sel === "tr" ? row : button};
    await clickHandler({target: button});
    await wait(6000);
  }
  const toasts = els["toast"].children.map((c) => [c.className, c.textContent]);
  console.log(JSON.stringify({html, conn: els["conn"].innerHTML, toasts, requests}));
})().catch((e) => { console.error(e); process.exit(1); });
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_console_renders_the_api_and_acknowledges_an_incident(stack: Stack,
                                                              tmp_path: Path) -> None:
    stack.create_topics()
    worker = stack.start_worker(
        evaluation_interval_s=0.1, api_command_wait_s=5.0,
        api_tokens={TOKEN: {"actor": "carol", "rights": ["ack", "resolve"]}})
    now_ms = int(time.time() * 1000)
    stack.send_records("health.events", [
        HealthEvent(event_id=uuid.uuid4().hex, scope="market:c1",
                    kind=HealthEventKind.DATA_UPDATE, source="feed", event_time_ms=now_ms,
                    feed="book", sequence=s) for s in (1, 2, 6)])
    wait_until(lambda: len([i for i in worker.get("/api/incidents?scope=market:c1")[
        "incidents"] if i["paused"]]) == 1, 15, what="the stale book's incident, paused")
    script = re.search(r"<script>(.*)</script>", PAGE.read_text(), re.S)
    assert script is not None
    (tmp_path / "console.js").write_text(script.group(1))
    (tmp_path / "harness.js").write_text(HARNESS)

    run = subprocess.run([NODE, str(tmp_path / "harness.js"), worker.url, TOKEN,
                          str(tmp_path / "console.js")], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    html = seen["html"]
    assert 'class="dot ok"' in seen["conn"]
    assert "RISK_STALE_BOOK" in html["incidents-body"] and "GOV_DATA_GAP" in html[
        "incidents-body"]
    assert "market:c1" in html["scopes-body"] and "PAUSED" in html["scopes-body"]
    assert '<span class="bad">book' in html["scopes-body"]
    for panel in ("rollout-body", "models-body", "execution-body", "audit-body"):
        assert html[panel], panel

    # The ack button went through the API with carol's token and the typed reason.
    posts = [path for method, path in seen["requests"] if method == "POST"]
    assert len(posts) == 1 and posts[0].endswith("/ack")
    assert any(kind == "ok" and ": acknowledged" in text for kind, text in seen["toasts"]), \
        seen["toasts"]
    acked = [i for i in worker.get("/api/incidents?scope=market:c1")["incidents"]
             if i["state"] == "ACKNOWLEDGED"]
    assert len(acked) == 1 and acked[0]["acknowledged_by"] == "operator:carol"
    audit = worker.get("/api/audit?action=ack")["entries"]
    assert audit[0]["evidence"]["reason"] == "seen in the console"
