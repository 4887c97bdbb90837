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
