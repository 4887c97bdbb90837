"""The benchmark's pure helpers: load pacing and percentiles."""

from __future__ import annotations

from streams.bench import _owed, _percentile


def test_pacing_owes_what_the_rate_has_accrued() -> None:
    assert _owed(10_000, 0.0, 0, 2000) == 0
    assert _owed(10_000, 0.05, 0, 2000) == 500
    assert _owed(10_000, 0.10, 500, 2000) == 500


def test_a_late_tick_catches_up_within_the_cap() -> None:
    assert _owed(10_000, 0.12, 500, 2000) == 700  # 20 ms late: the missing 200 go too
    assert _owed(10_000, 1.0, 0, 2000) == 2000  # a long stall is not one huge burst
    assert _owed(10_000, 0.1, 1500, 2000) == 0  # ahead: nothing owed


def test_percentiles_pick_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert _percentile(values, 0.5) == 51.0
    assert _percentile(values, 0.99) == 99.0
    assert _percentile([], 0.5) is None
