"""Health agents on the real broker with real workers: stale books, missed heartbeats,
sequence gaps and SLO burn become alerts and exactly-scoped pauses, in time."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from streams.records import (
    AlertPayload,
    AlertStatus,
    AuditPayload,
    DeadLetterStage,
    HealthEvent,
    HealthEventKind,
    OpsAction,
    OpsCommand,
    PauseState,
    ReportEnvelope,
)
from streams.worker_process import http_json
from tests.conftest import Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.compiled_twin]

FAST = {"evaluation_interval_s": 0.1, "stale_hold_down_s": 1.0}


def now_ms() -> int:
    return int(time.time() * 1000)


def book(scope: str, sequence: int, at_ms: int | None = None) -> HealthEvent:
    return HealthEvent(event_id=uuid.uuid4().hex, scope=scope, kind=HealthEventKind.DATA_UPDATE,
                       source="test-feed", event_time_ms=at_ms or now_ms(), feed="book",
                       sequence=sequence)


def heartbeat(scope: str, interval_ms: int) -> HealthEvent:
    return HealthEvent(event_id=uuid.uuid4().hex, scope=scope, kind=HealthEventKind.HEARTBEAT,
                       source="test-bot", event_time_ms=now_ms(),
                       heartbeat_interval_ms=interval_ms)


def probe(scope: str, slo: str, healthy: bool) -> HealthEvent:
    return HealthEvent(event_id=uuid.uuid4().hex, scope=scope, kind=HealthEventKind.SLO_PROBE,
                       source="prober", event_time_ms=now_ms(), slo=slo, owner="ingestion",
                       healthy=healthy)


class Feeder:
    """Sends one event per live scope every ``period_s`` from a background thread; the
    test stops and restarts scopes, and reads when each scope last sent."""

    def __init__(self, stack: Stack, make: Callable[[str, int], HealthEvent],
                 period_s: float = 0.1) -> None:
        self.stack, self.make, self.period_s = stack, make, period_s
        self.live: set[str] = set()  # the test changes it; only swap whole sets (atomic)
        self.last_sent_ms: dict[str, int] = {}
        self.sequence: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            events = []
            for scope in sorted(self.live):
                self.sequence[scope] = self.sequence.get(scope, 0) + 1
                event = self.make(scope, self.sequence[scope])
                events.append(event)
            if events:
                self.stack.send_records("health.events", events)
                for event in events:
                    self.last_sent_ms[event.scope] = event.event_time_ms
            self._stop.wait(self.period_s)


def pauses_by_scope(stack: Stack) -> dict[str, list[tuple[int, PauseState]]]:
    """Every pause record with its Kafka timestamp, per scope, in order."""
    from tests.conftest import CODECS

    found: dict[str, list[tuple[int, PauseState]]] = {}
    for message in stack.read("control.pauses", idle_timeout_s=0.5):
        record = CODECS["PauseState"].decode_record(message.value)
        found.setdefault(record.scope, []).append((message.timestamp_ms, record))
    return found


def alerts(stack: Stack) -> list[ReportEnvelope]:
    return stack.read_records("monitor.alerts", idle_timeout_s=0.5)


def test_a_stopped_book_pauses_its_market_in_time_and_fresh_data_clears_it(
        stack: Stack) -> None:
    stack.create_topics()
    stack.start_worker(**FAST)
    with Feeder(stack, lambda scope, seq: book(scope, seq)) as feeder:
        feeder.live = {"market:m1", "market:m2", "market:m3"}
        time.sleep(1.5)
        feeder.live = {"market:m2", "market:m3"}
        time.sleep(0.3)  # let the last m1 send land in last_sent_ms
        last_m1 = feeder.last_sent_ms["market:m1"]

        paused = wait_until(
            lambda: [(ts, p) for ts, p in pauses_by_scope(stack).get("market:m1", [])
                     if p.paused],
            10, what="a pause of market:m1")
        published_ms, pause = paused[0]
        assert pause.reason_code == "RISK_STALE_BOOK"
        assert pause.policy.value == "AUTO_CLEAR"
        delay_ms = published_ms - last_m1
        assert 2000 < delay_ms < 3000, f"pause published {delay_ms} ms after the last update"
        assert 2000 < pause.since_ms - last_m1 < 3000

        firing = [a for a in alerts(stack) if a.scope == "market:m1"
                  and a.reason_code == "RISK_STALE_BOOK"]
        assert len(firing) == 1 and isinstance(firing[0].payload, AlertPayload)
        assert firing[0].payload.status is AlertStatus.FIRING
        assert firing[0].payload.threshold == 2.0 and firing[0].payload.value > 2.0
        assert pause.cause_id == firing[0].envelope_id
        assert set(pauses_by_scope(stack)) == {"market:m1"}, "other markets stay unpaused"

        resumed_at = now_ms()
        feeder.live = {"market:m1", "market:m2", "market:m3"}
        history = wait_until(
            lambda: (h := pauses_by_scope(stack)["market:m1"]) and len(h) >= 2 and h,
            10, what="market:m1 resumed after the hold-down")
        # Assert while the feeds still run: once the feeder stops, everything goes stale.
        cleared_ms, cleared = history[1]
        assert not cleared.paused
        assert cleared_ms - resumed_at >= 1000, "cleared only after the 1 s hold-down"
        statuses = [a.payload.status for a in alerts(stack)
                    if a.scope == "market:m1" and a.reason_code == "RISK_STALE_BOOK"]
        assert statuses == [AlertStatus.FIRING, AlertStatus.RESOLVED]
        assert len({a.dedup_key for a in alerts(stack) if a.scope == "market:m1"}) == 1
        audit = stack.read_records("audit.log", idle_timeout_s=0.5)
        decisions = [(e.scope, e.payload.decision) for e in audit
                     if isinstance(e.payload, AuditPayload) and e.payload.action != "incident"]
        assert decisions == [("market:m1", "firing"), ("market:m1", "paused"),
                             ("market:m1", "resolved"), ("market:m1", "resumed")]


def test_a_bot_that_stops_heartbeating_is_paused(stack: Stack) -> None:
    stack.create_topics()
    stack.start_worker(**FAST)
    # 1 s interval x factor 3: wide enough that a busy machine's scheduling delays in
    # the feeder thread do not look like missed heartbeats.
    with Feeder(stack, lambda scope, _: heartbeat(scope, 1000)) as feeder:
        feeder.live = {"bot:b1", "bot:b2"}
        time.sleep(1.0)
        feeder.live = {"bot:b2"}
        time.sleep(0.2)
        last_beat = feeder.last_sent_ms["bot:b1"]
        paused = wait_until(lambda: pauses_by_scope(stack).get("bot:b1"), 10,
                            what="bot:b1 paused")
    published_ms, pause = paused[0]
    assert pause.paused and pause.reason_code == "GOV_HEARTBEAT_MISSED"
    assert 3000 < published_ms - last_beat < 4000  # interval 1 s x factor 3, + 1 s bound
    assert "bot:b2" not in pauses_by_scope(stack)


def test_an_expected_feed_that_never_reports_goes_stale(stack: Stack) -> None:
    """market:m9's book and bot:b9's heartbeats must report (setting expected_feeds) and
    never do: once the worker holds their partitions, the threshold (plus the catch-up
    grace) runs out and they are stale like any other feed."""
    stack.create_topics()
    started = now_ms()
    stack.start_worker(**FAST, catch_up_grace_s=1.0, heartbeat_default_interval_s=1.0,
                       staleness_thresholds_s={"book": 2.0, "default": 10.0},
                       expected_feeds={"market:m9": ["book"], "bot:b9": ["heartbeat"]})
    found = wait_until(lambda: {a.scope: a for a in stack.read_records(
        "monitor.alerts", idle_timeout_s=0.5)}.keys() >= {"market:m9", "bot:b9"}
        and stack.read_records("monitor.alerts", idle_timeout_s=0.5), 30,
        what="market:m9's book and bot:b9's heartbeat stale")
    by_scope = {a.scope: a for a in found}
    assert by_scope["market:m9"].reason_code == "RISK_STALE_BOOK"
    assert by_scope["bot:b9"].reason_code == "GOV_HEARTBEAT_MISSED"
    assert by_scope["market:m9"].observed_time_ms - started >= 2000, "after its threshold"
    assert pauses_by_scope(stack).keys() >= {"market:m9", "bot:b9"}


def test_a_sequence_gap_raises_one_gap_alert_with_the_missing_count(stack: Stack) -> None:
    stack.create_topics()
    # the book is not fed after these events: staleness out of reach, so that a slow read
    # of the topics below cannot see the (correct) stale-book pause that would follow
    worker = stack.start_worker(**FAST, staleness_thresholds_s={
        "book": 3600, "registry": 3600, "model": 3600, "default": 3600})
    events = [book("market:gap", seq) for seq in [*range(1, 11), *range(15, 21)]]
    events += [book("market:gap", 12), book("market:gap", 15)]  # a late one, a duplicate
    stack.send_records("health.events", events)
    stack.send_records("health.events", events[10:11])  # re-delivery of the gap's cause
    wait_until(lambda: worker.get("/api/scopes")["scopes"].get("market:gap", {})
               .get("events") == len(events) + 1, 20, what="all events processed")
    gaps = [a for a in alerts(stack) if a.reason_code == "GOV_DATA_GAP"]
    assert len(gaps) == 1
    assert gaps[0].scope == "market:gap" and gaps[0].payload.value == 4.0
    assert "between 10 and 15" in gaps[0].payload.message
    assert "market:gap" not in pauses_by_scope(stack), "a gap alerts, it does not pause"


def test_slo_burn_pauses_its_scope_until_an_operator_resumes(stack: Stack) -> None:
    stack.create_topics()
    stack.start_worker(
        **FAST, slo_default_target=0.9, slo_bucket_s=1, slo_min_events=5,
        slo_burn_rules=[{"name": "fast", "long_window_s": 10, "short_window_s": 2,
                         "burn_rate_threshold": 2.0, "severity": "page"}],
    )
    scope, slo = "feed:ingest", "ingest-latency"
    stack.send_records("health.events", [probe(scope, slo, True) for _ in range(20)])
    time.sleep(0.5)
    assert scope not in pauses_by_scope(stack), "a healthy SLO does not pause"
    stack.send_records("health.events", [probe(scope, slo, i % 2 == 0) for i in range(20)])
    paused = wait_until(lambda: pauses_by_scope(stack).get(scope), 10, what="SLO burn pause")
    assert paused[0][1].paused and paused[0][1].reason_code == "GOV_SLO_BURN"
    assert paused[0][1].policy.value == "LATCH"
    burn = [a for a in alerts(stack) if a.reason_code == "GOV_SLO_BURN"]
    assert burn[0].payload.status is AlertStatus.FIRING and "owner ingestion" in \
        burn[0].payload.message

    # Healthy again: the alert resolves, the latched pause stays.
    for _ in range(4):
        stack.send_records("health.events", [probe(scope, slo, True) for _ in range(30)])
        time.sleep(1.0)
    wait_until(lambda: any(a.payload.status is AlertStatus.RESOLVED for a in alerts(stack)
                           if a.reason_code == "GOV_SLO_BURN"), 15, what="burn resolved")
    time.sleep(1.5)  # longer than the hold-down: a latch must not auto-clear
    assert [p.paused for _, p in pauses_by_scope(stack)[scope]] == [True]

    command = OpsCommand(command_id="cmd-1", scope=scope, action=OpsAction.RESUME,
                         actor="alice", reason="probe fixed", issued_time_ms=now_ms())
    stack.send_records("ops.commands", [command, command])  # idempotent by command id
    history = wait_until(lambda: (h := pauses_by_scope(stack)[scope]) and len(h) >= 2 and h,
                         10, what="operator resume")
    time.sleep(0.5)
    history = pauses_by_scope(stack)[scope]
    assert [p.paused for _, p in history] == [True, False]
    assert history[1][1].actor == "operator:alice"


def test_events_outside_the_accepted_skew_are_dead_lettered(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(**FAST)
    future = book("market:x", 1, at_ms=now_ms() + 3_600_000)
    ancient = book("market:x", 2, at_ms=now_ms() - 30 * 86_400_000)
    fine = book("market:x", 3)
    stack.send_records("health.events", [future, ancient, fine])
    letters = wait_until(lambda: len(got := stack.read_records(
        "monitor.deadletter", idle_timeout_s=0.5)) >= 2 and got, 20, what="two dead letters")
    assert {letter.stage for letter in letters} == {DeadLetterStage.VALIDATE}
    errors = sorted(letter.error for letter in letters)
    assert "in the future" in errors[1] and "old" in errors[0]
    wait_until(lambda: worker.get("/api/scopes")["scopes"].get("market:x", {}).get("events")
               == 1, 10, what="the valid event processed")


def test_two_workers_split_the_scopes_and_each_pause_appears_once(stack: Stack) -> None:
    stack.create_topics()
    first = stack.start_worker("worker-a", **FAST)
    second = stack.start_worker("worker-b", **FAST)
    def balanced() -> bool:  # both ready (a rebalance answers 503 for a while), and split
        (a_status, a), (b_status, b) = http_json(f"{first.url}/healthz"), http_json(
            f"{second.url}/healthz")
        return (a_status == b_status == 200 and a["assigned_partitions"]
                < 2 * b["assigned_partitions"] + 10)

    wait_until(balanced, 30, what="both workers ready")
    markets = [f"market:two{i}" for i in range(8)]
    with Feeder(stack, lambda scope, seq: book(scope, seq)) as feeder:
        feeder.live = set(markets)
        time.sleep(1.0)
        feeder.live = set()
        found = wait_until(lambda: (p := pauses_by_scope(stack)) and len(p) == len(markets)
                           and p, 15, what="every market paused")
    time.sleep(0.5)
    found = pauses_by_scope(stack)
    assert set(found) == set(markets)
    assert all(len(history) == 1 for history in found.values()), "one pause per market"
    owners = {first.get("/api/scopes")["worker_id"]: first.get("/api/scopes")["scopes"],
              second.get("/api/scopes")["worker_id"]: second.get("/api/scopes")["scopes"]}
    assert all(owners.values()), "both workers own some of the markets"
