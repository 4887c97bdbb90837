"""SLO compliance, error-budget burn rates and multi-window, multi-burn-rate alerts.

Conventions
-----------
- Counts are non-negative real numbers (usually ints); ``healthy <= total``.
- An empty window (``total == 0``) has no compliance and no burn rate: the functions
  return ``None`` rather than pretending the window was perfect (``1.0``).
- ``target`` is the SLO objective, a fraction in the open interval (0, 1), e.g. 0.995.
- Burn rate is ``(1 − compliance) / (1 − target)``: 1.0 spends the error budget exactly
  over the SLO period, 14.4 spends 2 % of a 30-day budget in one hour.

Alerting follows the multi-window, multi-burn-rate recipe of the Google SRE workbook
(chapter "Alerting on SLOs"): a rule fires when both its long and its short window burn
at least at the rule's rate. The short window makes the alert reset quickly once the
problem is fixed; the long window keeps a short blip from paging anyone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real

__all__ = [
    "DEFAULT_BURN_RULES",
    "DEFAULT_MIN_EVENTS",
    "BurnRule",
    "BurnVerdict",
    "burn_rate",
    "is_slo_met",
    "multiwindow_burn",
    "slo_compliance",
]

#: A window with fewer events than this cannot make a rule fire (low-traffic guard):
#: one failed request out of three is a 67 % error rate but not an incident.
DEFAULT_MIN_EVENTS = 10

# Relative tolerance for "burn rate >= threshold". Decimal targets such as 0.999 are not
# exact in binary, so 144 errors in 10,000 requests at 99.9 % computes as 14.39999...
# instead of 14.4; without the tolerance a burn exactly at threshold would not fire.
_THRESHOLD_REL_TOL = 1e-9


def _check_count(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    if math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")


def _check_counts(healthy: float, total: float) -> None:
    _check_count("healthy", healthy)
    _check_count("total", total)
    if healthy > total:
        raise ValueError(f"healthy ({healthy}) must not exceed total ({total})")


def _check_target(target: float) -> None:
    if isinstance(target, bool) or not isinstance(target, Real) or math.isnan(target):
        raise ValueError(f"target must be a real number in (0, 1), got {target!r}")
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be in the open interval (0, 1), got {target}")


def slo_compliance(healthy: float, total: float) -> float | None:
    """Fraction of healthy events in a window: ``healthy / total``.

    Returns ``None`` for an empty window (``total == 0``): no traffic is not the same
    as perfect traffic. Raises ``ValueError`` for NaN, infinite or negative counts and
    for ``healthy > total``.
    """
    _check_counts(healthy, total)
    if total == 0:
        return None
    return healthy / total


def is_slo_met(healthy: float, total: float, target: float) -> bool | None:
    """Whether compliance reaches the target (``compliance >= target``).

    ``None`` for an empty window. Example: 99,640 healthy of 100,000 is 0.9964, which
    meets a 0.995 target; 99,440 of 100,000 (0.9944) does not.
    """
    _check_target(target)
    compliance = slo_compliance(healthy, total)
    if compliance is None:
        return None
    return compliance >= target


def burn_rate(healthy: float, total: float, target: float) -> float | None:
    """Error-budget burn rate ``(1 − compliance) / (1 − target)``.

    Computed as ``((total − healthy) / total) / (1 − target)`` so a perfect window is
    exactly 0.0 and the rate is monotone non-decreasing in the number of errors.
    ``None`` for an empty window; ``ValueError`` for bad counts or a target outside (0, 1).
    """
    _check_target(target)
    _check_counts(healthy, total)
    if total == 0:
        return None
    error_ratio = (total - healthy) / total
    return error_ratio / (1.0 - target)


@dataclass(frozen=True, slots=True)
class BurnRule:
    """One multi-window burn-rate alert rule.

    The rule fires when the burn rate over ``long_window_s`` *and* over
    ``short_window_s`` are both ``>= burn_rate_threshold`` (see :func:`multiwindow_burn`).
    """

    name: str
    long_window_s: int
    short_window_s: int
    burn_rate_threshold: float
    severity: str

    def __post_init__(self) -> None:
        for label, window in (
            ("long_window_s", self.long_window_s),
            ("short_window_s", self.short_window_s),
        ):
            if isinstance(window, bool) or not isinstance(window, int) or window <= 0:
                raise ValueError(
                    f"rule {self.name!r}: {label} must be a positive int, got {window!r}"
                )
        if self.short_window_s >= self.long_window_s:
            raise ValueError(
                f"rule {self.name!r}: short_window_s ({self.short_window_s}) must be shorter "
                f"than long_window_s ({self.long_window_s})"
            )
        threshold = self.burn_rate_threshold
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, Real)
            or not math.isfinite(threshold)
            or threshold <= 0
        ):
            raise ValueError(
                f"rule {self.name!r}: burn_rate_threshold must be a positive finite number, "
                f"got {threshold!r}"
            )


_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

#: The SRE workbook's recommended rules for a 30-day SLO, most urgent first:
#: 14.4× over 1 h and 5 m (2 % of budget in 1 h) pages, 6× over 6 h and 30 m (5 % of
#: budget in 6 h) pages, 1× over 3 d and 6 h (10 % of budget in 3 d) opens a ticket.
DEFAULT_BURN_RULES: tuple[BurnRule, ...] = (
    BurnRule("page_fast_burn", _HOUR, 5 * _MINUTE, 14.4, "page"),
    BurnRule("page_slow_burn", 6 * _HOUR, 30 * _MINUTE, 6.0, "page"),
    BurnRule("ticket_burn", 3 * _DAY, 6 * _HOUR, 1.0, "ticket"),
)


@dataclass(frozen=True, slots=True)
class BurnVerdict:
    """Outcome of :func:`multiwindow_burn`.

    Attributes:
        firing: the first firing rule in rule order (the most urgent, given rules ordered
            most urgent first), or ``None`` when nothing fires.
        firing_rules: every firing rule, in rule order.
        burn_rates: burn rate per window length in seconds, for every window supplied;
            ``None`` for an empty window. Lets an alert explain itself.
        event_counts: total events per window length in seconds.
        low_traffic_windows: windows used by some rule whose event count was below
            ``min_events``, sorted; such windows cannot make a rule fire.
        target: the SLO target the rates were computed against.
        min_events: the low-traffic guard that was applied.
    """

    firing: BurnRule | None
    firing_rules: tuple[BurnRule, ...]
    burn_rates: Mapping[int, float | None]
    event_counts: Mapping[int, float]
    low_traffic_windows: tuple[int, ...]
    target: float
    min_events: float = DEFAULT_MIN_EVENTS

    @property
    def fires(self) -> bool:
        """Whether any rule fires."""
        return self.firing is not None

    @property
    def severity(self) -> str | None:
        """Severity of the firing rule, or ``None``."""
        return None if self.firing is None else self.firing.severity


def _reaches(rate: float | None, threshold: float) -> bool:
    if rate is None:
        return False
    return rate >= threshold or math.isclose(rate, threshold, rel_tol=_THRESHOLD_REL_TOL)


def multiwindow_burn(
    windows: Mapping[int, tuple[float, float]],
    target: float,
    rules: Sequence[BurnRule] = DEFAULT_BURN_RULES,
    min_events: float = DEFAULT_MIN_EVENTS,
) -> BurnVerdict:
    """Evaluate multi-window burn-rate rules over per-window ``(healthy, total)`` counts.

    Args:
        windows: window length in seconds → ``(healthy, total)`` counts over that window,
            e.g. ``{3600: (h, t), 300: (h, t), ...}``. Must contain every window named by
            ``rules``; extra windows are allowed and reported in ``burn_rates``.
        target: SLO target in (0, 1).
        rules: rules in priority order (most urgent first); defaults to
            :data:`DEFAULT_BURN_RULES`.
        min_events: low-traffic guard; a window with fewer events than this cannot make a
            rule fire. 0 disables the guard (an empty window still never fires).

    A rule fires iff, for both its long and short window, the event count is at least
    ``min_events`` and the burn rate is ``>= burn_rate_threshold`` (``>=`` so a burn at
    exactly the designed rate alerts; compared with a 1e-9 relative tolerance to absorb
    binary rounding of decimal targets). ``firing`` is the first firing rule in rule order.

    Raises:
        ValueError: bad target, bad counts, a negative or NaN ``min_events``, or a window
            required by a rule missing from ``windows`` (the message names the window
            and the rule).
    """
    _check_target(target)
    _check_count("min_events", min_events)
    for rule in rules:
        if not isinstance(rule, BurnRule):
            raise ValueError(f"rules must contain BurnRule instances, got {rule!r}")
        for window in (rule.long_window_s, rule.short_window_s):
            if window not in windows:
                raise ValueError(
                    f"window {window}s required by rule {rule.name!r} is missing from windows "
                    f"(have {sorted(windows)})"
                )

    burn_rates: dict[int, float | None] = {}
    event_counts: dict[int, float] = {}
    for window, counts in windows.items():
        try:
            healthy, total = counts
        except (TypeError, ValueError):
            raise ValueError(
                f"window {window}s must map to a (healthy, total) pair, got {counts!r}"
            ) from None
        try:
            burn_rates[window] = burn_rate(healthy, total, target)
        except ValueError as error:
            raise ValueError(f"window {window}s: {error}") from None
        event_counts[window] = total

    used_windows = {w for rule in rules for w in (rule.long_window_s, rule.short_window_s)}
    low_traffic = tuple(sorted(w for w in used_windows if event_counts[w] < min_events))

    def window_fires(window: int, threshold: float) -> bool:
        return event_counts[window] >= min_events and _reaches(burn_rates[window], threshold)

    firing_rules = tuple(
        rule
        for rule in rules
        if window_fires(rule.long_window_s, rule.burn_rate_threshold)
        and window_fires(rule.short_window_s, rule.burn_rate_threshold)
    )
    return BurnVerdict(
        firing=firing_rules[0] if firing_rules else None,
        firing_rules=firing_rules,
        burn_rates=burn_rates,
        event_counts=event_counts,
        low_traffic_windows=low_traffic,
        target=target,
        min_events=min_events,
    )
