"""The in-process handler benchmark (ops/bench_handlers.py), as a developer runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
SCRIPT = Path(__file__).resolve().parents[2] / "ops" / "bench_handlers.py"


def bench_handlers(*args: str, env: dict[str, str] | None = None,
                   ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, timeout=300, env=env)


def test_it_prints_the_cost_per_event_of_every_topic() -> None:
    done = bench_handlers("--events", "2000", "--scopes", "50", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    best = re.search(r"best this: +([\d.]+) µs per input event +\((.*)\)", done.stdout)
    assert best, done.stdout
    assert float(best[1]) > 0
    figures = dict(part.rsplit(" ", 1) for part in best[2].split(", "))
    # every input topic of the mix was handled, the fills came back re-keyed, and the
    # table changes were encoded as changelog records
    assert set(figures) == {"health.events", "exec.fills", "model.features",
                            "model.scores", "rekeyed", "changelogs"}
    assert all(float(us) > 0 for us in figures.values())


def test_bad_arguments_are_refused_with_the_reason() -> None:
    done = bench_handlers("--events", "10")
    assert done.returncode == 2
    assert "--events must be at least 2000" in done.stderr
    done = bench_handlers("--events", "2000", "--flush-every", "0")
    assert done.returncode == 2
    assert "--flush-every at least 1" in done.stderr
    done = bench_handlers("--events", "2000", "--baseline", "no-such-revision")
    assert done.returncode == 2
    assert "--baseline no-such-revision" in done.stderr
    done = bench_handlers("--instructions", env={**os.environ, "PATH": "/nonexistent"})
    assert done.returncode == 2
    assert "--instructions needs valgrind on PATH" in done.stderr


def test_it_counts_the_instructions_per_event_with_valgrind() -> None:
    """The deterministic figure for a noisy machine (.ci/run installs valgrind)."""
    done = bench_handlers("--instructions", "--events", "2000", "--scopes", "50")
    assert done.returncode == 0, done.stderr
    counted = re.search(r"this: +([\d,]+) instructions per input event", done.stdout)
    assert counted, done.stdout
    # tens of thousands: the handlers ran (a mix-only run would leave about nothing)
    assert 10_000 < int(counted[1].replace(",", "")) < 1_000_000
