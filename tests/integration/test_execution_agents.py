"""Execution agents on the real broker with a real worker: a slippage spike on one market
raises the breach for that market (and the bot that traded it) only, pauses them, and
the figures are the maths core's on the same fills; re-keyed fills land on the partition
their bot's own events use; a model's fills reach its cohorts' figures and its canary."""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from streams.envelope import derive_id
from streams.maths.execution import slippage_error
from streams.records import (
    AlertStatus,
    Cohort,
    FillEvent,
    FillKind,
    HealthEvent,
    HealthEventKind,
    PauseState,
    ReportEnvelope,
)
from tests.conftest import CODECS, Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.compiled_twin]

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


CANARY_WINDOW_MS = 60_000


def completed_canary_window_time() -> int:
    """An event time in the last completed canary window, with at least 30 s left before
    the next one completes (the verdict of a window stands until then)."""
    now = now_ms()
    if CANARY_WINDOW_MS - now % CANARY_WINDOW_MS < 30_000:
        time.sleep((CANARY_WINDOW_MS - now % CANARY_WINDOW_MS) / 1000 + 0.1)
        now = now_ms()
    return now - now % CANARY_WINDOW_MS - CANARY_WINDOW_MS + 500


def fill(market: str, bot: str, predicted: float, realized: float) -> FillEvent:
    return FillEvent(event_id=uuid.uuid4().hex, market=market, bot=bot, kind=FillKind.FILL,
                     order_id=uuid.uuid4().hex, event_time_ms=now_ms(), requested_size=10.0,
                     filled_size=8.0, predicted_slippage_bps=predicted,
                     realized_slippage_bps=realized)


def alerts(stack: Stack) -> list[ReportEnvelope]:
    return stack.read_records("monitor.alerts", idle_timeout_s=0.5)


def pauses(stack: Stack) -> list[PauseState]:
    return stack.read_records("control.pauses", idle_timeout_s=0.5)


@pytest.mark.parametrize("clock", ["wall", "event"])
def test_a_slippage_spike_on_one_market_breaches_that_market_only(stack: Stack,
                                                                  clock: str) -> None:
    """Under either clock (the event-time clock of a replay sends each fill on alone)."""
    _clear_of_midnight()
    stack.create_topics()
    worker = stack.start_worker(**SETTINGS, clock=clock)
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


def test_a_bot_trading_a_breached_and_a_healthy_market_fires_once(stack: Stack) -> None:
    """The flap of a bot whose fills mix a spiked market and a healthy one: short windows
    that roll over while the spike lasts, fills every 100 ms. The completed tumbling
    window, unknown windows keeping state, the resolve threshold and keep_firing_for
    make it one FIRING and one RESOLVED, with the same alert id, for the bot and for the
    market alike."""
    stack.create_topics()
    stack.start_worker(
        evaluation_interval_s=0.1, exec_evaluation_interval_s=0.5, exec_tumbling_window_s=2,
        exec_hopping_window_s=4, exec_hop_s=1, exec_min_fills=8,
        exec_slippage_rmse_bound_bps=BOUND_BPS, exec_fill_ratio_min=0.2,
        exec_pause_scope_kinds=[],  # alerts only: the pause latch is not what is tested
        alert_rules={"default": {}, "EXEC_SLIPPAGE_BREACH": {
            "keep_firing_for_s": 1.5, "resolve_ratio": 0.8}})
    rng = np.random.default_rng(3)
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < 16:
        spike = 3 <= elapsed < 8
        batch = []
        for market, spiked in (("m1", spike), ("m2", False)):
            predicted = float(rng.uniform(2, 6))
            batch.append(fill(market, "b1", predicted,
                              predicted + float(rng.normal(0, 0.5)) + (25.0 if spiked else 0.0)))
        stack.send_records("exec.fills", batch)
        time.sleep(max(0.0, started + (int(elapsed * 10) + 1) / 10 - time.monotonic()))

    def episodes() -> dict[str, list[tuple[str, str]]]:
        found: dict[str, list[tuple[str, str]]] = {}
        for alert in alerts(stack):
            if alert.reason_code == "EXEC_SLIPPAGE_BREACH":
                found.setdefault(alert.scope, []).append(
                    (alert.payload.status.value, alert.envelope_id))
        done = all(len(found.get(s, ())) >= 2 for s in ("bot:b1", "market:m1"))
        return done and found

    found = wait_until(episodes, 20, what="bot:b1 and market:m1 fired and resolved")
    time.sleep(2.0)  # a flap would have been published by now
    found = episodes()
    assert set(found) == {"bot:b1", "market:m1"}, found
    for scope, transitions in found.items():
        assert [status for status, _ in transitions] == ["FIRING", "RESOLVED"], (scope, found)
        # the resolve's id derives from the alert it ends
        assert transitions[1][1] == derive_id("alert", transitions[0][1], "resolved")


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


def test_a_models_fills_reach_its_cohort_figures_and_its_canary_samples(stack: Stack) -> None:
    """Fills of one model from many markets (so from every partition, re-keyed in digests
    to the model's): per cohort, the execution figures of exactly those fills, and one
    canary sample per FILL of each leading metric, with the maths core's values."""
    _clear_of_midnight()
    stack.create_topics()
    worker = stack.start_worker(**SETTINGS, canary_evaluation_interval_s=0.2,
                                canary_window_s=CANARY_WINDOW_MS // 1000,
                                canary_min_samples=5, canary_leading_metrics={
                                    "slippage_abs_error_bps": "lower_is_better",
                                    "fill_ratio": "higher_is_better"})
    rng = np.random.default_rng(11)
    at_ms = completed_canary_window_time()  # the canary decides a window once it completed
    fills = {cohort: [FillEvent(
        event_id=uuid.uuid4().hex, market=f"m{i % 9}", bot="b1", kind=FillKind.FILL,
        order_id=uuid.uuid4().hex, event_time_ms=at_ms, requested_size=10.0,
        filled_size=float(rng.uniform(2, 10)), predicted_slippage_bps=float(p),
        realized_slippage_bps=float(p + rng.normal(0, 2)), cohort=cohort, model="pricer",
        model_version="v1" if cohort is Cohort.BASELINE else "v2")
        for i, p in enumerate(rng.uniform(1, 5, n))]
        for cohort, n in ((Cohort.BASELINE, 40), (Cohort.CANARY, 25))}
    intents = [FillEvent(event_id=uuid.uuid4().hex, market="m1", bot="b1", kind=FillKind.INTENT,
                         order_id=uuid.uuid4().hex, event_time_ms=at_ms, requested_size=5.0,
                         filled_size=0.0, model="pricer", model_version="v2",
                         cohort=Cohort.CANARY) for _ in range(3)]
    stack.send_records("exec.fills", fills[Cohort.BASELINE] + fills[Cohort.CANARY] + intents)

    def get(path: str) -> dict:
        with urllib.request.urlopen(f"{worker.url}{path}", timeout=15) as response:
            return json.loads(response.read())

    def cohorts() -> dict:
        rows = get("/api/execution?scope=model:pricer")["scopes"]
        done = {key: row for key, row in rows.items()
                if row["windows"] and row["windows"]["hopping"]["fills"]
                + row["windows"]["hopping"]["intents"]
                == len(fills[Cohort(row["cohort"])]) + 3 * (row["cohort"] == "CANARY")}
        return len(done) == 2 and done

    rows = wait_until(cohorts, 30, what="both cohorts' figures over all their fills")
    for cohort, sent in fills.items():
        # the hopping window in progress (the judged tumbling one is yesterday's)
        window = rows[f"model:pricer#{cohort.value}"]["windows"]["hopping"]
        expected = slippage_error([f.predicted_slippage_bps for f in sent],
                                  [f.realized_slippage_bps for f in sent])
        assert window["fills"] == len(sent)
        assert window["intents"] == (3 if cohort is Cohort.CANARY else 0)
        assert window["slippage_rmse_bps"] == pytest.approx(expected.rmse_bps, rel=1e-9)
        assert window["slippage_mean_error_bps"] == pytest.approx(expected.mean_error_bps,
                                                                  rel=1e-9)
        assert window["fill_ratio"] == pytest.approx(
            sum(f.filled_size for f in sent) / sum(f.requested_size for f in sent), rel=1e-9)

    def canary() -> dict:
        found = get("/api/drift?scope=model:pricer")
        metrics = (found["models"].get("model:pricer") or {}).get("canary") or {}
        slippage = (metrics.get("metrics") or {}).get("slippage_abs_error_bps") or {}
        return slippage.get("n_canary") == 25 and slippage.get("n_baseline") == 40 and metrics

    evaluation = wait_until(canary, 30, what="the canary comparing all 25 against all 40")
    assert evaluation["canary_version"] == "v2"
    for metric, value_of in (
            ("slippage_abs_error_bps",
             lambda f: abs(f.realized_slippage_bps - f.predicted_slippage_bps)),
            ("fill_ratio", lambda f: f.filled_size / f.requested_size)):
        figures = evaluation["metrics"][metric]
        assert (figures["n_canary"], figures["n_baseline"]) == (25, 40), metric
        assert figures["mean_canary"] == pytest.approx(
            np.mean([value_of(f) for f in fills[Cohort.CANARY]]), rel=1e-9)
        assert figures["mean_baseline"] == pytest.approx(
            np.mean([value_of(f) for f in fills[Cohort.BASELINE]]), rel=1e-9)
    assert worker.exit_code is None
