"""The worker's read view of the compacted topics and the audit tail: latest record per
key, tombstones, and command outcomes found by command id."""

from __future__ import annotations

import asyncio

from streams.codec import Codecs, SchemaCatalog
from streams.envelope import audit_envelope
from streams.records import PauseState
from streams.web.readmodel import ReadModel

CODECS = Codecs(SchemaCatalog())


def pause(scope: str, paused: bool) -> bytes:
    return CODECS["PauseState"].encode_record(PauseState(
        scope=scope, paused=paused, since_ms=1, policy="MANUAL", actor="operator:a",
        updated_ms=2, state_id=f"p-{paused}"))


def audit(command_id: str | None, decision: str, action: str = "pause") -> bytes:
    return CODECS["ReportEnvelope"].encode_record(audit_envelope(
        decision_id=f"command:{command_id}", scope="market:m1",
        reason_code="GOV_OPERATOR_ACTION", action=action, actor="operator:alice",
        decision=decision, before={"paused": False}, after={"paused": True},
        evidence={"command_id": command_id} if command_id else {}, source="s",
        observed_ms=3, event_time_ms=3, config_version="c"))


def test_latest_record_per_key_and_tombstones() -> None:
    model = ReadModel(CODECS)
    model.apply("control.pauses", b"market:m1", pause("market:m1", True))
    model.apply("control.pauses", b"market:m2", pause("market:m2", True))
    model.apply("control.pauses", b"market:m1", pause("market:m1", False))
    model.apply("control.pauses", b"market:m2", None)
    assert list(model.pauses) == ["market:m1"] and model.pauses["market:m1"]["paused"] is False


def test_the_audit_tail_is_bounded_and_indexes_command_outcomes() -> None:
    model = ReadModel(CODECS, audit_tail=2)
    model.apply("audit.log", b"market:m1", audit(None, "firing", action="alert"))
    model.apply("audit.log", b"market:m1", audit("c1", "paused"))
    model.apply("audit.log", b"market:m1", audit("c2", "noop", action="resume"))
    assert [e["decision"] for e in model.audit] == ["paused", "noop"]
    assert model.outcomes["c1"]["decision"] == "paused"
    assert model.outcomes["c1"]["after"] == {"paused": True}


async def test_waiting_for_an_outcome() -> None:
    model = ReadModel(CODECS)
    assert await model.wait_outcome("c9", 0.05) is None
    waiting = asyncio.create_task(model.wait_outcome("c9", 5))
    await asyncio.sleep(0.01)
    model.apply("audit.log", b"market:m1", audit("c9", "paused"))
    assert (await waiting)["decision"] == "paused"
    assert (await model.wait_outcome("c9", 0))["decision"] == "paused"
    assert not model._waiters


def test_the_pause_view_keeps_the_paused_scopes_only() -> None:
    model = ReadModel(CODECS)
    model.apply("control.pauses", b"market:m1", pause("market:m1", True))
    model.apply("control.pauses", b"global", pause("global", True))
    model.apply("control.pauses", b"bot:b1", pause("bot:b1", False))
    assert sorted(model.pause_view.paused) == ["global", "market:m1"]
    assert model.pause_view.paused["market:m1"].state_id == "p-True"
    model.apply("control.pauses", b"market:m1", pause("market:m1", False))
    model.apply("control.pauses", b"global", None)
    assert model.pause_view.paused == {}
    assert model.pause_view.caught_up() is False
    model.caught_up.set()
    assert model.pause_view.caught_up() is True


def test_the_pause_log_keeps_each_record_where_it_is_and_when_it_was_written() -> None:
    model = ReadModel(CODECS)
    model.apply("control.pauses", b"market:m1", pause("market:m1", True), 2, 7, 5_000)
    model.apply("control.pauses", b"market:m1", None, 2, 8, 6_000)
    model.apply("control.pauses", b"global", pause("global", True))  # offset unknown
    kept = model.pause_log.records[2]
    assert [(r.offset, r.scope, r.state_id, r.published_ms) for r in kept] == [
        (7, "market:m1", "p-True", 5_000), (8, "market:m1", None, 6_000)]
    assert model.pause_log.ends == {2: 9} and 0 not in model.pause_log.records
    # a state re-sent with its old updated_ms is new to the runners: its write time counts
    assert model.pause_log.oldest_unapplied({2: 0}).published_ms == 5_000
    assert model.pause_log.caught_up() is False
    model.caught_up.set()
    assert model.pause_log.caught_up() is True
