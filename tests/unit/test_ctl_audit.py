"""`polymon ctl audit`: the kind is checked locally, trades print their order and fill."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from streams import ctl

TRADE = {"envelope_id": "trade-1", "time_ms": 0, "event_time_ms": 0, "kind": "trade",
         "scope": "bot:b1/market:m1", "reason_code": "EXEC_TRADE", "severity": "INFO",
         "source": "runner:r1", "action": "trade", "actor": "runner:r1",
         "decision": "partially filled", "before": None, "after": None, "evidence": {},
         "trade": {"order_id": "o-7", "runner_id": "r1", "side": "BUY", "size": 10.0,
                   "price": 0.42, "filled_size": 4.0, "fill_price": 0.43,
                   "model_version": "v2"}}


def test_a_kind_neither_record_nor_scope_is_refused_before_anything_is_sent(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(ctl, "_call", lambda *a, **k: pytest.fail("sent"))
    with pytest.raises(typer.Exit) as exited:
        ctl.audit(kind="trades", scope=None, action=None, limit=10)
    assert exited.value.exit_code == ctl.EXIT_BAD_INPUT
    assert "neither a record kind (alert, incident, audit, trade)" in \
        capsys.readouterr().err.replace("\n", "")


def test_trades_are_asked_by_kind_and_print_order_side_size_price_fill_model(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[dict[str, Any]] = []

    def fake_call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        asked.append({"path": path, **kwargs["params"]})
        return {"entries": [TRADE]}

    monkeypatch.setattr(ctl, "_call", fake_call)
    monkeypatch.setattr(ctl.ctx, "as_json", False)
    monkeypatch.setattr(ctl.out, "width", 300)
    with ctl.out.capture() as captured:
        ctl.audit(kind="trade", scope="market:m1", action=None, limit=10)
    assert asked == [{"path": "/api/audit", "kind": "trade", "scope": "market:m1",
                      "action": None, "limit": 10}]
    assert "order o-7: BUY 10 @ 0.42, filled 4 @ 0.43, model v2 (EXEC_TRADE)" in \
        captured.get()
