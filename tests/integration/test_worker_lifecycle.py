"""A real worker process: it publishes its own liveness, stops cleanly on SIGTERM, and
stops within its bound even when the broker is gone."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from streams.processes import alive, descendants
from tests.conftest import Stack, start_test_broker

pytestmark = pytest.mark.integration


def test_worker_publishes_its_heartbeat_and_stops_on_sigterm(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(worker_id="beating-1", monitor_heartbeat_interval_s=0.2)
    # The topic is compacted by worker id, but until compaction runs every beat is there.
    beats = stack.read_records("monitor.heartbeat", max_messages=3, idle_timeout_s=20)
    assert [b.worker_id for b in beats] == ["beating-1"] * 3
    assert all(b.time_ms >= b.started_ms for b in beats)
    assert beats[0].time_ms < beats[1].time_ms < beats[2].time_ms

    process = worker.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def test_worker_stops_within_its_bound_when_the_broker_is_gone(tmp_path: Path) -> None:
    own_broker = start_test_broker(tmp_path / "broker")
    stack = Stack(own_broker.bootstrap, "lonely.", tmp_path, own_broker.engine)
    try:
        stack.create_topics()
        worker = stack.start_worker(shutdown_timeout_s=5)
        own_broker.stop()
        time.sleep(1.0)
        process = worker.process
        assert process is not None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("worker ignored its shutdown bound with the broker gone")
        assert time.monotonic() - started < 20
    finally:
        stack.stop()
        own_broker.stop()


def test_worker_stops_cleanly_on_sighup_leaving_nothing_behind(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(worker_id="hung-up", shutdown_timeout_s=10)
    process = worker.process
    assert process is not None
    children = descendants(process.pid)
    started = time.monotonic()
    process.send_signal(signal.SIGHUP)  # a closed terminal, a supervisor's hang-up
    assert process.wait(timeout=15) == 0, worker.log_tail()
    took_s = time.monotonic() - started
    assert took_s < 10, f"stopped after {took_s:.1f} s"
    assert not [pid for pid in children if alive(pid)]
    assert "polymon worker: shutdown took over" not in worker.log_tail()
