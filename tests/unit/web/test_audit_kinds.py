"""/api/audit by record kind: every audit.log entry has one kind (alert, incident, audit,
trade); ``kind`` takes a record kind or a scope kind, anything else is a precise 400; the
runners' trades are kept apart from the decisions in the read model and merged newest
first."""

from __future__ import annotations

import pytest

from streams.codec import Codecs, SchemaCatalog
from streams.envelope import audit_envelope
from streams.trades import RECORD_KINDS, trade_envelope
from streams.web.api import (
    KINDS,
    ROUTE_QUERIES,
    ApiError,
    audit_view,
    parse_query,
    scope_filter,
    select_audit,
)
from streams.web.readmodel import ReadModel

T0 = 1_790_000_000_000
CODECS = Codecs(SchemaCatalog())
AUDIT = ROUTE_QUERIES["/api/audit"]


def decision(action: str, scope: str, time_ms: int) -> dict[str, object]:
    return audit_view(audit_envelope(
        decision_id=f"{action}-{time_ms}", scope=scope, reason_code="GOV_OPERATOR_ACTION",
        action=action, actor="agents.x", decision="done", source="agents.x",
        observed_ms=time_ms, event_time_ms=time_ms, config_version="c"))


def trade(scope: str, time_ms: int, order: str = "o-1") -> dict[str, object]:
    return audit_view(trade_envelope(
        runner_id="r1", scope=scope, order_id=order, side="BUY", size=10.0, price=0.42,
        filled_size=10.0, fill_price=0.43, model_version="v2", observed_ms=time_ms,
        event_time_ms=time_ms - 5, config_version="c"))


def test_every_entry_has_one_record_kind() -> None:
    assert decision("alert", "market:m1", T0)["kind"] == "alert"
    assert decision("incident", "market:m1", T0)["kind"] == "incident"
    for action in ("pause", "resume", "promote", "ack"):
        assert decision(action, "market:m1", T0)["kind"] == "audit"
    entry = trade("bot:b1/market:m1", T0)
    assert (entry["kind"], entry["action"], entry["actor"], entry["decision"]) == (
        "trade", "trade", "runner:r1", "filled")
    assert entry["trade"] == {"order_id": "o-1", "runner_id": "r1", "side": "BUY",
                              "size": 10.0, "price": 0.42, "filled_size": 10.0,
                              "fill_price": 0.43, "model_version": "v2"}
    assert entry["event_time_ms"] == T0 - 5 and entry["time_ms"] == T0
    assert decision("pause", "market:m1", T0)["trade"] is None


@pytest.mark.parametrize("kind", [*RECORD_KINDS, *KINDS])
def test_kind_takes_a_record_kind_or_a_scope_kind(kind: str) -> None:
    assert parse_query({"kind": kind}, AUDIT) == {"kind": kind}


@pytest.mark.parametrize("kind", ["trades", "TRADE", "", "bots", "runner:r1"])
def test_any_other_kind_is_a_precise_400(kind: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_query({"kind": kind}, AUDIT)
    assert refused.value.status == 400
    assert refused.value.message.startswith(f"kind: {kind!r} is neither a record kind "
                                            "(alert, incident, audit, trade) nor a scope kind")


def test_the_other_routes_kind_is_still_a_scope_kind() -> None:
    with pytest.raises(ApiError, match="kind: 'trade' is not one of"):
        parse_query({"kind": "trade"}, ROUTE_QUERIES["/api/incidents"])


def test_select_by_record_kind_scope_kind_scope_and_action() -> None:
    entries = [trade("bot:b1/market:m1", T0 + 4), decision("alert", "market:m1", T0 + 3),
               trade("market:m2", T0 + 2, "o-2"), decision("pause", "bot:b1", T0 + 1)]

    def chosen(**params: object) -> list[object]:
        return [e["envelope_id"] for e in select_audit(entries, params)]

    ids = [e["envelope_id"] for e in entries]
    assert chosen(kind="trade") == [ids[0], ids[2]]
    assert chosen(kind="alert") == [ids[1]] and chosen(kind="audit") == [ids[3]]
    assert chosen(kind="incident") == []
    assert chosen(kind="market") == [ids[0], ids[1], ids[2]]  # the scope's last segment
    assert chosen(kind="trade", scope="market:m1") == [ids[0]]  # and the scopes it covers
    assert chosen(action="trade", limit=1) == [ids[0]]
    assert scope_filter({"kind": "trade"}).kind is None


def test_the_read_model_keeps_trades_apart_and_merges_them_newest_first() -> None:
    model = ReadModel(CODECS, audit_tail=2)
    encode = CODECS["ReportEnvelope"].encode_record
    for i in (0, 1, 1, 2, 0):  # a busy runner does not push the decisions out of the tail
        model.apply("audit.log", b"k", encode(trade_envelope(
            runner_id="r1", scope="market:m1", order_id=f"o-{i}", side="SELL", size=1.0,
            price=0.5, observed_ms=T0 + 10 + i, event_time_ms=T0, config_version="c")))
    model.apply("audit.log", b"k", encode(audit_envelope(
        decision_id="d", scope="market:m1", reason_code="GOV_OPERATOR_ACTION",
        action="pause", actor="a", decision="paused", source="s", observed_ms=T0 + 11,
        event_time_ms=T0, config_version="c")))
    # a re-delivered report is listed once; one evicted from the tail may come again
    assert [e["trade"]["order_id"] for e in model.trades] == ["o-2", "o-0"]
    assert [e["kind"] for e in model.audit] == ["audit"]
    merged = model.audit_entries()
    assert [(e["kind"], e["time_ms"]) for e in merged] == [
        ("trade", T0 + 12), ("audit", T0 + 11), ("trade", T0 + 10)]
