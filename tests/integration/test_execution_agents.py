"""Execution agents on the real broker with a real worker: a slippage spike on one market
raises the breach for that market (and the bot that traded it) only, pauses them, and
the figures are the maths core's on the same fills; re-keyed fills land on the partition
their bot's own events use."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from streams.maths.execution import slippage_error
from streams.records import (
    AlertStatus,
    FillEvent,
    FillKind,
    HealthEvent,
    HealthEventKind,
    PauseState,
    ReportEnvelope,
)
from tests.conftest import CODECS, Stack, wait_until

pytestmark = pytest.mark.integration

BOUND_BPS = 10.0
MIN_FILLS = 20
SETTINGS = {
    "evaluation_interval_s": 0.1,
    # Day-long windows: every fill of the test is in both windows (see _clear_of_midnight).
    "exec_tumbling_window_s": 86_400, "exec_hopping_window_s": 86_400, "exec_hop_s": 3_600,
    "exec_min_fills": MIN_FILLS, "exec_slippage_rmse_bound_bps": BOUND_BPS,
    "exec_fill_ratio_min": 0.2,
}


def now_ms() -> int:
    return int(time.time() * 1000)


def _clear_of_midnight() -> None:
    """Windows are aligned on UTC days here: do not straddle one."""
    now = datetime.now(UTC)
    left = (now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            - now).total_seconds()
    if left < 60:
        time.sleep(left + 1)


def fill(market: str, bot: str, predicted: float, realized: float) -> FillEvent:
    return FillEvent(event_id=uuid.uuid4().hex, market=market, bot=bot, kind=FillKind.FILL,
                     order_id=uuid.uuid4().hex, event_time_ms=now_ms(), requested_size=10.0,
                     filled_size=8.0, predicted_slippage_bps=predicted,
                     realized_slippage_bps=realized)


def alerts(stack: Stack) -> list[ReportEnvelope]:
    return stack.read_records("monitor.alerts", idle_timeout_s=0.5)


def pauses(stack: Stack) -> list[PauseState]:
    return stack.read_records("control.pauses", idle_timeout_s=0.5)


def test_a_slippage_spike_on_one_market_breaches_that_market_only(stack: Stack) -> None:
    _clear_of_midnight()
    stack.create_topics()
    worker = stack.start_worker(**SETTINGS)
    rng = np.random.default_rng(7)

    def normal(market: str, bot: str, n: int) -> list[FillEvent]:
        return [fill(market, bot, p, p + e) for p, e in zip(rng.uniform(1, 5, n),
                                                          rng.normal(0, 0.5, n), strict=True)]

    m1 = normal("m1", "b1", 30)
    m2 = normal("m2", "b2", 30)
    stack.send_records("exec.fills", m1 + m2)
    spike = [fill("m1", "b1", p, p + 40 + e)
             for p, e in zip(rng.uniform(1, 5, 20), rng.normal(0, 2, 20), strict=True)]
    stack.send_records("exec.fills", spike + normal("m2", "b2", 20))

    breaches = wait_until(
        lambda: {a.scope: a for a in alerts(stack) if a.reason_code == "EXEC_SLIPPAGE_BREACH"}
        .keys() >= {"market:m1", "bot:b1"} and alerts(stack), 20,
        what="slippage breaches of market:m1 and bot:b1")
    time.sleep(1.0)  # anything else would have been published by now
    breaches = [a for a in alerts(stack) if a.reason_code.startswith("EXEC_")]
    assert sorted(a.scope for a in breaches) == ["bot:b1", "market:m1"], breaches

    # Live, a scope is evaluated after each batch of its fills, so the alert carries the
    # figures over the fills handled by then: at least up to the first fill that took the
    # RMSE over the bound. They are the maths core's on exactly those fills, in the order
    # the partition delivered them.
    sequence = m1 + spike
    first_breach = next(
        count for count in range(MIN_FILLS, len(sequence) + 1)
        if slippage_error([f.predicted_slippage_bps for f in sequence[:count]],
                          [f.realized_slippage_bps for f in sequence[:count]]).rmse_bps
        > BOUND_BPS)
    for alert in breaches:
        payload = alert.payload
        assert payload.status is AlertStatus.FIRING
        assert payload.metric == "slippage_rmse_bps" and payload.threshold == BOUND_BPS
        counted = int(re.search(r"over (\d+) fills", payload.message).group(1))
        assert first_breach <= counted <= len(sequence)
        expected = slippage_error([f.predicted_slippage_bps for f in sequence[:counted]],
                                  [f.realized_slippage_bps for f in sequence[:counted]])
        assert payload.value == pytest.approx(expected.rmse_bps, rel=1e-9)
        mean = float(re.search(r"mean ([+-][\d.]+) bps", payload.message).group(1))
        assert mean == pytest.approx(expected.mean_error_bps, abs=1e-4)
        assert alert.severity.value == "CRITICAL"

    paused = wait_until(lambda: {p.scope: p for p in pauses(stack) if p.paused}.keys()
                        >= {"market:m1", "bot:b1"} and pauses(stack), 10,
                        what="market:m1 and bot:b1 paused")
    assert {p.scope for p in paused} == {"market:m1", "bot:b1"}
    assert all(p.reason_code == "EXEC_SLIPPAGE_BREACH" and p.policy.value == "LATCH"
               for p in paused)
    assert worker.exit_code is None


def test_fills_rekeyed_by_bot_land_on_the_partition_of_the_bots_own_events(
        stack: Stack) -> None:
    stack.create_topics()
    stack.start_worker(**SETTINGS)
    bots = [f"bot{i}" for i in range(12)]
    stack.send_records("exec.fills", [fill(f"m{i % 3}", bot, 1.0, 1.0)
                                      for i, bot in enumerate(bots)])
    stack.send_records("health.events", [
        HealthEvent(event_id=uuid.uuid4().hex, scope=f"bot:{bot}", kind=HealthEventKind.HEARTBEAT,
                    source="test", event_time_ms=now_ms(), heartbeat_interval_ms=60_000)
        for bot in bots])
    heartbeat_partition = {
        CODECS["HealthEvent"].decode_record(m.value).scope: m.partition
        for m in stack.read("health.events", idle_timeout_s=0.5)}
    rekeyed = wait_until(
        lambda: len(got := stack.read("polymon-exec.fills-by-scope-repartition",
                                      idle_timeout_s=0.5)) >= len(bots) and got, 20,
        what="every fill re-keyed by bot")
    by_bot = {m.key.decode(): m.partition for m in rekeyed}
    assert by_bot == heartbeat_partition
    assert len(set(by_bot.values())) > 1, "the bots spread over partitions"
