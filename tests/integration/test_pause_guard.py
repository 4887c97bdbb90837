"""PauseGuard on the real broker with real workers: it obeys the pause hierarchy that
operator commands create, and fails closed (then recovers) when polymon's heartbeat
stops and when the broker goes away."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions

from streams.processes import free_port
from streams.records import MonitorHeartbeat, OpsAction, OpsCommand, PausePolicy, PauseState
from streams.runner import Decision, GuardState, GuardStatus, PauseGuard
from tests.conftest import CODECS, SPECS, Stack, start_test_broker, wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "trading_runner.py"

pytestmark = pytest.mark.integration

BEAT = {"monitor_heartbeat_interval_s": 0.2}
MAX_AGE_S = 1.5


def command(scope: str, action: OpsAction) -> OpsCommand:
    return OpsCommand(command_id=uuid.uuid4().hex, scope=scope, action=action, actor="alice",
                      reason="pause guard test", issued_time_ms=int(time.time() * 1000))


class Recorder:
    """Collects the guard's callbacks (appends are atomic; the test only reads)."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, PauseState | None]] = []
        self.health: list[GuardStatus] = []

    def on_change(self, scope: str, state: PauseState | None) -> None:
        self.changes.append((scope, state))

    def on_health(self, status: GuardStatus) -> None:
        self.health.append(status)

    def states(self) -> list[GuardState]:
        return [status.state for status in self.health]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def decision_when(guard: PauseGuard, scope: str, predicate: Callable[[Decision], bool],
                  timeout_s: float, what: str) -> Decision:
    """Poll ``guard.allowed(scope)`` until ``predicate`` holds; that decision."""
    seen: list[Decision] = []

    def check() -> bool:
        seen[:] = [guard.allowed(scope)]
        return predicate(seen[0])

    wait_until(check, timeout_s, interval_s=0.05, what=f"{what} (last: {seen})")
    return seen[0]


def guard_for(stack: Stack, recorder: Recorder) -> PauseGuard:
    return PauseGuard(stack.bootstrap, topic_prefix=stack.prefix, heartbeat_max_age_s=MAX_AGE_S,
                      on_change=recorder.on_change, on_health=recorder.on_health)


@pytest.fixture
def paused_stack(stack: Stack) -> Iterator[Stack]:
    """Topics, a worker beating every 0.2 s, and market:m7 and bot:b1 paused."""
    stack.create_topics()
    stack.start_worker(**BEAT)
    stack.send_records("ops.commands", [command("market:m7", OpsAction.PAUSE),
                                        command("bot:b1", OpsAction.PAUSE)])
    wait_until(lambda: len(stack.read("control.pauses", idle_timeout_s=0.3)) >= 2, 15,
               what="both pauses published")
    yield stack


def test_the_guard_denies_paused_scopes_and_their_children_and_allows_the_rest(
        paused_stack: Stack, recorder: Recorder) -> None:
    with guard_for(paused_stack, recorder) as guard:
        assert guard.wait_ready(timeout=15), guard.status()
        # Read from the compacted topic, in place before the guard started.
        market = guard.allowed("market:m7")
        assert not market and market.covering_scope == "market:m7"
        assert market.reason.startswith("paused: market:m7 (GOV_OPERATOR_PAUSE since ")
        under_market = guard.allowed("bot:b1/market:m7")
        assert not under_market and under_market.covering_scope == "bot:b1"
        under_bot = guard.allowed("bot:b1/market:m9")
        assert not under_bot and under_bot.reason.startswith("paused by parent bot:b1 (")
        assert guard.allowed("market:m8")
        assert guard.allowed("bot:b2/market:m8")
        assert not guard.allowed("bot:b2/market:m7"), "market:m7 is paused under every bot"
        assert sorted(guard.paused_scopes()) == ["bot:b1", "market:m7"]
        assert {scope for scope, _ in recorder.changes} == {"bot:b1", "market:m7"}
        assert recorder.states()[-1] is GuardState.READY

        paused_stack.send_records("ops.commands", [command("market:m7", OpsAction.RESUME)])
        wait_until(lambda: guard.allowed("market:m7"), 10, what="market:m7 resumed")
        scope, state = recorder.changes[-1]
        assert scope == "market:m7" and state is not None and not state.paused
        assert state.actor == "operator:alice"
        assert guard.allowed("bot:b2/market:m7")
        assert not guard.allowed("bot:b1/market:m7"), "still paused by its bot"

        paused_stack.send_records("ops.commands", [command("global", OpsAction.PAUSE)])
        everything = decision_when(guard, "bot:b2/market:m8",
                                   lambda d: d.covering_scope == "global", 10, "global pause")
        assert everything.reason.startswith("paused by parent global (")
    assert guard.allowed("market:m8").reason == "guard stopped"
    assert recorder.states()[-1] is GuardState.STOPPED


def test_the_guard_fails_closed_when_polymon_stops_beating_and_recovers(
        paused_stack: Stack, recorder: Recorder) -> None:
    with guard_for(paused_stack, recorder) as guard:
        assert guard.wait_ready(timeout=15), guard.status()
        assert guard.allowed("market:m8")

        paused_stack.workers[0].stop()
        stopped = time.monotonic()
        denied = decision_when(guard, "market:m8", lambda d: not d, MAX_AGE_S + 3,
                               "a heartbeat denial")
        assert time.monotonic() - stopped < MAX_AGE_S + 1.0
        assert denied.reason.startswith("polymon heartbeat ")
        assert denied.reason.endswith("s old (limit 1.5s)")
        assert guard.status().state is GuardState.HEARTBEAT_STALE
        wait_until(lambda: recorder.states()[-1] is GuardState.HEARTBEAT_STALE, 1,
                   what="on_health told")

        paused_stack.start_worker("worker-2", **BEAT)
        wait_until(lambda: guard.allowed("market:m8"), 15, what="allowed once polymon beats")
        assert not guard.allowed("market:m7"), "pauses survive the outage"
        wait_until(lambda: recorder.states()[-1] is GuardState.READY, 1, what="on_health told")


def test_the_guard_fails_closed_when_the_broker_goes_away_and_recovers(
        tmp_path: Path, recorder: Recorder) -> None:
    own = start_test_broker(tmp_path / "broker")
    stack = Stack(own.bootstrap, "gone.", tmp_path / "state", own.engine)
    guard = guard_for(stack, recorder)
    try:
        stack.create_topics()
        stack.start_worker(**BEAT)
        stack.send_records("ops.commands", [command("market:m7", OpsAction.PAUSE)])
        guard.start()
        assert guard.wait_ready(timeout=15), guard.status()
        wait_until(lambda: not guard.allowed("market:m7"), 10, what="market:m7 paused")
        assert guard.allowed("market:m8")

        own.stop()
        stopped = time.monotonic()
        denied = decision_when(guard, "market:m8", lambda d: not d, MAX_AGE_S + 3,
                               "a denial without a broker")
        assert time.monotonic() - stopped < MAX_AGE_S + 1.0
        assert denied.reason.startswith(("broker unreachable: ", "polymon heartbeat "))
        wait_until(lambda: guard.status().state is GuardState.BROKER_UNREACHABLE, 5,
                   what="the lost connection reported")
        assert "broker unreachable: " in guard.allowed("market:m8").reason

        own.start()  # same port, same data
        # The worker reconnects by itself, or a fresh one takes over; either way the
        # guard recovers once heartbeats flow and it has caught up again.
        if stack.workers[0].exit_code is not None:
            stack.start_worker("worker-2", **BEAT)
        wait_until(lambda: guard.allowed("market:m8"), 25, what="allowed after the broker")
        assert not guard.allowed("market:m7"), "the pause survives the restart"
        assert GuardState.BROKER_UNREACHABLE in recorder.states()
        wait_until(lambda: recorder.states()[-1] is GuardState.READY, 1, what="on_health told")
    finally:
        guard.stop()
        stack.stop()
        own.stop()


def test_a_guard_without_a_broker_denies_with_the_reason() -> None:
    with PauseGuard(f"127.0.0.1:{free_port()}", heartbeat_max_age_s=MAX_AGE_S) as guard:
        assert not guard.wait_ready(timeout=0.5)
        denied = decision_when(guard, "market:m1",
                               lambda d: d.reason.startswith("broker unreachable: "), 10,
                               "broker unreachable")
        assert not denied and guard.status().state is GuardState.BROKER_UNREACHABLE


def test_the_example_runner_sends_allowed_orders_and_holds_paused_ones(
        paused_stack: Stack) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--bootstrap", paused_stack.bootstrap,
         "--prefix", paused_stack.prefix, "--scope", "bot:b1/market:m9",
         "--scope", "bot:b2/market:m8", "--orders", "2", "--interval", "0.05",
         "--max-age", str(MAX_AGE_S), "--ready-timeout", "15"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "[guard] ready: ready" in lines, lines
    assert "[pauses] bot:b1: PAUSED (GOV_OPERATOR_PAUSE)" in lines
    assert any(line.startswith("order 1 bot:b1/market:m9: HELD, paused by parent bot:b1 (")
               for line in lines), lines
    assert "order 2 bot:b2/market:m8: SENT" in lines


def test_tombstones_delete_and_undecodable_records_are_counted_and_fail_their_scope_closed(
        stack: Stack, recorder: Recorder) -> None:
    # No worker: this test writes polymon's outputs itself.
    stack.create_topics()
    now = int(time.time() * 1000)
    stack.send_records("monitor.heartbeat", [MonitorHeartbeat(
        worker_id="fake", time_ms=now, started_ms=now, version="test")])
    stack.send_raw("monitor.heartbeat", [(b"junk", b"not avro")])
    stack.send_records("control.pauses", [PauseState(
        scope="market:m6", paused=True, reason_code="RISK_STALE_BOOK", since_ms=now,
        policy=PausePolicy.AUTO_CLEAR, actor="test", updated_ms=now, state_id="s1")])
    stack.send_raw("control.pauses", [(b"market:m5", b"\x00garbage")])
    with PauseGuard(stack.bootstrap, topic_prefix=stack.prefix, heartbeat_max_age_s=30,
                    on_change=recorder.on_change) as guard:
        assert guard.wait_ready(timeout=15), guard.status()
        assert guard.status().undecodable == 2
        unreadable = guard.allowed("bot:b1/market:m5")
        assert not unreadable and unreadable.covering_scope == "market:m5"
        assert unreadable.reason.startswith("pause state of market:m5 undecodable: ")
        assert not guard.allowed("market:m6") and guard.allowed("market:m7")

        stack.send_raw("control.pauses", [(b"market:m5", None), (b"market:m6", None)])
        wait_until(lambda: guard.allowed("market:m5") and guard.allowed("market:m6"), 10,
                   what="tombstones applied")
        assert recorder.changes[-1] == ("market:m6", None)
        assert guard.paused_scopes() == {}


def test_misplaced_records_are_ignored_the_newest_state_wins_and_added_partitions_are_read(
        stack: Stack, recorder: Recorder) -> None:
    # No worker: this test writes polymon's outputs itself.
    stack.create_topics()
    now = int(time.time() * 1000)

    def state(scope: str, paused: bool, updated_ms: int, state_id: str) -> PauseState:
        return PauseState(scope=scope, paused=paused, reason_code="GOV_OPERATOR_PAUSE",
                          since_ms=now, policy=PausePolicy.MANUAL, actor="operator:alice",
                          updated_ms=updated_ms, state_id=state_id)

    stack.send_records("monitor.heartbeat", [MonitorHeartbeat(
        worker_id="fake", time_ms=now, started_ms=now, version="test")])
    # the newer resume lands first, the older pause after it
    stack.send_records("control.pauses", [state("market:m1", False, now + 10, "b"),
                                          state("market:m1", True, now, "a")])
    # a pause of global filed under another scope's key
    stack.send_raw("control.pauses", [(b"market:m2", CODECS["PauseState"].encode_record(
        state("global", True, now, "forged")))])
    topic = stack.topic("control.pauses")
    with PauseGuard(stack.bootstrap, topic_prefix=stack.prefix, heartbeat_max_age_s=30,
                    on_change=recorder.on_change) as guard:
        assert guard.wait_ready(timeout=15), guard.status()
        assert guard.allowed("market:m1"), "the newest state (resumed) wins"
        assert guard.allowed("bot:b1/market:m2"), "the misplaced global pause is ignored"
        assert guard.status().misplaced == 1
        assert all(scope == "market:m1" for scope, _ in recorder.changes)

        count = SPECS["control.pauses"].partitions
        admin = AdminClient({"bootstrap.servers": stack.bootstrap})
        admin.create_partitions([NewPartitions(topic, count + 1)])[topic].result(15)
        producer = Producer({"bootstrap.servers": stack.bootstrap})
        wait_until(lambda: len(producer.list_topics(topic, timeout=5).topics[topic].partitions)
                   > count, 15, what="the producer knows the added partition")
        delivered: list[object] = []
        producer.produce(topic, key=b"market:m9", partition=count,
                         value=CODECS["PauseState"].encode_record(
                             state("market:m9", True, now, "on-the-new-partition")),
                         on_delivery=lambda error, _: delivered.append(error))
        assert producer.flush(15) == 0 and delivered == [None], delivered
        stack.send_records("monitor.heartbeat", [MonitorHeartbeat(  # polymon still beats
            worker_id="fake", time_ms=int(time.time() * 1000), started_ms=now,
            version="test")])
        # listed again within a third of the bound, read from the beginning
        denied = decision_when(guard, "market:m9", lambda d: d.covering_scope == "market:m9",
                               30, "the pause on the added partition obeyed")
        assert denied.reason.startswith("paused: market:m9 (")
        assert guard.status().ready
