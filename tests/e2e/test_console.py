"""The operator console in headless Chromium against a live worker: it shows a paused
scope and its open incident from the real API, and an operator who clicks acknowledge,
types a reason and their token sees the incident acknowledged — in the page, through
the API and in the audit log.

Chromium is Debian's (`apt-get install chromium`, which .ci/run does), driven by
playwright; nothing is downloaded. Where no Chromium is installed the test is skipped,
except under CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.records import HealthEvent, HealthEventKind
from streams.runner import PauseGuard
from tests.conftest import Stack, wait_until

pytestmark = pytest.mark.e2e
TOKEN = "console-token-0123456789"
CHROMIUM = os.environ.get("POLYMON_CHROMIUM") or shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
# This machine's network is closed: Chromium's own background connections only fail.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT_MS = 15_000


@pytest.fixture
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("no Chromium under CI: .ci/run installs Debian's chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_console_shows_a_paused_scope_and_acknowledges_its_incident(
        stack: Stack, browser: object, tmp_path: Path) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    stack.create_topics()
    worker = stack.start_worker(
        evaluation_interval_s=0.1, api_command_wait_s=5.0,
        api_tokens={TOKEN: {"actor": "carol", "rights": ["ack", "resolve"]}})
    now_ms = int(time.time() * 1000)
    # a book with a gap (3..5 missing) that then goes silent: stale, paused, two incidents
    stack.send_records("health.events", [
        HealthEvent(event_id=uuid.uuid4().hex, scope="market:c1",
                    kind=HealthEventKind.DATA_UPDATE, source="feed", event_time_ms=now_ms,
                    feed="book", sequence=s) for s in (1, 2, 6)])
    wait_until(lambda: len([i for i in worker.get("/api/incidents?scope=market:c1")[
        "incidents"] if i["paused"]]) == 1, 15, what="the stale book's incident, paused")

    # a runner whose PauseGuard acknowledges pauses: listed in the runners panel
    guard = PauseGuard(stack.bootstrap, topic_prefix=stack.prefix, runner_id="console-r1",
                       runner_version="bot-1").start()
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(worker.url + "/")
        scope_row = page.locator('#scopes-body tr[data-scope="market:c1"]')
        expect(scope_row).to_contain_text("PAUSED", timeout=WAIT_MS)
        expect(scope_row).to_contain_text("RISK_STALE_BOOK")
        stale = page.locator("#incidents-body tr[data-incident]",
                             has_text="RISK_STALE_BOOK")
        expect(stale).to_have_count(1, timeout=WAIT_MS)
        expect(stale.locator("td").nth(2)).to_have_text("OPEN")
        expect(stale).to_contain_text("paused")
        expect(page.locator("#incidents-body")).to_contain_text("GOV_DATA_GAP")
        expect(page.locator("#conn .dot.ok")).to_have_count(1)
        runner_row = page.locator("#runners-body tr", has_text="console-r1")
        expect(runner_row).to_contain_text("ready", timeout=WAIT_MS)
        expect(runner_row).to_contain_text("ok")

        # The operator acknowledges: the dialog asks for a reason and their token.
        stale.locator('button[data-act="ack"]').click()
        dialog = page.locator("dialog#action")
        expect(dialog).to_be_visible()
        expect(page.locator("#action-title")).to_have_text("Acknowledge incident")
        page.fill("#action-reason", "seen in the console")
        page.fill("#action-token", TOKEN)
        page.click("#action-ok")
        expect(dialog).to_be_hidden()
        expect(page.locator("#toast .ok")).to_contain_text(": acknowledged",
                                                           timeout=WAIT_MS)
        expect(stale.locator("td").nth(2)).to_have_text("ACKNOWLEDGED", timeout=WAIT_MS)
        expect(stale).to_contain_text("operator:carol")
        expect(stale.locator('button[data-act="ack"]')).to_have_count(0)

        # Resolving a CRITICAL incident asks for its root cause and follow-ups.
        stale.locator('button[data-act="resolve"]').click()
        expect(dialog).to_be_visible()
        expect(page.locator("#review-row")).to_be_visible()
        page.fill("#action-reason", "feed back")
        page.fill("#action-token", TOKEN)
        page.click("#action-ok")
        expect(dialog).to_be_visible()  # the form stops at the empty root cause
        page.fill("#action-root-cause", "the feed's socket hung")
        page.fill("#action-follow-ups", "alert on reconnects\n\nfailover drill\n")
        page.click("#action-ok")
        expect(dialog).to_be_hidden()
        expect(page.locator("#toast .ok").filter(has_text="RESOLVE market:c1")).to_contain_text(
            ": resolved", timeout=WAIT_MS)
    finally:
        page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
        page.close()
        guard.stop()
    assert errors == [], errors

    resolved = [i for i in worker.get("/api/incidents?scope=market:c1&state=resolved")
                ["incidents"] if i["reason_code"] == "RISK_STALE_BOOK"]
    assert [(i["acknowledged_by"], i["resolved_by"], i["root_cause"], i["follow_ups"])
            for i in resolved] == [("operator:carol", "operator:carol",
                                    "the feed's socket hung",
                                    ["alert on reconnects", "failover drill"])]
    audit = worker.get("/api/audit?action=ack")["entries"]
    assert [(e["actor"], e["evidence"]["reason"]) for e in audit] == [
        ("operator:carol", "seen in the console")]
