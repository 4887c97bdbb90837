"""Runners acknowledge pauses, on the real broker with a real worker and real PauseGuards:
an operator pauses market:m1; the healthy runner's guard acknowledges it within the bound
(lag 0 in GET /api/runners); a runner that keeps acknowledging an old watermark (its
acknowledgements published by a real producer, as a guard that stopped applying would)
raises GOV_PAUSE_NOT_APPLIED naming it and the pause, then an incident; a runner whose
acknowledgements stop raises GOV_RUNNER_SILENT, and so does a required runner that never
acknowledged; a guard without a runner id publishes nothing and is not listed."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from streams.records import AlertStatus, PauseAck, PauseWatermark, ReportEnvelope
from streams.runner import PauseGuard
from tests.conftest import CODECS, Stack, wait_until
from tests.integration.test_openapi_contract import call

pytestmark = pytest.mark.integration

BOUND_S = 2.0
TIMEOUT_S = 3.0
ALICE = "alice-token-0123456789"
TOKENS = {ALICE: {"actor": "alice", "rights": ["pause", "resume"]}}
RUNNERS = {"r-required": {"required": True}, "r-listed": {"required": False}}


class StuckRunner(threading.Thread):
    """Acknowledges every 0.3 s, always the same watermarks: it applies nothing new."""

    def __init__(self, stack: Stack, watermarks: dict[int, int]) -> None:
        super().__init__(daemon=True)
        self.stack, self.watermarks = stack, watermarks
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.stack.send_records("control.pause-acks", [PauseAck(
                runner_id="r-stuck", runner_version="polymon-test/stuck-1", guard_state="ready",
                sent_ms=int(time.time() * 1000),
                watermarks=[PauseWatermark(partition=p, offset=o)
                            for p, o in sorted(self.watermarks.items())])])
            self.stopping.wait(0.3)

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


def runners(stack: Stack) -> dict[str, Any]:
    status, body, _ = call(stack.workers[0], "GET", "/api/runners")
    assert status == 200, body
    return body["runners"]


def runner_alerts(stack: Stack, code: str) -> list[ReportEnvelope]:
    return [a for a in stack.read_records("monitor.alerts", idle_timeout_s=0.5)
            if a.reason_code == code]


def test_runners_acknowledge_pauses_and_the_ones_that_do_not_are_alerted(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(evaluation_interval_s=0.1, api_command_wait_s=5.0,
                                api_tokens=TOKENS, pause_ack_bound_s=BOUND_S,
                                runner_ack_timeout_s=TIMEOUT_S, runners=RUNNERS)
    guards = {name: PauseGuard(stack.bootstrap, topic_prefix=stack.prefix,
                               runner_id=name, runner_version="bot-1", ack_interval_s=0.5)
              for name in ("r-ok", "r-gone")}
    anonymous = PauseGuard(stack.bootstrap, topic_prefix=stack.prefix)
    stuck: StuckRunner | None = None
    try:
        for guard in (*guards.values(), anonymous):
            guard.start()
        for guard in (*guards.values(), anonymous):
            assert guard.wait_ready(30), guard.status()
        listed = wait_until(lambda: (lambda r: r if {"r-ok", "r-gone"} <= set(r) else None)(
            runners(stack)), 20, what="the guards' runners listed")
        assert listed["r-ok"]["runner_version"].endswith("/bot-1")
        assert listed["r-listed"]["never_acknowledged"] and not listed["r-listed"]["silent"]
        assert listed["r-required"]["never_acknowledged"]  # silent after the timeout

        # r-gone's acknowledgements stop (its last one says the guard stopped)
        guards.pop("r-gone").stop()
        stopped_at = time.monotonic()
        # r-stuck acknowledges what there is before the pause, and never more
        stuck = StuckRunner(stack, dict(guards["r-ok"]._book.positions))
        stuck.start()
        wait_until(lambda: "r-stuck" in runners(stack), 10, what="r-stuck listed")

        status, reply, _ = call(worker, "POST", "/api/scopes/market:m1/pause",
                                {"reason": "runaway orders"}, ALICE)
        assert status == 202 and reply["outcome"]["decision"] == "paused", reply
        paused_at = time.monotonic()
        state = wait_until(lambda: guards["r-ok"].paused_scopes().get("market:m1"), 10,
                           what="r-ok's guard applying the pause")

        def caught_up() -> dict[str, Any] | None:
            row = runners(stack)["r-ok"]
            return row if row["lag_records"] == 0 and row["lag_s"] == 0 else None

        ok = wait_until(caught_up, BOUND_S, interval_s=0.1,
                        what="r-ok acknowledging the pause within the bound")
        print(f"r-ok acknowledged the pause {time.monotonic() - paused_at:.2f}s after it "
              f"was published (bound {BOUND_S:g}s)")
        assert ok["oldest_unapplied"] is None and not ok["silent"]

        not_applied = wait_until(lambda: runner_alerts(stack, "GOV_PAUSE_NOT_APPLIED"), 15,
                                 what="GOV_PAUSE_NOT_APPLIED for r-stuck")
        row = runners(stack)["r-stuck"]
        silent = wait_until(lambda: (lambda found: found if {a.scope for a in found} >= {
            "runner:r-gone", "runner:r-required"} else None)(
            runner_alerts(stack, "GOV_RUNNER_SILENT")), 15, what="GOV_RUNNER_SILENT")
        print(f"r-gone silent alert within {time.monotonic() - stopped_at:.2f}s of its last "
              f"ack (timeout {TIMEOUT_S:g}s)")
        listed = runners(stack)
        # r-ok, running all along, applied and acknowledged: no alert of its own
        assert not any(a.scope == "runner:r-ok" for a in
                       runner_alerts(stack, "GOV_PAUSE_NOT_APPLIED") + silent)
    finally:
        if stuck is not None:
            stuck.stop()
        for guard in (*guards.values(), anonymous):
            guard.stop()

    assert [a.scope for a in not_applied] == ["runner:r-stuck"], not_applied
    alert = not_applied[0]
    payload = alert.payload
    assert payload.status is AlertStatus.FIRING and alert.severity.value == "CRITICAL"
    assert payload.threshold == BOUND_S and payload.value > BOUND_S
    for part in ("runner r-stuck", f"pause state {state.state_id}", "of market:m1",
                 f"beyond the {BOUND_S:g}s bound"):
        assert part in payload.message, (part, payload.message)
    assert row["oldest_unapplied"]["state_id"] == state.state_id
    assert row["lag_records"] >= 1 and row["lag_s"] > BOUND_S
    assert row["alerts"]["GOV_PAUSE_NOT_APPLIED"] == alert.envelope_id

    assert sorted(a.scope for a in silent) == ["runner:r-gone", "runner:r-required"]
    gone = next(a for a in silent if a.scope == "runner:r-gone")
    assert gone.severity.value == "WARNING" and gone.payload.threshold == TIMEOUT_S
    assert "runner r-gone sent no pause acknowledgement" in gone.payload.message

    # the guard without a runner id published nothing: only the named runners are known
    assert set(listed) == {"r-ok", "r-gone", "r-stuck", "r-required", "r-listed"}
    assert listed["r-gone"]["silent"] and listed["r-gone"]["guard_state"] == "stopped"

    def incident() -> dict[str, Any] | None:
        status, body, _ = call(worker, "GET", "/api/incidents?scope=runner:r-stuck")
        assert status == 200, body
        return next((i for i in body["incidents"]
                     if i["reason_code"] == "GOV_PAUSE_NOT_APPLIED"), None)

    opened = wait_until(incident, 15, what="the runner's incident")
    assert (opened["severity"], opened["scope"]) == ("CRITICAL", "runner:r-stuck")

    # malformed acknowledgements go to the dead letters, with the reason
    forged = PauseAck(runner_id="r-ok", runner_version="x", guard_state="ready", sent_ms=0)
    stack.send_raw("control.pause-acks", [(b"r-junk", b"not avro"),
                                          (b"r-other", CODECS["PauseAck"].encode_record(forged))])
    letters = wait_until(lambda: [d for d in stack.read_records("monitor.deadletter",
                                                                idle_timeout_s=0.5)
                                  if d.source_topic == stack.topic("control.pause-acks")],
                         15, what="the malformed acknowledgements dead-lettered")
    assert sorted((d.key, d.stage.value) for d in letters) == [
        (b"r-junk", "DECODE"), (b"r-other", "VALIDATE")]
    assert "is not the acknowledgement's runner_id 'r-ok'" in next(
        d.error for d in letters if d.key == b"r-other")
    assert "r-junk" not in runners(stack)

    status, metrics, _ = call(worker, "GET", "/metrics")
    assert status == 200
    assert 'polymon_runner_pause_lag_records{runner="r-ok"} 0.0' in metrics
    assert 'polymon_runner_pause_lag_seconds{runner="r-stuck"}' in metrics
