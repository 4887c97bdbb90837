"""Replay of a recorded window on the real broker: it reproduces the live alerts and
pauses exactly (same ids), twice over, and reports an injected difference."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.envelope import alert_envelope
from streams.records import AlertStatus
from streams.replay import ReplayError, ReplayRun, parse_bound, resolve_window, run_replay
from tests.conftest import CODECS, Stack
from tests.integration.test_health_agents import FAST, Feeder, book, pauses_by_scope

pytestmark = [pytest.mark.integration, pytest.mark.compiled_twin]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _record_live_window(stack: Stack) -> tuple[int, int]:
    """A live run with a book that goes stale and recovers; returns its time span."""
    stack.create_topics()
    stack.start_worker(**FAST)
    started = int(time.time() * 1000)
    with Feeder(stack, lambda scope, seq: book(scope, seq)) as feeder:
        feeder.live = {"market:r1", "market:r2", "market:r3"}
        time.sleep(1.0)
        feeder.live = {"market:r2", "market:r3"}
        time.sleep(3.0)  # r1 stale after 2 s: alert + pause
        feeder.live = {"market:r1", "market:r2", "market:r3"}
        time.sleep(2.5)  # fresh again, the pause clears after the 1 s hold-down
    ended = int(time.time() * 1000)
    history = [p.paused for _, p in pauses_by_scope(stack).get("market:r1", [])]
    assert history == [True, False], "the live run must have paused and resumed r1"
    return started, ended


def test_replay_reproduces_live_decisions_twice_and_reports_a_difference(
        stack: Stack, tmp_path: Path) -> None:
    started, ended = _record_live_window(stack)
    progress: list[tuple[int, int]] = []

    def replay(prefix: str) -> ReplayRun:
        return run_replay(stack.bootstrap, stack.prefix, prefix, ["health.events"],
                          parse_bound(_iso(started)), parse_bound(_iso(ended)), tmp_path,
                          on_stage=lambda _: None,
                          on_progress=lambda done, total: progress.append((done, total)),
                          worker_settings=FAST)

    first = replay(f"{stack.prefix}replay-a.")
    assert first.comparison.identical, first.comparison
    assert first.comparison.matched["control.pauses"] == 2
    assert first.comparison.matched["monitor.alerts"] == 2
    assert progress and progress[-1][0] == progress[-1][1] == first.window.size

    second = replay(f"{stack.prefix}replay-b.")
    assert second.replay.by_kind == first.replay.by_kind, "same window, same output"

    # A live decision the replay cannot reproduce is reported, with its id.
    injected = alert_envelope(
        alert_id="alert-injected", status=AlertStatus.FIRING, scope="market:r2",
        reason_code="RISK_STALE_BOOK", metric="staleness_s", value=9.0, threshold=2.0,
        window_s=None, message="injected", source="test", observed_ms=started + 500,
        event_time_ms=started, config_version="x")
    stack.send_raw("monitor.alerts", [(injected.dedup_key.encode(),
                                       CODECS["ReportEnvelope"].encode_record(injected))])
    third = replay(f"{stack.prefix}replay-c.")
    assert not third.comparison.identical
    assert list(third.comparison.only_live["monitor.alerts"]) == ["alert-injected"]
    assert not any(third.comparison.only_replay.values())


def test_replay_cli_reports_bad_windows_with_exit_2(stack: Stack) -> None:
    stack.create_topics()
    env = {**os.environ, **stack.env()}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "streams", "replay", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    backwards = cli("--from", "2026-11-23T10:00:00", "--to", "2026-11-23T09:00:00")
    assert backwards.returncode == 2 and "is not before" in backwards.stderr
    empty = cli("--from", "0", "--to", "10")
    assert empty.returncode == 2 and "holds no messages" in empty.stderr
    unknown = cli("--from", "0", "--to", "10", "--topics", "no.such")
    assert unknown.returncode == 2 and "unknown input topic(s): no.such" in unknown.stderr
    garbage = cli("--from", "yesterday", "--to", "10")
    assert garbage.returncode == 2 and "neither an offset nor an ISO-8601 time" in garbage.stderr
    with pytest.raises(ReplayError, match="holds no messages"):
        resolve_window(stack.bootstrap, stack.prefix, ["health.events"], 0, 100)
