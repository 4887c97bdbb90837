"""The fault suite: workers killed, brokers restarted, garbage in the stream. Each
scenario asserts counts (expected vs seen). ``--soak-seconds N`` stretches the
streaming phases for a longer soak run."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak-seconds", type=float, default=0.0,
                     help="extra seconds of streaming in each fault scenario (soak mode)")


@pytest.fixture
def soak_s(request: pytest.FixtureRequest) -> float:
    return float(request.config.getoption("--soak-seconds"))


_FIGURES: list[str] = []


@pytest.fixture
def figures() -> list[str]:
    """Lines of measured figures (recovery times, decisions expected/seen), printed at the
    end of the run for the issue note and docs/benchmarks."""
    return _FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES:
        terminalreporter.section("fault figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
