"""No decision is lost, on the test broker with real workers: a decision the broker does
not acknowledge is never committed over (the worker stops with an error naming the topic,
and a restart once the topic takes writes again publishes it), and a pause whose publish
was lost in a crash right after its latch reached the changelog is re-published by the
restarted worker, unchanged."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.agents.latches import FAULT_EXIT_STATUS
from streams.records import OpsAction, OpsCommand
from tests.conftest import Stack, engine_under_test, wait_until
from tests.faults.test_faults import RESILIENT
from tests.integration.test_health_agents import FAST, Feeder, book, now_ms, pauses_by_scope

pytestmark = pytest.mark.faults


def _delete_topic(stack: Stack, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": stack.bootstrap, **stack.security})
    for future in admin.delete_topics([stack.topic(topic)]).values():
        future.result(timeout=10)
    wait_until(lambda: stack.topic(topic) not in admin.list_topics(timeout=10).topics, 20,
               what=f"{topic} deleted")


def _committed_and_end(stack: Stack, topic: str) -> tuple[int, int]:
    """The group's committed offsets and the end offsets of ``topic``, each summed."""
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "enable.auto.commit": False,
                         "group.id": f"{stack.prefix}polymon", **stack.security})
    try:
        name = stack.topic(topic)
        partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
        committed = consumer.committed([TopicPartition(name, p) for p in partitions],
                                       timeout=10)
        ends = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in committed)
        return sum(max(tp.offset, 0) for tp in committed), ends
    finally:
        consumer.close()


@pytest.mark.skipif(engine_under_test() != "kafka",
                    reason="written for Apache Kafka's refusal of writes to a deleted topic; "
                    "the embedded broker does not refuse them within the test's bound")
def test_a_decision_the_broker_refuses_is_never_committed_over(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(**FAST, producer_delivery_timeout_s=5.0)
    # audit.log gone (the broker creates no topic on a write): every audit entry is
    # refused (UNKNOWN_TOPIC_OR_PARTITION), retried by the producer until its timeout
    _delete_topic(stack, "audit.log")
    command = OpsCommand(command_id="cmd-refused", scope="market:n1", action=OpsAction.PAUSE,
                         actor="alice", reason="fault test", issued_time_ms=now_ms())
    stack.send_records("ops.commands", [command])
    wait_until(lambda: pauses_by_scope(stack).get("market:n1"), 20, what="the pause sent")
    assert worker.exit_code is None  # its audit entry retried: the command's offset waits
    assert _committed_and_end(stack, "ops.commands") == (0, 1)
    wait_until(lambda: worker.exit_code is not None, 60, what="the worker stopped")
    log = worker.log_tail(30_000)
    assert worker.exit_code != 0, log
    assert "not acknowledged by the broker" in log and "audit.log" in log, log
    assert _committed_and_end(stack, "ops.commands") == (0, 1)  # never committed over

    stack.create_topics()  # audit.log back: the restarted worker decides again
    healed = stack.start_worker("worker-2", **FAST)
    audit = wait_until(lambda: [e for e in stack.read_records("audit.log", idle_timeout_s=0.5)
                                if e.scope == "market:n1"], 30,
                       what="the command re-processed and audited")
    # the pause's own entry and the command's, once each
    assert [e.payload.decision for e in audit] == ["paused", "paused"]
    assert len({e.envelope_id for e in audit}) == 2
    history = pauses_by_scope(stack)["market:n1"]
    assert {p.state_id for _, p in history} == {history[0][1].state_id}  # the same decision
    wait_until(lambda: _committed_and_end(stack, "ops.commands") == (1, 1), 30,
               what="the command's offset committed once its decisions are acknowledged")
    assert healed.exit_code is None


def _latch_rows(stack: Stack) -> dict[str, dict]:
    """The last row per scope of the pause latches' changelog."""
    rows = {}
    for message in stack.read("polymon-pause-latches-changelog", idle_timeout_s=1.0):
        rows[json.loads(message.key)] = json.loads(message.value) if message.value else None
    return rows


def test_a_pause_lost_between_changelog_and_publish_is_republished(
        stack: Stack, soak_s: float) -> None:
    stack.create_topics()
    first = stack.start_worker("crashy", static_membership=True, **RESILIENT,
                               fault_crash_before_pause_publish=True)
    with Feeder(stack, lambda scope, seq: book(scope, seq)) as feeder:
        feeder.live = {"market:c0", "market:c1"}
        time.sleep(1.0 + soak_s)
        feeder.live = {"market:c1"}  # c0 goes stale: its latch holds, the hook exits
        wait_until(lambda: first.exit_code is not None, 30, what="the worker exited at the hook")
        assert first.exit_code == FAULT_EXIT_STATUS, first.log_tail()
        row = _latch_rows(stack)["market:c0"]
        assert row["latch"]["paused"] and row["state"]["paused"]  # on the changelog...
        assert "market:c0" not in pauses_by_scope(stack)  # ...and never published
        # no periodic re-publishing: the one on partition assignment is under test
        second = stack.start_worker("crashy", wait=False, static_membership=True,
                                    web_port=first.web_port, **RESILIENT,
                                    pause_republish_interval_s=0)
        second.wait_ready(timeout_s=90)
        history = wait_until(lambda: pauses_by_scope(stack).get("market:c0"), 30,
                             what="the restarted worker re-published the pause")
    # the state the latch recorded, unchanged: same state id and times for every reader
    republished = history[0][1]
    assert republished.paused and republished.model_dump(mode="json") == row["state"]
    assert {p.state_id for _, p in history} == {row["state"]["state_id"]}
    assert second.exit_code is None
