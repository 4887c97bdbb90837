"""polymon ctl runners: GET /api/runners as a table (or its JSON)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams import ctl

REPLY = {"runners": {
    "r1": {"runner_version": "polymon-0.1.0/bot-1", "guard_state": "ready",
           "last_ack_age_s": 0.4, "lag_records": 2, "lag_s": 4.2, "never_acknowledged": False,
           "silent": False, "oldest_unapplied": {"scope": "market:m1", "state_id": "s1",
                                                  "paused": True, "age_s": 4.2},
           "alerts": {"GOV_PAUSE_NOT_APPLIED": "alert-1"}},
    "r2": {"runner_version": None, "guard_state": None, "last_ack_age_s": None,
           "lag_records": None, "lag_s": None, "never_acknowledged": True, "silent": True,
           "oldest_unapplied": None, "alerts": {}},
    "r3": {"runner_version": "polymon-0.1.0", "guard_state": "ready", "last_ack_age_s": 0.1,
           "lag_records": 0, "lag_s": 0.0, "never_acknowledged": False, "silent": False,
           "oldest_unapplied": None, "alerts": {}},
}, "workers": [], "complete": True, "now_ms": 0}


@pytest.fixture
def called(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    paths: list[str] = []

    def fake_call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        paths.append(f"{method} {path}")
        return REPLY

    monkeypatch.setattr(ctl, "_call", fake_call)
    monkeypatch.setattr(ctl.out, "width", 300)
    return paths


def test_runners_table_names_lag_oldest_unapplied_pause_and_alerts(
        called: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctl.ctx, "as_json", False)
    with ctl.out.capture() as captured:
        ctl.runners()
    rows = {line.split()[0]: line for line in captured.get().splitlines()
            if line.strip().startswith("r")}
    assert called == ["GET /api/runners"]
    assert "market:m1 s1 (4.2s)" in rows["r1"] and "GOV_PAUSE_NOT_APPLIED" in rows["r1"]
    assert "SILENT (required, never acknowledged)" in rows["r2"]
    assert rows["r3"].split()[-1] == "ok"


def test_runners_json_is_the_apis_answer(called: list[str], monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(ctl.ctx, "as_json", True)
    ctl.runners()
    assert json.loads(capsys.readouterr().out) == REPLY
