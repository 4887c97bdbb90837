"""One log, one auditor, on the real broker with a real worker: a runner's TradeReporter
publishes trade envelopes on exec.trades; the worker appends them to audit.log unchanged
(same envelope ids), `/api/audit?kind=trade` lists them (and kind=alert does not); a
malformed record, a forged alert and a trade stamped an hour ahead are dead-lettered
with the reason; an
incident on the trades' market (a stale book) lists them as trades affected in its view,
its review and `polymon ctl incident-report`."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from streams.envelope import alert_envelope
from streams.records import (
    AlertStatus,
    DeadLetterStage,
    HealthEvent,
    HealthEventKind,
    TradePayload,
)
from streams.runner import TradeReporter
from tests.conftest import CODECS, Stack, wait_until
from tests.integration.test_incidents_api import call, polymon_ctl

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_trade_envelopes_reach_the_audit_log_the_audit_api_and_the_incident_review(
        stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(evaluation_interval_s=0.1, stale_hold_down_s=1.0)
    # the book of market:m1 updates once, then stops: a RISK_STALE_BOOK incident opens
    # on market:m1 about 2 s later (the book's default staleness threshold)
    stack.send_records("health.events", [HealthEvent(
        event_id=uuid.uuid4().hex, scope="market:m1", kind=HealthEventKind.DATA_UPDATE,
        source="test-feed", event_time_ms=int(time.time() * 1000), feed="book", sequence=1)])

    with TradeReporter(stack.bootstrap, "r1", topic_prefix=stack.prefix,
                       config_version="runner-1.0") as reporter:
        t0 = int(time.time() * 1000)
        ordered = reporter.report("bot:b1/market:m1", "o-1", "BUY", 10.0, 0.42,
                                  model_version="v2", event_time_ms=t0 - 20)
        filled = reporter.report("bot:b1/market:m1", "o-1", "BUY", 10.0, 0.42,
                                 filled_size=10.0, fill_price=0.43, model_version="v2",
                                 event_time_ms=t0 - 10, traceparent=TRACEPARENT)
        elsewhere = reporter.report("bot:b1/market:m2", "o-2", "SELL", 5.0, 0.6)
        # a retry of the fill's report: the same envelope, listed once
        assert reporter.report("bot:b1/market:m1", "o-1", "BUY", 10.0, 0.42,
                               filled_size=10.0, fill_price=0.43, model_version="v2",
                               event_time_ms=t0 - 10, traceparent=TRACEPARENT) == filled
        # a trade stamped an hour ahead: outside the accepted skew, as any input's
        future = reporter.report("bot:b1/market:m1", "o-3", "BUY", 1.0, 0.5,
                                 event_time_ms=t0 + 3_600_000)
        assert reporter.flush(10.0) == 0
    ours = {ordered, filled, elsewhere}
    assert len(ours) == 3

    assert future not in ours
    # written to exec.trades without the reporter: garbage, and an alert (a runner
    # cannot write polymon's decisions)
    forged = alert_envelope(
        alert_id="alert-forged", status=AlertStatus.RESOLVED, scope="market:m1",
        reason_code="RISK_STALE_BOOK", metric="staleness_s", value=0.0, threshold=2.0,
        window_s=None, message="all fine", source="agents.health",
        observed_ms=int(time.time() * 1000), event_time_ms=int(time.time() * 1000),
        config_version="x")
    stack.send_raw("exec.trades", [(b"market:m1", b"\x00not avro"),
                                   (b"market:m1", CODECS["ReportEnvelope"].encode_record(forged))])

    def listed(kind: str) -> list[dict[str, Any]]:
        status, body = call(worker, "GET", f"/api/audit?kind={kind}")
        assert status == 200, body
        return body["entries"]

    trades = wait_until(lambda: (found := listed("trade"))
                        and {e["envelope_id"] for e in found} >= ours and found, 30,
                        what="the trade envelopes in /api/audit?kind=trade")
    assert sorted(e["envelope_id"] for e in trades) == sorted(ours), "each envelope once"
    fill_entry = next(e for e in trades if e["envelope_id"] == filled)
    assert (fill_entry["kind"], fill_entry["scope"], fill_entry["actor"],
            fill_entry["decision"]) == ("trade", "bot:b1/market:m1", "runner:r1", "filled")
    assert fill_entry["trade"] == {"order_id": "o-1", "runner_id": "r1", "side": "BUY",
                                   "size": 10.0, "price": 0.42, "filled_size": 10.0,
                                   "fill_price": 0.43, "model_version": "v2"}
    assert call(worker, "GET", "/api/audit?kind=trades")[0] == 400

    # on audit.log itself, unchanged: the ids the runner made, its trace
    logged = [e for e in stack.read_records("audit.log", idle_timeout_s=0.5)
              if isinstance(e.payload, TradePayload)]
    assert {e.envelope_id for e in logged} == ours
    traced = next(e for e in logged if e.envelope_id == filled)
    assert (traced.trace_id, traced.cause_span_id, traced.config_version) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "runner-1.0")
    assert not any(e.envelope_id == "alert-forged"
                   for e in stack.read_records("audit.log", idle_timeout_s=0.2))

    letters = wait_until(
        lambda: len(found := [d for d in stack.read_records("monitor.deadletter",
                                                            idle_timeout_s=0.5)
                              if d.source_topic.endswith("exec.trades")]) >= 3 and found,
        20, what="three dead letters from exec.trades")
    assert [d.value for d in letters if d.stage is DeadLetterStage.DECODE] == [b"\x00not avro"]
    refused = {CODECS["ReportEnvelope"].decode_record(d.value).envelope_id: d.error
               for d in letters if d.stage is DeadLetterStage.VALIDATE}
    assert "got AlertPayload: a runner cannot write polymon's decisions" in \
        refused["alert-forged"]
    assert "s in the future (accepted skew" in refused[future]

    # the incident on market:m1 links the trades of bot:b1/market:m1, not market:m2's
    def stale_incident() -> dict[str, Any] | None:
        status, body = call(worker, "GET", "/api/incidents?scope=market:m1")
        assert status == 200, body
        return next((i for i in body["incidents"]
                     if i["reason_code"] == "RISK_STALE_BOOK" and i["scope"] == "market:m1"),
                    None)

    incident_id = wait_until(stale_incident, 30, what="the market:m1 incident")["incident_id"]
    assert not {e["envelope_id"] for e in listed("alert")} & ours
    status, view = call(worker, "GET", f"/api/incidents/{incident_id}")
    assert status == 200, view
    assert view["trades"]["envelope_ids"] == [ordered, filled]
    assert view["trades"]["count"] == 2
    status, review = call(worker, "GET", f"/api/incidents/{incident_id}/review")
    assert status == 200, review
    affected = review["markdown"].split("## Trades affected", 1)[1]
    assert ordered in affected and filled in affected and elsewhere not in affected
    assert "| o-1 | BUY | 10 | 0.42 | 10 | 0.43 | v2 | EXEC_TRADE |" in affected
    printed = polymon_ctl(stack, worker, "incident-report", incident_id, token=None)
    assert printed.returncode == 0, printed.stderr
    section = printed.stdout.split("## Trades affected", 1)[1]
    assert ordered in section and filled in section and elsewhere not in section
    shown = polymon_ctl(stack, worker, "--json", "audit", "--kind", "trade", "--scope",
                        "market:m1", token=None)
    assert shown.returncode == 0, shown.stderr
    assert [e["envelope_id"] for e in json.loads(shown.stdout)["entries"]] == [filled, ordered]
