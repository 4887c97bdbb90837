"""A stopped polymon command leaves nothing running: SIGTERM or SIGHUP to the command's own
PID (as a supervisor sends it, not to its process group) stops every process it started
within a bound, and SIGKILL of the command takes its children down with it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.processes import alive, descendants
from tests.conftest import Stack, engine_under_test, wait_until

pytestmark = pytest.mark.e2e

STOP_BOUND_S = 30.0  # a worker's shutdown bound (10 s) and a broker's (20 s), in parallel
ORPHAN_BOUND_S = 5.0


class Command:
    """A `polymon` subprocess in its own session (so no signal reaches it but ours), with
    its output in a file."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        self.log_path = tmp_path / "command.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", *args], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200", **env},
                start_new_session=True)
        self.pid = self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], object], timeout_s: float, what: str) -> None:
        def met() -> object:
            if self.process.poll() is not None:
                pytest.fail(f"the command exited ({self.process.returncode}) before {what}:\n"
                            f"{self.output()[-3000:]}")
            return condition()

        wait_until(met, timeout_s, what=what)

    def kill_all(self) -> None:
        """Cleanup after a failed test: the command and whatever it started, by PID."""
        for pid in [*descendants(self.pid), self.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def commands() -> Iterator[list[Command]]:
    started: list[Command] = []
    yield started
    for command in started:
        command.kill_all()


def stop_and_measure(command: Command, sig: signal.Signals) -> tuple[float, set[int]]:
    """Send ``sig`` to the command alone; seconds until it and every process it had started
    are gone, and any still alive at the bound."""
    children = descendants(command.pid)
    assert children, "the command had started no process"
    sent = time.monotonic()
    os.kill(command.pid, sig)
    bound = STOP_BOUND_S if sig != signal.SIGKILL else ORPHAN_BOUND_S
    deadline = sent + bound
    while time.monotonic() < deadline:
        if command.process.poll() is not None and not any(alive(pid) for pid in children):
            return time.monotonic() - sent, set()
        time.sleep(0.05)
    command.process.poll()
    return time.monotonic() - sent, {pid for pid in children if alive(pid)}


def engines() -> list[str]:
    return ["embedded", "kafka"] if engine_under_test() == "kafka" else ["embedded"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL],
                         ids=["SIGTERM", "SIGHUP", "SIGKILL"])
@pytest.mark.parametrize("engine", engines())
def test_broker_command_leaves_no_broker_running(
        tmp_path: Path, commands: list[Command], engine: str, sig: signal.Signals) -> None:
    command = Command(tmp_path, "broker", "--engine", engine, "--port", "0", "--data-dir",
                      str(tmp_path / "data"))
    commands.append(command)
    command.wait_for(lambda: "export POLYMON_KAFKA_BOOTSTRAP=" in command.output(), 90,
                     "the broker is ready")
    took_s, left = stop_and_measure(command, sig)
    assert not left, f"{sig.name}: still running after {took_s:.1f} s: {left}"
    print(f"\nbroker --engine {engine}, {sig.name}: everything stopped in {took_s:.2f} s")


def test_demo_keep_running_stops_everything_on_sigterm(
        tmp_path: Path, commands: list[Command]) -> None:
    command = Command(tmp_path, "demo", "--duration", "20", "--seed", "4", "--keep-running",
                      POLYMON_STATE_DIR=str(tmp_path / "state"))
    commands.append(command)
    command.wait_for(lambda: "stack stays up" in command.output(), 240, "the demo's summary")
    assert len(descendants(command.pid)) >= 3, "broker and two workers"
    took_s, left = stop_and_measure(command, signal.SIGTERM)
    assert not left, f"still running {took_s:.1f} s after SIGTERM: {left}"
    assert "stopping what the demo started" in command.output() or command.process.returncode
    print(f"\ndemo --keep-running, SIGTERM: everything stopped in {took_s:.2f} s")


def test_demo_killed_takes_its_stack_with_it(tmp_path: Path, commands: list[Command]) -> None:
    command = Command(tmp_path, "demo", "--duration", "20", "--seed", "4",
                      POLYMON_STATE_DIR=str(tmp_path / "state"))
    commands.append(command)
    command.wait_for(lambda: len(descendants(command.pid)) >= 3, 120,
                     "the broker and both workers running")
    took_s, left = stop_and_measure(command, signal.SIGKILL)
    assert not left, f"orphans {took_s:.1f} s after SIGKILL of the demo: {left}"
    print(f"\ndemo, SIGKILL: its broker and workers gone in {took_s:.2f} s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_replay_stops_its_worker(stack: Stack, tmp_path: Path, commands: list[Command],
                                 sig: signal.Signals) -> None:
    from tests.integration.test_health_agents import book

    stack.create_topics()
    stack.send_records("health.events", [book("market:q1", n) for n in range(1, 50)])
    command = Command(tmp_path, "replay", "--from", "0", "--to", "49",
                      "--prefix", f"{stack.prefix}stop{sig.name}.",
                      **stack.env())
    commands.append(command)
    command.wait_for(lambda: descendants(command.pid), 60, "the replay's worker started")
    took_s, left = stop_and_measure(command, sig)
    assert not left, f"{sig.name}: still running after {took_s:.1f} s: {left}"
    print(f"\nreplay, {sig.name}: everything stopped in {took_s:.2f} s")
