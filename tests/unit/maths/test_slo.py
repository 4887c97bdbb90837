from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.maths.slo import (
    DEFAULT_BURN_RULES,
    BurnRule,
    burn_rate,
    is_slo_met,
    multiwindow_burn,
    slo_compliance,
)

HOUR = 3600
ALL_DEFAULT_WINDOWS = (3600, 300, 21600, 1800, 259200)


def healthy_windows(total: int = 100_000) -> dict[int, tuple[int, int]]:
    return {window: (total, total) for window in ALL_DEFAULT_WINDOWS}


# --- worked examples -------------------------------------------------------------------


def test_seed_example_compliant_at_0995() -> None:
    assert slo_compliance(99_640, 100_000) == pytest.approx(0.9964)
    assert is_slo_met(99_640, 100_000, 0.995) is True
    assert burn_rate(99_640, 100_000, 0.995) == pytest.approx(0.72)


def test_seed_example_burning_at_0995() -> None:
    assert slo_compliance(99_440, 100_000) == pytest.approx(0.9944)
    assert is_slo_met(99_440, 100_000, 0.995) is False
    rate = burn_rate(99_440, 100_000, 0.995)
    assert rate == pytest.approx((1 - 0.9944) / (1 - 0.995))
    assert rate == pytest.approx(1.12)
    assert rate > 1.0


def test_compliance_exactly_at_target_is_met() -> None:
    assert is_slo_met(995, 1000, 0.995) is True


def test_perfect_window_burns_nothing() -> None:
    assert slo_compliance(10, 10) == 1.0
    assert burn_rate(10, 10, 0.999) == 0.0


# --- empty windows and bad input ------------------------------------------------------


def test_empty_window_is_none_not_perfect() -> None:
    assert slo_compliance(0, 0) is None
    assert is_slo_met(0, 0, 0.995) is None
    assert burn_rate(0, 0, 0.995) is None


@pytest.mark.parametrize(
    ("healthy", "total", "message"),
    [
        (-1, 10, r"healthy must be non-negative, got -1"),
        (1, -10, r"total must be non-negative, got -10"),
        (11, 10, r"healthy \(11\) must not exceed total \(10\)"),
        (math.nan, 10, r"healthy must not be NaN"),
        (1, math.nan, r"total must not be NaN"),
        (1, math.inf, r"total must be finite"),
        ("1", 10, r"healthy must be a real number"),
        (True, 10, r"healthy must be a real number"),
    ],
)
def test_bad_counts_raise(healthy: float, total: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        slo_compliance(healthy, total)
    with pytest.raises(ValueError, match=message):
        burn_rate(healthy, total, 0.99)


@pytest.mark.parametrize("target", [0.0, 1.0, -0.5, 1.5, math.nan])
def test_target_outside_open_unit_interval_raises(target: float) -> None:
    with pytest.raises(ValueError, match=r"target must be"):
        burn_rate(1, 1, target)
    with pytest.raises(ValueError, match=r"target must be"):
        is_slo_met(1, 1, target)


# --- multi-window burn ---------------------------------------------------------------


def test_default_rules_are_the_sre_workbook_rules() -> None:
    summary = [
        (r.long_window_s, r.short_window_s, r.burn_rate_threshold, r.severity)
        for r in DEFAULT_BURN_RULES
    ]
    assert summary == [
        (3600, 300, 14.4, "page"),
        (21600, 1800, 6.0, "page"),
        (259200, 21600, 1.0, "ticket"),
    ]


def test_nothing_fires_when_healthy() -> None:
    verdict = multiwindow_burn(healthy_windows(), 0.999)
    assert verdict.firing is None
    assert not verdict.fires
    assert verdict.severity is None
    assert verdict.firing_rules == ()
    assert verdict.burn_rates == {w: 0.0 for w in ALL_DEFAULT_WINDOWS}


def test_fast_burn_pages_when_both_windows_burn() -> None:
    windows = healthy_windows(10_000)
    windows[3600] = (9_800, 10_000)  # 2 % errors at 99.9 % = 20×
    windows[300] = (800, 1_000)  # 20 % errors = 200×
    verdict = multiwindow_burn(windows, 0.999)
    assert verdict.firing is DEFAULT_BURN_RULES[0]
    assert verdict.severity == "page"
    assert verdict.burn_rates[3600] == pytest.approx(20.0)
    assert verdict.burn_rates[300] == pytest.approx(200.0)


def test_long_window_alone_does_not_fire() -> None:
    # The problem is over: the short window has recovered, so the alert resets.
    windows = healthy_windows(10_000)
    windows[3600] = (9_800, 10_000)
    verdict = multiwindow_burn(windows, 0.999)
    assert verdict.firing is None
    assert verdict.burn_rates[3600] == pytest.approx(20.0)


def test_short_blip_alone_does_not_fire() -> None:
    windows = healthy_windows(10_000)
    windows[300] = (0, 1_000)
    assert multiwindow_burn(windows, 0.999).firing is None


def test_burn_exactly_at_threshold_fires() -> None:
    # 144 errors in 10,000 at 99.9 % is 14.4× in decimal; binary rounding gives 14.3999…
    windows = healthy_windows(10_000)
    windows[3600] = (10_000 - 144, 10_000)
    windows[300] = (10_000 - 144, 10_000)
    verdict = multiwindow_burn(windows, 0.999)
    assert verdict.firing is DEFAULT_BURN_RULES[0]


def test_burn_just_below_threshold_does_not_fire() -> None:
    windows = healthy_windows(100_000)
    windows[3600] = (100_000 - 1_439, 100_000)  # 14.39×
    windows[300] = (100_000 - 1_439, 100_000)
    assert multiwindow_burn(windows, 0.999).firing is None


def test_most_urgent_firing_rule_wins_and_all_are_listed() -> None:
    windows = {w: (0, 1_000) for w in ALL_DEFAULT_WINDOWS}  # everything on fire
    verdict = multiwindow_burn(windows, 0.999)
    assert verdict.firing is DEFAULT_BURN_RULES[0]
    assert verdict.firing_rules == DEFAULT_BURN_RULES


def test_slow_burn_pages_and_ticket_rule_tickets() -> None:
    windows = healthy_windows(100_000)
    windows[21600] = (99_300, 100_000)  # 7×
    windows[1800] = (99_300, 100_000)
    verdict = multiwindow_burn(windows, 0.999)
    assert verdict.firing is not None
    assert verdict.firing.name == "page_slow_burn"

    windows = healthy_windows(100_000)
    windows[259200] = (99_850, 100_000)  # 1.5×
    windows[21600] = (99_850, 100_000)
    verdict = multiwindow_burn(windows, 0.999)
    assert verdict.firing is not None
    assert verdict.firing.name == "ticket_burn"
    assert verdict.severity == "ticket"


def test_min_events_guard_silences_low_traffic() -> None:
    windows = healthy_windows(10_000)
    windows[3600] = (1, 3)  # 67 % errors, but only 3 requests
    windows[300] = (0, 2)
    verdict = multiwindow_burn(windows, 0.999, min_events=10)
    assert verdict.firing is None
    assert verdict.low_traffic_windows == (300, 3600)
    assert verdict.burn_rates[300] == pytest.approx(1000.0)
    # Without the guard the same traffic pages.
    assert multiwindow_burn(windows, 0.999, min_events=0).firing is DEFAULT_BURN_RULES[0]


def test_empty_window_never_fires_and_reports_none() -> None:
    windows = healthy_windows(10_000)
    windows[300] = (0, 0)
    verdict = multiwindow_burn(windows, 0.999, min_events=0)
    assert verdict.burn_rates[300] is None
    assert verdict.firing is None


def test_missing_window_names_window_and_rule() -> None:
    windows = healthy_windows()
    del windows[1800]
    with pytest.raises(ValueError, match=r"window 1800s required by rule 'page_slow_burn'"):
        multiwindow_burn(windows, 0.999)


def test_bad_window_counts_name_the_window() -> None:
    windows = healthy_windows()
    windows[300] = (11, 10)
    with pytest.raises(ValueError, match=r"window 300s: healthy \(11\) must not exceed"):
        multiwindow_burn(windows, 0.999)
    windows[300] = (1, 2, 3)  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"window 300s must map to a \(healthy, total\) pair"):
        multiwindow_burn(windows, 0.999)


def test_custom_rules() -> None:
    rule = BurnRule(
        "fast", long_window_s=600, short_window_s=60, burn_rate_threshold=2.0, severity="page"
    )
    verdict = multiwindow_burn({600: (90, 100), 60: (9, 10)}, 0.95, rules=[rule])
    assert verdict.firing == rule
    assert verdict.burn_rates == {600: pytest.approx(2.0), 60: pytest.approx(2.0)}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"long_window_s": 60, "short_window_s": 600}, r"short_window_s \(600\) must be shorter"),
        ({"long_window_s": 0, "short_window_s": 60}, r"long_window_s must be a positive int"),
        ({"burn_rate_threshold": math.nan}, r"burn_rate_threshold must be a positive finite"),
        ({"burn_rate_threshold": 0}, r"burn_rate_threshold must be a positive finite"),
    ],
)
def test_bad_rules_raise(kwargs: dict[str, float], message: str) -> None:
    fields = {"long_window_s": 600, "short_window_s": 60, "burn_rate_threshold": 1.0}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        BurnRule("r", severity="page", **fields)  # type: ignore[arg-type]


def test_bad_min_events_raises() -> None:
    with pytest.raises(ValueError, match=r"min_events must not be NaN"):
        multiwindow_burn(healthy_windows(), 0.999, min_events=math.nan)


# --- properties -----------------------------------------------------------------------

targets = st.floats(min_value=0.5, max_value=0.99999)


@settings(max_examples=200, deadline=None)
@given(total=st.integers(min_value=1, max_value=10**9), data=st.data())
def test_compliance_is_in_unit_interval(total: int, data: st.DataObject) -> None:
    healthy = data.draw(st.integers(min_value=0, max_value=total))
    compliance = slo_compliance(healthy, total)
    assert compliance is not None
    assert 0.0 <= compliance <= 1.0


@settings(max_examples=200, deadline=None)
@given(total=st.integers(min_value=1, max_value=10**9), target=targets, data=st.data())
def test_burn_rate_monotone_in_errors(total: int, target: float, data: st.DataObject) -> None:
    fewer = data.draw(st.integers(min_value=0, max_value=total))
    more = data.draw(st.integers(min_value=fewer, max_value=total))
    rate_fewer = burn_rate(total - fewer, total, target)
    rate_more = burn_rate(total - more, total, target)
    assert rate_fewer is not None and rate_more is not None
    assert 0.0 <= rate_fewer <= rate_more


@settings(max_examples=200, deadline=None)
@given(total=st.integers(min_value=1, max_value=10**9), target=targets, data=st.data())
def test_burn_rate_matches_definition(total: int, target: float, data: st.DataObject) -> None:
    healthy = data.draw(st.integers(min_value=0, max_value=total))
    compliance = slo_compliance(healthy, total)
    assert compliance is not None
    expected = (1 - compliance) / (1 - target)
    assert burn_rate(healthy, total, target) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    errors_long=st.integers(min_value=0, max_value=10_000),
    errors_short=st.integers(min_value=0, max_value=10_000),
)
def test_more_errors_never_silence_an_alert(errors_long: int, errors_short: int) -> None:
    total = 10_000
    windows = healthy_windows(total)
    windows[3600] = (total - errors_long, total)
    windows[300] = (total - errors_short, total)
    fired = multiwindow_burn(windows, 0.999).firing is not None
    windows[3600] = (max(0, total - errors_long - 100), total)
    windows[300] = (max(0, total - errors_short - 100), total)
    assert multiwindow_burn(windows, 0.999).firing is not None or not fired
