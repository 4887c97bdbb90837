from __future__ import annotations

from typing import Any

import pytest
import typer

from streams import ctl


def test_server_text_prints_as_written_never_as_markup_or_terminal_control(
        monkeypatch: pytest.MonkeyPatch) -> None:
    hostile = "[red]x[/red][link=http://evil]y[/link]\x1b[2J\x07"
    reply = {"pauses": {"market:m1": {"paused": True, "reason_code": hostile,
                                      "policy": "LATCH", "actor": hostile, "since_ms": 0}}}

    def fake_call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return ctl.printable(reply)  # what _call does to every answer

    monkeypatch.setattr(ctl, "_call", fake_call)
    monkeypatch.setattr(ctl.ctx, "as_json", False)
    monkeypatch.setattr(ctl.out, "width", 300)
    with ctl.out.capture() as captured:
        ctl.pauses(scope=None, paused_only=False)
    text = captured.get()
    assert "[red]x[/red]" in text and "[link=http://evil]" in text
    assert "\x1b" not in text and "\x07" not in text


def test_printable_escapes_control_and_bidi_characters_everywhere() -> None:
    reply = {"a\x1bb": ["ok", "evil\u202egnp.exe", {"x": "tab\there"}], "n": 3}
    assert ctl.printable(reply) == {"a\\u001bb": ["ok", "evil\\u202egnp.exe",
                                                  {"x": "tab\\u0009here"}], "n": 3}


@pytest.mark.parametrize(("reason", "message"), [
    ("  ", "--reason must not be empty"),
    ("r" * 501, "--reason: at most 500 characters, got 501"),
    ("down\x1b[2J", "--reason: control and bidi characters are not allowed (U+001B at 4)"),
])
def test_a_bad_reason_is_refused_before_anything_is_sent(
        reason: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited:
        ctl._reason(reason)
    assert exited.value.exit_code == ctl.EXIT_BAD_INPUT
    assert message in capsys.readouterr().err.replace("\n", "")


def test_evaluate_sends_the_evaluation_reference_and_rollout_shows_the_mark(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, Any]] = []

    def fake_call(method: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
        calls.append((method, path, body))
        if method == "GET":
            return {"rollout": {"model:m1": {
                "stage": "PAPER", "model_version": "v2", "updated_ms": 0,
                "reevaluation": {"model_version": "v2", "since_ms": 0, "alert_id": "a1",
                                 "reason": "drift"}}}}
        return {"command_id": "c1", "action": "EVALUATE", "scope": "model:m1", "target": "v2",
                "status": "pending", "outcome": None, "status_url": "/api/commands/c1"}

    monkeypatch.setattr(ctl, "_call", fake_call)
    monkeypatch.setattr(ctl.ctx, "as_json", False)
    monkeypatch.setattr(ctl.out, "width", 300)
    ctl.evaluate(scope="model:m1", version="v2", evaluation_id="run-42", passed=False,
                 reason="backtest", idempotency_key=None)
    assert calls[-1] == ("POST", "/api/rollout/model:m1/evaluation", {
        "reason": "backtest", "model_version": "v2", "evaluation_id": "run-42",
        "result": "FAILED"})
    with ctl.out.capture() as captured:
        ctl.rollout(scope=None)
    assert "REQUIRED (v2 since" in captured.get()
    with pytest.raises(typer.Exit) as exited:
        ctl.evaluate(scope="model:m1", version=" ", evaluation_id="r", passed=True,
                     reason="x", idempotency_key=None)
    assert exited.value.exit_code == ctl.EXIT_BAD_INPUT
