"""An incident's trades: the runners' trade entries of its scope (or one it covers) in
its window, listed in its review and linked from its view, bounded."""

from __future__ import annotations

from typing import Any

from streams.incident_review import (
    MAX_TRADES_LISTED,
    TRADE_LEAD_S,
    covers,
    decisions_during,
    incident_review,
    trade_links,
    trades_during,
)
from streams.records import ReportEnvelope
from streams.trades import trade_envelope
from streams.web.api import audit_view

T0 = 1_790_006_400_000
LEAD_MS = int(TRADE_LEAD_S * 1000)


def incident(**changes: Any) -> dict[str, Any]:
    view = {
        "incident_id": "inc-execution-0123456789abcdef01234567", "state": "RESOLVED",
        "severity": "CRITICAL", "scope": "market:m1", "dedup_key": "market:m1|execution",
        "reason_code": "EXEC_SLIPPAGE_BREACH", "reason_family": "execution",
        "opened_ms": T0, "updated_ms": T0 + 600_000, "acknowledged_by": None,
        "acknowledged_ms": None, "resolved_by": "operator:bob", "resolved_ms": T0 + 600_000,
        "firing_alerts": 0, "alerts": 1, "paused": False, "timeline": [],
        "envelope_id": "env-1", "root_cause": "venue", "follow_ups": [],
    }
    return {**view, **changes}


def trade(event_ms: int, scope: str = "bot:b1/market:m1", order: str = "o-1",
          filled: float = 4.0, runner: str = "r1") -> dict[str, Any]:
    envelope: ReportEnvelope = trade_envelope(
        runner_id=runner, scope=scope, order_id=order, side="SELL", size=10.0, price=0.42,
        filled_size=filled, fill_price=0.4 if filled else None, model_version="v2",
        observed_ms=event_ms + 3, event_time_ms=event_ms, config_version="c")
    return audit_view(envelope)


def test_a_scope_covers_itself_and_what_a_pause_of_it_would_cover() -> None:
    assert covers("market:m1", "bot:b1/market:m1") and covers("market:m1", "market:m1")
    assert covers("bot:b1", "bot:b1/market:m7") and covers("global", "market:m1")
    assert covers("bot:b1/market:m1", "bot:b1/market:m1")
    assert not covers("bot:b1/market:m1", "market:m1")  # a bot's pause is narrower
    assert not covers("bot:b2", "bot:b1/market:m1") and not covers("market:m2", "market:m1")
    assert not covers("model:x", "market:m1") and not covers("market:m1", "not a scope")


def test_the_trades_of_its_scope_in_its_window_oldest_first_each_once() -> None:
    inside = [trade(T0 + 10, order="late"), trade(T0 - LEAD_MS, order="lead"),
              trade(T0 + 600_000, scope="market:m1", order="at-resolution")]
    outside = [trade(T0 - LEAD_MS - 1, order="too-early"), trade(T0 + 600_001, order="after"),
               trade(T0 + 10, scope="bot:b1/market:m2", order="other-market")]
    decision = {**inside[0], "kind": "audit", "envelope_id": "audit-1", "trade": None}
    entries = [*inside, *outside, inside[0], decision]  # a re-delivered report: once
    found = trades_during(incident(), entries, now_ms=T0 + 10**9)
    assert [t["trade"]["order_id"] for t in found] == ["lead", "late", "at-resolution"]
    # unresolved: up to now
    open_now = trades_during(incident(resolved_ms=None), entries, now_ms=T0 + 20)
    assert [t["trade"]["order_id"] for t in open_now] == ["lead", "late"]
    # a bot's incident: its markets' trades, not another bot's
    assert trades_during(incident(scope="bot:b2"), entries, T0 + 10**9) == []
    # the decisions of the review stay decisions
    assert [e["envelope_id"] for e in decisions_during(
        incident(scope="bot:b1/market:m1"), entries, T0)] == ["audit-1"]


def test_the_review_lists_the_trades_affected_with_order_side_size_price_fill_model() -> None:
    found = [trade(T0 - 2_000, order="o-7", filled=4.0)]
    text = incident_review(incident(), [], T0 + 1_000, found)
    section = text.split("## Trades affected", 1)[1]
    row = next(line for line in section.splitlines() if "o-7" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:] == ["-2.0 s", "bot:b1/market:m1", "r1", "o-7", "SELL", "10", "0.42", "4",
                         "0.4", "v2", "EXEC_TRADE", found[0]["envelope_id"]]
    quiet = incident_review(incident(), [], T0 + 1_000)
    assert "_No trade reported for the scope" in quiet.split("## Trades affected", 1)[1]


def test_the_listing_is_bounded_and_counts_the_rest() -> None:
    many = [trade(T0 + i, order=f"o-{i}") for i in range(MAX_TRADES_LISTED + 5)]
    found = trades_during(incident(), many, T0 + 10**9)
    links = trade_links(found)
    assert links["count"] == MAX_TRADES_LISTED + 5
    assert links["envelope_ids"] == [t["envelope_id"] for t in found[:MAX_TRADES_LISTED]]
    text = incident_review(incident(), [], T0, found)
    assert "5 more trades are not listed." in text
    assert "o-104" not in text and "o-99" in text
