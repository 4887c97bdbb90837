"""Execution quality of one scope (a market, a bot, a model's cohort): fill ratio and
slippage error over a tumbling and a hopping window, and the alerts their bounds raise.

Pure: state is a plain JSON-able dict, time is passed in. Fills are summed into time
buckets (one bucket size for every window: the gcd of the window sizes and the hop),
so memory is bounded by the longest window, not by the fill rate, and a window's
figures are sums of its buckets:

- fill ratio = Σ filled / Σ requested over the window's FILL events (quantity-weighted,
  as :func:`streams.maths.execution.fill_ratio` on the same fills). A FILL event is the
  execution report of one order: its requested size and what was filled (0 for an
  order that filled nothing). INTENT events are counted, not part of the ratio.
- slippage error (realized − predicted, bps) over FILL events carrying both: mean and
  RMSE from Σe and Σe², the same figures :func:`streams.maths.execution.slippage_error`
  computes from the list of errors.

A window is ``[end − size, end)`` with ``end`` the next multiple of its hop after now:
a tumbling window is the hopping window whose hop is its size. The tumbling window
judged is the last *completed* one (the one in progress is nearly empty right after it
rolls over); the hopping window judged is the one in progress (it always reaches a
full window size back, less one hop).

Each window gives a verdict per bound (streams.control.alerts): a breach, within the
resolve threshold (clear), in between, or unknown when it has fewer than ``min_fills``
fills. Unknown keeps the alert's state. A rule's alert fires when a breach has lasted
its ``for`` and resolves when every known window has been clear for its
``keep_firing_for``; a breach in between is the same episode, with the same alert id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.control.alerts import (
    BREACH,
    UNKNOWN,
    AlertRule,
    AlertTransition,
    Condition,
    combine,
    hysteresis,
    step_alert,
    timers_running,
)
from streams.maths.execution import SlippageError, fill_ratio

SLIPPAGE_BREACH = "EXEC_SLIPPAGE_BREACH"
FILL_RATIO_LOW = "EXEC_FILL_RATIO_LOW"
# Bucket cells: intents, fills, Σrequested, Σfilled, fills with slippage, Σerror, Σerror².
_INTENTS, _FILLS, _REQUESTED, _FILLED, _SLIPPED, _ERR, _ERR_SQ = range(7)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A window of ``size_ms`` that advances every ``hop_ms`` (tumbling: hop == size)."""

    name: str
    size_ms: int
    hop_ms: int
    completed: bool = False  # judge the last completed window, not the one in progress

    def __post_init__(self) -> None:
        if self.size_ms <= 0 or self.hop_ms <= 0 or self.hop_ms > self.size_ms:
            raise ValueError(f"window {self.name}: need 0 < hop ({self.hop_ms} ms) <= size "
                             f"({self.size_ms} ms)")

    def bounds(self, now_ms: int) -> tuple[int, int]:
        """[start, end) of the window that contains ``now_ms``'s hop."""
        end = now_ms - now_ms % self.hop_ms + self.hop_ms
        return end - self.size_ms, end

    def judged(self, now_ms: int) -> tuple[int, int]:
        """[start, end) of the window judged at ``now_ms``."""
        return self.bounds(now_ms - self.hop_ms) if self.completed else self.bounds(now_ms)


def windows(tumbling_s: int, hopping_s: int, hop_s: int) -> tuple[WindowSpec, ...]:
    return (WindowSpec("tumbling", tumbling_s * 1000, tumbling_s * 1000, completed=True),
            WindowSpec("hopping", hopping_s * 1000, hop_s * 1000))


def bucket_ms(specs: Sequence[WindowSpec]) -> int:
    """The largest bucket every window's start and end fall on."""
    return math.gcd(*(v for spec in specs for v in (spec.size_ms, spec.hop_ms)))


@dataclass(frozen=True, slots=True)
class Bounds:
    """What counts as a breach; ``None`` switches a bound off."""

    slippage_rmse_bps: float | None
    slippage_mean_bps: float | None  # bound on |mean error|
    fill_ratio_min: float | None
    min_fills: int


@dataclass(frozen=True, slots=True)
class WindowFigures:
    window: str
    start_ms: int
    size_s: float
    intents: int
    fills: int
    fill_ratio: float | None
    slippage: SlippageError | None

    def as_dict(self) -> dict[str, Any]:
        slip = self.slippage
        return {"window": self.window, "start_ms": self.start_ms, "size_s": self.size_s,
                "intents": self.intents, "fills": self.fills, "fill_ratio": self.fill_ratio,
                "slippage_fills": slip.count if slip else 0,
                "slippage_mean_error_bps": slip.mean_error_bps if slip else None,
                "slippage_rmse_bps": slip.rmse_bps if slip else None}


def new_state(scope: str, partition: int) -> dict[str, Any]:
    return {"scope": scope, "partition": partition, "buckets": {}, "last_event_ms": 0,
            "alerts": {SLIPPAGE_BREACH: None, FILL_RATIO_LOW: None}, "figures": {},
            "tracks": {SLIPPAGE_BREACH: {}, FILL_RATIO_LOW: {}}}


def new_cell() -> list[Any]:
    return [0, 0, 0.0, 0.0, 0, 0.0, 0.0]


def count(cell: list[Any], fill: bool, requested: float, filled: float,
          predicted_bps: float | None, realized_bps: float | None) -> None:
    """Count one INTENT (``fill=False``) or FILL event into a bucket cell (positional
    arguments: it runs for every fill, once per scope, and keywords cost more)."""
    if not fill:
        cell[_INTENTS] += 1
        return
    cell[_FILLS] += 1
    cell[_REQUESTED] += requested
    cell[_FILLED] += filled
    if predicted_bps is not None and realized_bps is not None:
        error = realized_bps - predicted_bps
        cell[_SLIPPED] += 1
        cell[_ERR] += error
        cell[_ERR_SQ] += error * error


def observe(state: dict[str, Any], fill: bool, event_time_ms: int, requested: float,
            filled: float, predicted_bps: float | None, realized_bps: float | None,
            bucket: int) -> None:
    """Count one INTENT (``fill=False``) or FILL event into its time bucket. (Called
    positionally on the hot path: keywords into a compiled function cost more than
    counting.)"""
    start = str(event_time_ms - event_time_ms % bucket)
    cell = state["buckets"].get(start)
    if cell is None:
        cell = state["buckets"][start] = new_cell()
    state["last_event_ms"] = max(state["last_event_ms"], event_time_ms)
    state["window_ends"] = None  # the kept figures no longer count this fill
    count(cell, fill, requested, filled, predicted_bps, realized_bps)


def merge(state: dict[str, Any], start_ms: int, cell: Sequence[Any], last_event_ms: int,
          bucket: int) -> None:
    """Add a bucket cell summed elsewhere (a :class:`FillDigest`'s) into the state: the
    same figures as counting its fills here one by one (up to the order of the
    floating-point additions). ``start_ms`` is put on this scope's bucket grid."""
    start = str(start_ms - start_ms % bucket)
    mine = state["buckets"].get(start)
    if mine is None:
        state["buckets"][start] = [*cell]
    else:
        for column, value in enumerate(cell):
            mine[column] += value
    state["last_event_ms"] = max(state["last_event_ms"], last_event_ms)
    state["window_ends"] = None


class FillDigest:
    """The fills of one input batch bound for one bot or model scope: bucket cells per
    (cohort, bucket start) with the latest event time summed into each, and a model's
    canary samples column by column (what a ScopedFills record carries). One message
    per scope and batch replaces one re-keyed copy per fill: a bot trades thousands of
    markets, so its fills arrive from every partition at the rate of them all."""

    __slots__ = ("cells", "samples", "scope")

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.cells: dict[tuple[str | None, int], list[Any]] = {}  # -> [*cell, last event]
        # (cohort, model version) -> the columns of its FillSamples
        self.samples: dict[tuple[str, str | None], tuple[list[Any], ...]] = {}

    def add(self, cohort: str | None, event_time_ms: int, bucket: int, fill: bool,
            requested: float, filled: float, predicted_bps: float | None,
            realized_bps: float | None) -> None:
        """Count one INTENT (``fill=False``) or FILL event (as :func:`count`)."""
        start = event_time_ms - event_time_ms % bucket
        entry = self.cells.get((cohort, start))
        if entry is None:
            entry = self.cells[(cohort, start)] = [*new_cell(), event_time_ms]
        elif event_time_ms > entry[-1]:
            entry[-1] = event_time_ms
        count(entry, fill, requested, filled, predicted_bps, realized_bps)

    def add_sample(self, event_id: str, cohort: str, model_version: str | None,
                   event_time_ms: int, slippage_abs_error_bps: float | None,
                   fill_ratio: float | None) -> None:
        """A FILL's canary samples (:func:`streams.control.canary.fill_samples`)."""
        columns = self.samples.get((cohort, model_version))
        if columns is None:
            columns = self.samples[(cohort, model_version)] = ([], [], [], [])
        ids, times, slippage, ratios = columns
        ids.append(event_id)
        times.append(event_time_ms)
        slippage.append(math.nan if slippage_abs_error_bps is None else slippage_abs_error_bps)
        ratios.append(math.nan if fill_ratio is None else fill_ratio)

    def datum(self) -> dict[str, Any]:
        """The ScopedFills datum (Avro field names)."""
        return {
            "scope": self.scope,
            "buckets": [{"start_ms": start, "cohort": cohort, "last_event_ms": entry[-1],
                         **dict(zip(BUCKET_FIELDS, entry[:-1], strict=True))}
                        for (cohort, start), entry in self.cells.items()],
            "samples": [{"cohort": cohort, "model_version": version, "event_ids": ids,
                         "event_times_ms": times, "slippage_abs_error_bps": slippage,
                         "fill_ratios": ratios}
                        for (cohort, version), (ids, times, slippage, ratios)
                        in self.samples.items()],
        }


# a bucket cell's columns, as ScopedFills' FillBucket names them
BUCKET_FIELDS = ("intents", "fills", "requested", "filled", "slipped", "error_sum",
                 "error_sq_sum")


def slippage_from_sums(count: int, error_sum: float, error_sq_sum: float) -> SlippageError | None:
    """Mean error and RMSE from Σe and Σe² (the figures of maths.execution.slippage_error)."""
    if count <= 0:
        return None
    mean = error_sum / count
    # RMSE >= |mean| holds exactly; Σe² rounding could otherwise put it a hair below.
    rmse = max(math.sqrt(max(error_sq_sum, 0.0) / count), abs(mean))
    return SlippageError(mean_error_bps=mean, rmse_bps=rmse, count=count)


def figures(state: dict[str, Any], spec: WindowSpec, now_ms: int) -> WindowFigures:
    start, end = spec.judged(now_ms)
    cells = [cell for begin, cell in state["buckets"].items() if start <= int(begin) < end]
    # column sums in bucket order: the same additions, in the same order, as a running
    # total, at C speed (this runs for every scope on every evaluation)
    totals = ([sum(column) for column in zip(*cells, strict=True)] if cells
              else [0, 0, 0.0, 0.0, 0, 0.0, 0.0])
    ratio = fill_ratio(totals[_FILLED], totals[_REQUESTED]) if totals[_FILLS] else None
    return WindowFigures(
        window=spec.name, start_ms=start, size_s=spec.size_ms / 1000,
        intents=int(totals[_INTENTS]), fills=int(totals[_FILLS]), fill_ratio=ratio,
        slippage=slippage_from_sums(int(totals[_SLIPPED]), totals[_ERR], totals[_ERR_SQ]),
    )


def prune(state: dict[str, Any], now_ms: int, specs: Sequence[WindowSpec]) -> None:
    """Forget buckets that no window reaches any more."""
    oldest = min(spec.judged(now_ms)[0] for spec in specs)
    for begin in [b for b in state["buckets"] if int(b) < oldest]:
        del state["buckets"][begin]


def window_ends(now_ms: int, specs: Sequence[WindowSpec]) -> list[int]:
    return [spec.judged(now_ms)[1] for spec in specs]


def figures_current(state: dict[str, Any], now_ms: int, specs: Sequence[WindowSpec]) -> bool:
    """Whether the figures kept in ``state`` are those of ``now_ms``: no fill came since
    they were computed and no window has moved (windows move only at multiples of their
    hop) and no alert's pending or clearing timer runs, so evaluating again would change
    nothing."""
    return (state.get("window_ends") == window_ends(now_ms, specs)
            and not any(timers_running(t) for t in state.get("tracks", {}).values()))


def update_figures(state: dict[str, Any], now_ms: int,
                   specs: Sequence[WindowSpec]) -> list[WindowFigures]:
    """Prune, then compute and keep (under ``figures``) every window's figures."""
    prune(state, now_ms, specs)
    all_figures = [figures(state, spec, now_ms) for spec in specs]
    state["figures"] = {f.window: f.as_dict() for f in all_figures}
    state["window_ends"] = window_ends(now_ms, specs)
    return all_figures


def _slippage_verdict(figs: WindowFigures, bounds: Bounds,
                     rule: AlertRule) -> tuple[str, str, float | None, float | None]:
    """(verdict, metric, value, bound) of the slippage bounds on this window: the first
    bound breached, else the worst verdict of the bounds."""
    slip = figs.slippage
    if slip is None or slip.count < bounds.min_fills:
        return UNKNOWN, "slippage_rmse_bps", None, bounds.slippage_rmse_bps
    found: list[tuple[str, str, float | None, float | None]] = []
    if bounds.slippage_rmse_bps is not None:
        found.append((rule.judge_upper(slip.rmse_bps, bounds.slippage_rmse_bps),
                      "slippage_rmse_bps", slip.rmse_bps, bounds.slippage_rmse_bps))
    if bounds.slippage_mean_bps is not None:
        found.append((rule.judge_upper(abs(slip.mean_error_bps), bounds.slippage_mean_bps),
                      "slippage_mean_error_bps", slip.mean_error_bps, bounds.slippage_mean_bps))
    if not found:
        return UNKNOWN, "slippage_rmse_bps", slip.rmse_bps, None
    worst = combine([f[0] for f in found])
    return next(f for f in found if f[0] == worst)


def _fill_ratio_verdict(figs: WindowFigures, bounds: Bounds,
                        rule: AlertRule) -> tuple[str, str, float | None, float | None]:
    if bounds.fill_ratio_min is None or figs.fills < bounds.min_fills:
        return UNKNOWN, "fill_ratio", figs.fill_ratio, bounds.fill_ratio_min
    return (rule.judge_lower(figs.fill_ratio, bounds.fill_ratio_min), "fill_ratio",
            figs.fill_ratio, bounds.fill_ratio_min)


def _describe(figs: WindowFigures) -> str:
    slip = figs.slippage
    slip_text = (f"slippage error mean {slip.mean_error_bps:+.4f} bps, RMSE {slip.rmse_bps:.4f} "
                 f"bps over {slip.count} fills" if slip else "no slippage data")
    ratio = "n/a" if figs.fill_ratio is None else f"{figs.fill_ratio:.4f}"
    return (f"{figs.window} {figs.size_s:g}s window from {figs.start_ms}: {figs.fills} fills, "
            f"fill ratio {ratio}, {slip_text}")


def can_alert(state: dict[str, Any], bounds: Bounds) -> bool:
    """Whether :func:`evaluate` can change an alert of the scope: one is active (it may
    resolve) or pending, or the scope keeps at least ``min_fills`` fills (a window with
    fewer is unknown, and a window's fills are among those kept). Far cheaper than the
    figures: most markets fill too rarely to reach ``min_fills`` in a window."""
    if any(state["alerts"].values()) or any(state.get("tracks", {}).values()):
        return True
    return sum(cell[_FILLS] for cell in state["buckets"].values()) >= bounds.min_fills


_NO_RULE = AlertRule()


def evaluate(state: dict[str, Any], now_ms: int, specs: Sequence[WindowSpec],
             bounds: Bounds, rules: dict[str, AlertRule] | None = None
             ) -> list[AlertTransition]:
    """Figures of every judged window at ``now_ms`` and the alert transitions of the
    bounds, through each reason code's rule (``rules``; none: fire and resolve at once).

    One condition per reason code over every window (any breach breaches; the first
    breaching window, in ``specs`` order, is the one reported), so the scope's pause
    latch sees one hold per reason."""
    all_figures = update_figures(state, now_ms, specs)
    tracks = state.setdefault("tracks", {})
    transitions = []
    for code, check in ((SLIPPAGE_BREACH, _slippage_verdict),
                        (FILL_RATIO_LOW, _fill_ratio_verdict)):
        rule = (rules or {}).get(code, _NO_RULE)
        judged = [(figs, check(figs, bounds, rule)) for figs in all_figures]
        verdict = combine([found[0] for _, found in judged])
        track = tracks.setdefault(code, {})
        edge = hysteresis(track, state["alerts"].get(code) is not None, verdict, rule, now_ms)
        if edge is None:
            continue  # no edge: step_alert would change nothing (skip building the message)
        firing = edge == "fire"
        figs, (_, metric, value, bound) = next(
            ((f, found) for f, found in judged if found[0] == BREACH), judged[-1])
        shown = "n/a" if value is None else f"{value:.4f}"
        condition = Condition(
            scope=state["scope"], subject=figs.window if firing else "execution",
            reason_code=code, firing=firing, metric=metric, value=value,
            threshold=bound, window_s=figs.size_s, cause=f"{figs.window}@{figs.start_ms}",
            event_time_ms=state["last_event_ms"],
            message=(f"{state['scope']}: {metric} {shown} breaches bound {bound:g}; "
                     if firing else f"{state['scope']}: within bounds; ") + _describe(figs),
        )
        state["alerts"][code], transition = step_alert(state["alerts"].get(code), condition)
        if transition:
            transitions.append(transition)
    return transitions
