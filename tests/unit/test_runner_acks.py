"""PauseGuard's acknowledgements (control.pause-acks): what they carry, what the producer
shares with the consumer, and that a guard without a runner id publishes nothing."""

from __future__ import annotations

import pytest

from streams.avro import AvroCodec, SchemaCatalog
from streams.records import MAX_APPLIED_PAUSES, PauseAck
from streams.runner import PauseGuard, pause_ack, producer_config_from
from tests.unit.test_runner import NOW_MS, pause, ready_book


def test_an_ack_carries_the_watermarks_and_the_newest_paused_states() -> None:
    book = ready_book(pause("market:m1", updated_ms=NOW_MS - 10),
                      pause("bot:b1", updated_ms=NOW_MS - 5),
                      pause("market:m2", paused=False))
    book.consumed(3, 12)
    ack = pause_ack(book, "r1", "polymon-0.1.0/bot-2", "ready", NOW_MS,
                    {"market:m1": NOW_MS - 9})
    assert [(w.partition, w.offset) for w in ack.watermarks] == [(0, 3), (3, 12)]
    assert [(a.scope, a.applied_ms) for a in ack.applied] == [
        ("bot:b1", NOW_MS), ("market:m1", NOW_MS - 9)]  # newest first; resumed: not listed
    assert (ack.runner_id, ack.guard_state, ack.sent_ms) == ("r1", "ready", NOW_MS)
    codec = AvroCodec(SchemaCatalog()["PauseAck"], SchemaCatalog())
    assert codec.decode_record(codec.encode_record(ack)) == ack


def test_an_ack_holds_at_most_its_bound_of_paused_scopes() -> None:
    book = ready_book(*[pause(f"market:m{i}", updated_ms=NOW_MS + i)
                        for i in range(MAX_APPLIED_PAUSES + 5)])
    ack = pause_ack(book, "r1", "v", "ready", NOW_MS, {})
    assert len(ack.applied) == MAX_APPLIED_PAUSES
    assert ack.applied[0].scope == f"market:m{MAX_APPLIED_PAUSES + 4}"
    assert isinstance(ack, PauseAck)


def test_the_producer_shares_the_consumers_connection_and_security_only() -> None:
    shared = producer_config_from({
        "security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "runner", "sasl.password": "secret", "ssl.ca.location": "/ca.pem",
        "fetch.wait.max.ms": 50, "group.id": "g", "auto.offset.reset": "latest"})
    assert shared == {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
                      "sasl.username": "runner", "sasl.password": "secret",
                      "ssl.ca.location": "/ca.pem"}


def test_a_runner_id_must_be_a_scope_id_and_the_interval_positive() -> None:
    with pytest.raises(ValueError, match="runner_id"):
        PauseGuard("127.0.0.1:1", runner_id="r 1")
    with pytest.raises(ValueError, match="ack_interval_s"):
        PauseGuard("127.0.0.1:1", runner_id="r1", ack_interval_s=0)
    guard = PauseGuard("127.0.0.1:1", topic_prefix="x.", runner_id="r1", runner_version="bot-2")
    assert guard.acks_topic == "x.control.pause-acks"
    assert guard.runner_version.startswith("polymon-") and guard.runner_version.endswith("/bot-2")


def test_without_a_runner_id_no_acknowledgement_thread_runs() -> None:
    guard = PauseGuard("127.0.0.1:1", heartbeat_max_age_s=1.0).start()
    try:
        assert guard._ack_thread is None
    finally:
        guard.stop(timeout_s=5)
