"""Trading on a paused scope, on the real broker with a real worker: an operator pauses
market:m1 and bot:b2 through the API; a scripted bot keeps filling on m1 (and another
bot, b2, on an unpaused market, whose pause lives on another partition of
control.pauses than its fills). Fills inside the grace raise nothing; the first fill
past it raises one CRITICAL RISK_STATE_DIVERGENCE per paused scope, naming bot, market
and pause state, and opens an incident; resuming ends the episode."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from streams.control.keying import partition_for
from streams.records import AlertStatus, FillEvent, FillKind, PauseState, ReportEnvelope
from streams.settings import Settings
from streams.topics import load_topic_specs
from streams.worker_process import WorkerProcess
from tests.conftest import Stack, wait_until
from tests.integration.test_openapi_contract import call

pytestmark = pytest.mark.integration

GRACE_S = 2.0
ALICE = "alice-token-0123456789"
TOKENS = {ALICE: {"actor": "alice", "rights": ["pause", "resume"]}}
CODE = "RISK_STATE_DIVERGENCE"


def now_ms() -> int:
    return int(time.time() * 1000)


def fill(bot: str, market: str, kind: FillKind = FillKind.FILL) -> FillEvent:
    return FillEvent(event_id=uuid.uuid4().hex, market=market, bot=bot, kind=kind,
                     order_id=uuid.uuid4().hex, event_time_ms=now_ms(), requested_size=10.0,
                     filled_size=10.0 if kind is FillKind.FILL else 0.0)


class ScriptedBot(threading.Thread):
    """Fills (and order intents) every 100 ms on its markets, whatever the pauses say."""

    def __init__(self, stack: Stack, trades: list[tuple[str, str]]) -> None:
        super().__init__(daemon=True)
        self.stack, self.trades = stack, trades
        self.sent: list[FillEvent] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        count = 0
        while not self.stopping.is_set():
            kind = FillKind.INTENT if count % 2 else FillKind.FILL
            batch = [fill(bot, market, kind) for bot, market in self.trades]
            self.stack.send_records("exec.fills", batch)
            self.sent += batch
            count += 1
            self.stopping.wait(0.1)

    def stop(self) -> list[FillEvent]:
        self.stopping.set()
        self.join(10)
        return self.sent


def divergence_alerts(stack: Stack) -> list[ReportEnvelope]:
    return [a for a in stack.read_records("monitor.alerts", idle_timeout_s=0.5)
            if a.reason_code == CODE]


def pause_of(stack: Stack, scope: str) -> PauseState | None:
    states = [p for p in stack.read_records("control.pauses", idle_timeout_s=0.5)
              if p.scope == scope]
    return states[-1] if states else None


def command(worker: WorkerProcess, action: str, scope: str, reason: str) -> dict[str, Any]:
    status, reply, _ = call(worker, "POST", f"/api/scopes/{scope}/{action}",
                            {"reason": reason}, ALICE)
    assert status == 202, reply
    return reply


def test_a_bot_filling_on_its_paused_market_is_caught_after_the_grace(stack: Stack) -> None:
    stack.create_topics()
    # bot:b2's pause and market m4's fills are on different partitions: the worker reading
    # only the fill's partition would not see it
    partitions = load_topic_specs()["control.pauses"].partitions
    scheme = Settings().input_partitioner
    assert (partition_for(b"bot:b2", partitions, scheme)
            != partition_for(b"market:m4", partitions, scheme))
    worker = stack.start_worker(evaluation_interval_s=0.1, api_command_wait_s=5.0,
                                api_tokens=TOKENS, divergence_grace_s=GRACE_S)
    bot = ScriptedBot(stack, [("b1", "m1"), ("b2", "m4"), ("b3", "m3")])
    bot.start()
    try:
        time.sleep(1.0)  # trading before any pause: nothing to say
        for scope in ("market:m1", "bot:b2"):
            assert command(worker, "pause", scope, "runaway orders")["outcome"]["decision"] \
                == "paused"
        m1 = wait_until(lambda: pause_of(stack, "market:m1"), 10, what="market:m1's pause")
        b2 = wait_until(lambda: pause_of(stack, "bot:b2"), 10, what="bot:b2's pause")
        assert m1.paused and b2.paused
        paused_since = {"market:m1": m1.since_ms, "bot:b2": b2.since_ms}

        def both() -> list[ReportEnvelope] | None:
            found = divergence_alerts(stack)
            return found if {a.scope for a in found} >= set(paused_since) else None

        wait_until(both, 30, what="a divergence alert for market:m1 and bot:b2")
        time.sleep(1.5)  # the bot keeps filling: the episodes fire no more
        fired = divergence_alerts(stack)
    finally:
        sent = bot.stop()

    assert sorted(a.scope for a in fired) == ["bot:b2", "market:m1"], fired
    for alert, (bot_id, market, state) in (
            (next(a for a in fired if a.scope == "market:m1"), ("b1", "m1", m1)),
            (next(a for a in fired if a.scope == "bot:b2"), ("b2", "m4", b2))):
        payload = alert.payload
        assert payload.status is AlertStatus.FIRING and alert.severity.value == "CRITICAL"
        # the fills of a market are handled in their partition's order, so every fill of
        # the grace was judged before the one that fired: the first one past the grace
        trades = [f for f in sent if (f.bot, f.market) == (bot_id, market)]
        first_late = next(f for f in trades if f.event_time_ms - state.since_ms > GRACE_S * 1000)
        assert any(0 <= f.event_time_ms - state.since_ms <= GRACE_S * 1000 for f in trades)
        assert alert.event_time_ms == first_late.event_time_ms
        for part in (f"bot {bot_id} traded on market {market}", f"order {first_late.order_id}",
                     f"while {state.scope} is paused: GOV_OPERATOR_PAUSE by operator:alice",
                     f"pause state {state.state_id}", "runner unknown"):
            assert part in payload.message, (part, payload.message)
        assert payload.threshold == GRACE_S and payload.value > GRACE_S
        # how long after the divergent fill happened the alert was published
        detection_s = (alert.observed_time_ms - first_late.event_time_ms) / 1000
        print(f"{alert.scope}: RISK_STATE_DIVERGENCE {detection_s:.3f}s after the first fill "
              f"past the {GRACE_S:g}s grace")

    def incident() -> dict[str, Any] | None:
        status, body, _ = call(worker, "GET", "/api/incidents?scope=market:m1")
        assert status == 200, body
        return next((i for i in body["incidents"] if i["reason_code"] == CODE), None)

    opened = wait_until(incident, 15, what="the divergence incident")
    assert (opened["state"], opened["severity"], opened["scope"]) == (
        "OPEN", "CRITICAL", "market:m1")

    # Resuming ends the episode; trading after it is no divergence.
    command(worker, "resume", "market:m1", "bot fixed")
    resolved = wait_until(lambda: [a for a in divergence_alerts(stack)
                                   if a.payload.status is AlertStatus.RESOLVED], 15,
                          what="the market:m1 episode resolved")
    assert [a.scope for a in resolved] == ["market:m1"]
    assert "market:m1: resumed" in resolved[0].payload.message
    stack.send_records("exec.fills", [fill("b1", "m1") for _ in range(5)])
    time.sleep(1.5)
    assert len([a for a in divergence_alerts(stack) if a.scope == "market:m1"]) == 2
