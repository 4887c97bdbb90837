"""Faults only a real cluster can show, on three Apache Kafka KRaft nodes (replication
factor 3, min.insync.replicas 2) that the harness starts itself: partition leaders killed
mid-stream, a node restarted, a worker SIGKILLed while the group rebalances. Each scenario
asserts that every required pause appears, that nothing processed has a sequence gap and
that no old cause gets a new id; the figures go to the run's "fault figures" summary."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.control.keying import partition_for
from streams.devtools.kafka_broker import KafkaCluster
from streams.records import AlertStatus, OpsAction, OpsCommand
from streams.runner import GuardState, GuardStatus, PauseGuard
from streams.worker_process import WorkerProcess
from tests.conftest import SPECS, Stack, engine_under_test, start_test_broker, wait_until
from tests.integration.test_health_agents import FAST, Feeder, alerts, book, pauses_by_scope

pytestmark = pytest.mark.faults

# session timeout 6 s: the broker's floor in production, and what the takeover figures use
CLUSTER_WORKER = {**FAST, "session_timeout_s": 6.0, "rebalance_timeout_s": 10.0}
_namespaces = itertools.count(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    if engine_under_test() != "kafka":
        pytest.skip("a three-node cluster is Apache Kafka's (POLYMON_TEST_BROKER=kafka)")
    started = start_test_broker(tmp_path_factory.mktemp("cluster"), size=3)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def cluster_stack(cluster: KafkaCluster, tmp_path: Path) -> Iterator[Stack]:
    for node in cluster.nodes:  # a node an earlier scenario left down comes back first
        if not node.running:
            node.start()
    cluster.wait_ready()
    namespace = Stack(cluster.bootstrap, f"c{next(_namespaces)}-{int(time.time())}.", tmp_path,
                      "kafka", replication=3)
    namespace.create_topics()
    try:
        yield namespace
    finally:
        namespace.stop()


def partition_of(topic: str, key: str) -> int:
    return partition_for(key.encode(), SPECS[topic].partitions, "murmur2")


def scopes_on(topic: str, partition: int, count: int, name: str) -> list[str]:
    """``count`` market scopes whose key lands on ``topic``'s ``partition``."""
    candidates = (f"market:{name}{i}" for i in itertools.count())
    return list(itertools.islice(
        (scope for scope in candidates if partition_of(topic, scope) == partition), count))


def paused_scopes(stack: Stack) -> set[str]:
    return {scope for scope, history in pauses_by_scope(stack).items()
            if any(pause.paused for _, pause in history)}


def episodes(history: list[tuple[bool, str]]) -> list[set[str]]:
    """The ids of each episode in ``(on, id)`` records in order: an episode runs from a
    record that is on to the next that is off."""
    found: list[set[str]] = []
    for on, ident in history:
        if not on:
            if found and found[-1]:
                found.append(set())
            continue
        if not found:
            found.append(set())
        found[-1].add(ident)
    return [ids for ids in found if ids]


def assert_one_id_per_cause(stack: Stack, scopes: list[str]) -> None:
    """Every episode — a stale spell of a scope, from its pause to its resume — has one
    pause state id and one firing alert id, however often the decision was re-made across
    the fault (recovery re-publishes the same ids), and no two episodes share one. A fresh
    scope whose data stopped arriving while its partition had no leader is stale too: that
    is an episode of its own."""
    pauses = pauses_by_scope(stack)
    fired: dict[str, list[tuple[bool, str]]] = {}
    for alert in alerts(stack):
        if alert.reason_code == "RISK_STALE_BOOK":
            fired.setdefault(alert.scope, []).append(
                (alert.payload.status is AlertStatus.FIRING, alert.envelope_id))
    for scope in scopes:
        for what, history in (
                ("pause", [(p.paused, p.state_id) for _, p in pauses[scope]]),
                ("alert", fired.get(scope, []))):
            spells = episodes(history)
            assert spells and all(len(ids) == 1 for ids in spells), (scope, what, history)
            assert len(set().union(*spells)) == len(spells), (scope, what, history)


def assert_no_gap(worker: WorkerProcess, scopes: list[str]) -> None:
    """Every sequence number sent for ``scopes`` was processed (a gap filled by a late
    arrival is a reorder; an outstanding one is a loss)."""
    rows = worker.get("/api/freshness")["scopes"]
    assert {scope: rows[scope]["missing"] for scope in scopes} == dict.fromkeys(scopes, 0)


def test_partition_leaders_killed_mid_stream_lose_no_pause(
        cluster: KafkaCluster, cluster_stack: Stack, figures: list[str]) -> None:
    stack = cluster_stack
    worker = stack.start_worker("leaders", **CLUSTER_WORKER)
    health_partition = 0
    # stale markets on the health.events partition whose leader dies first, and whose pauses
    # land on the control.pauses partition whose leader dies second
    first = scopes_on("health.events", health_partition, 2, "h")
    pauses_partition = partition_of("control.pauses", "market:p0")
    second = [s for s in (f"market:p{i}" for i in range(200))
              if partition_of("control.pauses", s) == pauses_partition][:2]
    steady = [f"market:s{i}" for i in range(6)]  # fresh throughout
    markets = first + second + steady
    timings: dict[str, float] = {}
    with Feeder(stack, lambda scope, seq: book(scope, seq)) as feeder:
        feeder.live = set(markets)
        time.sleep(3.0)

        leader = cluster.leader_of(stack.topic("health.events"), health_partition)
        killed_at = time.monotonic()
        cluster.node(leader).kill()
        feeder.live = set(second + steady)  # the first pair goes stale as its leader dies
        wait_until(lambda: set(first) <= paused_scopes(stack), 40,
                   what=f"{first} paused after health.events' leader (node {leader}) died")
        timings["health.events leader killed → stale pauses published"] = (
            time.monotonic() - killed_at)
        new_leader = wait_until(
            lambda: (n := cluster.leader_of(stack.topic("health.events"), health_partition))
            not in (-1, leader) and n, 30, what="a new health.events leader")
        timings["health.events leader killed → new leader"] = time.monotonic() - killed_at
        cluster.node(leader).start()
        cluster.wait_ready()

        leader = cluster.leader_of(stack.topic("control.pauses"), pauses_partition)
        killed_at = time.monotonic()
        cluster.node(leader).kill()
        feeder.live = set(steady)  # the second pair goes stale as the pauses' leader dies
        wait_until(lambda: set(second) <= paused_scopes(stack), 40,
                   what=f"{second} paused after control.pauses' leader (node {leader}) died")
        timings["control.pauses leader killed → stale pauses published"] = (
            time.monotonic() - killed_at)
        cluster.node(leader).start()
        cluster.wait_ready()
        time.sleep(2.0)  # the last sends are processed
    wait_until(lambda: worker.get("/api/scopes")["scopes"].get(steady[0], {})
               .get("last_sequence") == feeder.sequence[steady[0]], 30,
               what="the worker processed every send")
    required = set(first + second)
    seen = paused_scopes(stack) & required
    figures.append(f"cluster, partition leaders killed: pauses expected {len(required)}, "
                   f"seen {len(seen)}; new health.events leader after node {new_leader} "
                   "took over; " + "; ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    assert seen == required
    assert_no_gap(worker, markets)
    assert_one_id_per_cause(stack, first + second)
    assert worker.exit_code is None


def test_a_node_restarted_mid_stream_loses_nothing(
        cluster: KafkaCluster, cluster_stack: Stack, figures: list[str]) -> None:
    stack = cluster_stack
    worker = stack.start_worker("restart", **CLUSTER_WORKER)
    markets = [f"market:r{i}" for i in range(8)]
    with Feeder(stack, lambda scope, seq: book(scope, seq)) as feeder:
        feeder.live = set(markets)
        time.sleep(2.0)
        # the node leading the group's coordinator partition, or any: restart it cleanly
        node = cluster.node(cluster.leader_of(stack.topic("health.events"), 1))
        stopped_at = time.monotonic()
        node.stop()
        node.start()
        cluster.wait_ready()
        restarted_s = time.monotonic() - stopped_at
        feeder.live = set(markets[1:])  # market r0 goes stale after the restart
        wait_until(lambda: markets[0] in paused_scopes(stack), 30,
                   what="market:r0 paused after the restart")
        time.sleep(1.0)
    wait_until(lambda: worker.get("/api/scopes")["scopes"].get(markets[1], {})
               .get("last_sequence") == feeder.sequence[markets[1]], 30,
               what="the worker processed every send")
    figures.append(f"cluster, node {node.node_id} restarted (SIGTERM, start): back in "
                   f"{restarted_s:.1f} s; pauses expected 1, seen "
                   f"{len(paused_scopes(stack) & {markets[0]})}")
    assert_no_gap(worker, markets)
    assert_one_id_per_cause(stack, markets[:1])
    assert worker.exit_code is None


def _owned(worker: WorkerProcess) -> list[int]:
    return worker.get("/api/freshness?local=true")["partitions"]


def test_a_worker_killed_during_a_rebalance_leaves_no_scope_unwatched(
        cluster_stack: Stack, figures: list[str]) -> None:
    stack = cluster_stack
    first = stack.start_worker("first", **CLUSTER_WORKER)
    doomed = stack.start_worker("doomed", **CLUSTER_WORKER)
    wait_until(lambda: _owned(first) and _owned(doomed), 40, what="both own partitions")
    everything = sorted(_owned(first) + _owned(doomed))
    markets = [f"market:w{i}" for i in range(8)]
    with Feeder(stack, lambda scope, seq: book(scope, seq)) as feeder:
        feeder.live = set(markets)
        time.sleep(2.0)
        late = stack.start_worker("late", wait=False, **CLUSTER_WORKER)  # a rebalance begins
        time.sleep(1.5)
        killed_at = time.monotonic()
        doomed.kill()  # mid-rebalance: no LeaveGroup, its session must expire
        wait_until(lambda: late.wait_ready(timeout_s=60) and
                   sorted(_owned(first) + _owned(late)) == everything,
                   CLUSTER_WORKER["session_timeout_s"] + CLUSTER_WORKER["rebalance_timeout_s"]
                   + 30, what="the two survivors own every partition")
        takeover_s = time.monotonic() - killed_at
        feeder.live = set()  # every market goes stale: the survivors must catch all
        found = wait_until(lambda: (p := paused_scopes(stack)) >= set(markets) and p, 40,
                           what="every market paused by the survivors")
    figures.append(f"cluster, worker SIGKILLed during a rebalance: survivors own all "
                   f"{len(everything)} partitions {takeover_s:.1f} s after the kill; pauses "
                   f"expected {len(markets)}, seen {len(found & set(markets))}")
    assert_one_id_per_cause(stack, markets)
    assert first.exit_code is None and late.exit_code is None


# -- PauseGuard: never READY on a stale view ------------------------------------------------

GUARD_MAX_AGE_S = 2.0
BEATING = {**CLUSTER_WORKER, "monitor_heartbeat_interval_s": 0.2}


def test_the_guard_is_not_ready_while_a_pauses_partition_has_lost_its_leader(
        cluster: KafkaCluster, cluster_stack: Stack, figures: list[str]) -> None:
    stack = cluster_stack
    stack.start_worker("guarded", **BEATING)
    health: list[GuardStatus] = []  # appends are atomic; the guard's thread appends
    pauses = stack.topic("control.pauses")
    with PauseGuard(stack.bootstrap, topic_prefix=stack.prefix,
                    heartbeat_max_age_s=GUARD_MAX_AGE_S, on_health=health.append) as guard:
        assert guard.wait_ready(timeout=30), guard.status()
        # a partition led by another node than monitor.heartbeat's: the beats go on, and
        # what the guard reports is the partition
        beats_leader = cluster.leader_of(stack.topic("monitor.heartbeat"), 0)
        partition = next((p for p in range(SPECS["control.pauses"].partitions)
                          if cluster.leader_of(pauses, p) != beats_leader), 0)
        leader = cluster.leader_of(pauses, partition)
        seen_before = len(health)
        killed_at = time.monotonic()
        cluster.node(leader).kill()
        named = wait_until(  # the reason (a status is falsy when not ready)
            lambda: next((s.reason for s in health[seen_before:]
                          if s.state is GuardState.PARTITION_UNAVAILABLE
                          and f"partition {partition}:" in s.reason), None),
            30, what=f"the guard not ready, naming {pauses} partition {partition}")
        unready_s = time.monotonic() - killed_at
        assert not guard.allowed("market:x1")
        # READY again only once a new leader answers and the guard read up to its end
        assert guard.wait_ready(timeout=60), guard.status()
        recovered_s = time.monotonic() - killed_at
        after = health[seen_before:]
        assert after[-1].state is GuardState.READY
        assert all(not s.ready for s in after[:-1]), [s.state for s in after]
        new_leader = cluster.leader_of(pauses, partition)
        assert new_leader not in (-1, leader)
        # caught up on that partition under its new leader: a pause landing there is obeyed
        scope = scopes_on("control.pauses", partition, 1, "g")[0]
        stack.send_records("ops.commands", [OpsCommand(
            command_id=f"guard-{partition}", scope=scope, action=OpsAction.PAUSE,
            actor="alice", reason="fault test", issued_time_ms=int(time.time() * 1000))])
        wait_until(lambda: not guard.allowed(scope) and guard.status().ready, 30,
                   what=f"{scope} (partition {partition}) paused, the guard ready")
        cluster.node(leader).start()
        cluster.wait_ready()
    figures.append(f"cluster, control.pauses partition {partition}'s leader (node {leader}) "
                   f"killed: guard not ready after {unready_s:.1f} s ({named}); "
                   f"ready again after {recovered_s:.1f} s under node {new_leader}")


# who sees it first: the worker (it stops announcing itself healthy after input_stall_s),
# or, with a worker slower to judge than the guard's bound, the guard itself (the beats
# show lag and no progress)
@pytest.mark.parametrize(("input_stall_s", "expected"), [
    (1.0, "polymon worker stuck unhealthy: input stuck: no progress on "),
    (600.0, "polymon worker stuck made no progress for "),
], ids=["worker-judges", "guard-judges"])
def test_a_worker_whose_input_is_stuck_while_its_timers_run_fails_the_guard_closed(
        cluster_stack: Stack, tmp_path: Path, figures: list[str], input_stall_s: float,
        expected: str) -> None:
    stack = cluster_stack
    stall = tmp_path / "stall-input"
    stack.start_worker("stuck", fault_stall_input_file=str(stall), input_stall_s=input_stall_s,
                       **BEATING)
    markets = [f"market:k{i}" for i in range(4)]
    with Feeder(stack, lambda scope, seq: book(scope, seq)) as feeder, \
            PauseGuard(stack.bootstrap, topic_prefix=stack.prefix,
                       heartbeat_max_age_s=GUARD_MAX_AGE_S) as guard:
        feeder.live = set(markets)
        assert guard.wait_ready(timeout=30), guard.status()
        wait_until(lambda: guard.allowed("market:k0"), 10, what="market:k0 allowed")
        stall.touch()  # from the next heartbeat on, the worker takes no input
        stalled_at = time.monotonic()
        seen: list[GuardStatus] = []

        def closed() -> bool:
            seen[:] = [guard.status()]
            return not seen[0].ready

        wait_until(closed, GUARD_MAX_AGE_S + 10, interval_s=0.05,
                   what="the guard failed closed on the stuck worker")
        closed_s = time.monotonic() - stalled_at
        status = seen[0]
        assert status.state is GuardState.HEARTBEAT_STALE, status
        assert status.reason.startswith(expected), status
        # it still beats: the heartbeat's age is not what failed the guard
        assert status.heartbeat_age_s is not None and status.heartbeat_age_s < GUARD_MAX_AGE_S
        # the bound, plus a beat for the hook to act, the next records to arrive and a
        # beat to carry the lag (0.2 s, 0.1 s, 0.2 s), with room for a loaded machine
        assert closed_s < GUARD_MAX_AGE_S + 2.0, closed_s
        assert not guard.allowed("market:k1")

        stall.unlink()  # input flows again: the lag is worked off, the guard trusts it
        wait_until(lambda: guard.allowed("market:k1"), 30, what="allowed once input flows")
    figures.append(f"cluster, a worker's input stuck while it beats (its input_stall_s "
                   f"{input_stall_s:g} s): guard closed after "
                   f"{closed_s:.1f} s (bound {GUARD_MAX_AGE_S:g} s): {status.reason}")
