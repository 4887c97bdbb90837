"""Canary analysis of one model scope: per leading metric, canary samples against
baseline samples over one fixed window, a one-sided non-inferiority test with the
metric's margin (:func:`streams.maths.canary.noninferiority_verdict`), and the
regression alert.

Pure: plain dicts, time passed in.

Windows are fixed (tumbling, aligned on multiples of the window size, by event time).
The verdict is decided once per window, at its end, on that completed window: one test
per metric and window, not a test of a growing window every tick (which would inflate
the false-regression rate). Until the next window completes, that verdict stands (a
sample of the window that arrives after its end has it decided again). A
window with fewer than ``min_samples`` in a cohort holds, and keeps the regression
alert's state.

Samples are bounded: each (window, metric, cohort) keeps at most ``capacity`` samples,
chosen by bottom-k sampling on a hash of the sample's id (the ``capacity`` smallest
hashes). That is a uniform sample of the window, deterministic (a replay keeps the same
samples) and idempotent (a re-delivered sample has the same hash and is kept once). The
kept samples are split into ``SHARDS`` table entries by hash so that one sample
rewrites one small entry, not the whole reservoir.

Canary samples are kept per model version (cohort tag ``CANARY:<version>``); the
canary judged is the version seen last. Baseline samples are one pool.

Baseline delta (:func:`note_baseline_delta`): the live model (the BASELINE cohort)
against its own baseline window, per leading metric: its mean over the window just
decided minus its mean over the window before it (the previous decided window). The
canary delta says whether the new version is worse than the live one; the baseline delta
says whether the live one itself moved.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from streams.control.alerts import (
    BREACH,
    CLEAR,
    UNKNOWN,
    AlertRule,
    AlertTransition,
    Condition,
    hysteresis,
    step_alert,
)
from streams.maths.canary import Verdict, combine_verdicts, noninferiority_verdict

REGRESSION = "RISK_CANARY_REGRESSION"
SHARDS = 8
BASELINE = "BASELINE"


_SHA256 = hashlib.sha256()  # copied, not made anew: OpenSSL looks the digest up on each


def sample_hash(sample_id: str) -> int:
    hasher = _SHA256.copy()
    hasher.update(sample_id.encode())
    return int.from_bytes(hasher.digest()[:4], "big")


def window_start(time_ms: int, window_ms: int) -> int:
    return time_ms - time_ms % window_ms


def cohort_tag(cohort: str, model_version: str | None) -> str:
    return BASELINE if cohort == BASELINE else f"CANARY:{model_version or '-'}"


def samples_key(scope: str, start_ms: int, metric: str, tag: str, shard: int) -> str:
    return f"{scope}|{start_ms}|{metric}|{tag}|{shard}"


def shard_capacity(capacity: int) -> int:
    return -(-capacity // SHARDS)


def fill_samples(requested: float, filled: float, predicted_bps: float | None,
                 realized_bps: float | None) -> tuple[float | None, float | None]:
    """A FILL's samples of the leading metrics ``slippage_abs_error_bps`` (|realized −
    predicted|) and ``fill_ratio`` (filled/requested), each None when the fill does not
    carry it."""
    slippage = (abs(realized_bps - predicted_bps)
                if predicted_bps is not None and realized_bps is not None else None)
    return slippage, (filled / requested if requested > 0 else None)


def carried_fill_samples(slippage_abs_error_bps: float,
                         fill_ratio: float) -> list[tuple[str, float]]:
    """A FILL's (metric, value) samples from :func:`fill_samples`' values as a
    ScopedFills carries them: NaN for one the fill does not carry."""
    samples = []
    if not math.isnan(slippage_abs_error_bps):
        samples.append(("slippage_abs_error_bps", slippage_abs_error_bps))
    if not math.isnan(fill_ratio):
        samples.append(("fill_ratio", fill_ratio))
    return samples


def add_sample(entry: dict[str, Any] | None, hashed: int, value: float,
               capacity: int) -> tuple[dict[str, Any], bool]:
    """Offer one sample to a shard's bottom-k reservoir: (the entry, whether it changed)."""
    entry = entry or {"kept": [], "offered": 0}
    kept = entry["kept"]
    position = bisect.bisect_left(kept, [hashed])
    if position < len(kept) and kept[position][0] == hashed:
        return entry, False  # already kept: a re-delivery
    entry["offered"] += 1
    if len(kept) >= shard_capacity(capacity):
        if position >= len(kept):
            return entry, True  # larger than every kept hash: counted, not kept
        kept.pop()
    kept.insert(position, [hashed, value])
    return entry, True


def values(entries: Sequence[Mapping[str, Any] | None]) -> list[float]:
    return [value for entry in entries if entry for _, value in entry["kept"]]


def new_state(scope: str, partition: int) -> dict[str, Any]:
    return {"scope": scope, "partition": partition, "canary_version": None,
            "canary_seen_ms": 0, "windows": {}, "alert": None, "evaluation": None,
            "alert_evaluation": None}


def newest_window(state: Mapping[str, Any]) -> int | None:
    """The start of the newest window with samples, None before the first."""
    return max(map(int, state["windows"]), default=None)


def accepts(state: Mapping[str, Any], start_ms: int, window_ms: int) -> bool:
    """Whether a sample of the window starting at ``start_ms`` still counts: windows
    older than the one before the newest seen are gone."""
    newest = newest_window(state)
    return newest is None or start_ms >= newest - window_ms


def note_sample(state: dict[str, Any], metric: str, tag: str, model_version: str | None,
                event_time_ms: int, start_ms: int) -> dict[int, list[str]]:
    """Record which (metric, cohort tag) has samples in which window, and the newest
    canary version; returns the windows that fell out of reach (older than the one
    before the newest), with their ``metric|tag`` pairs, so their samples can go."""
    if tag != BASELINE and event_time_ms >= state["canary_seen_ms"]:
        state["canary_version"] = model_version or "-"
        state["canary_seen_ms"] = event_time_ms
    windows = state["windows"]
    pairs = windows.setdefault(str(start_ms), [])
    pair = f"{metric}|{tag}"
    if pair not in pairs:
        pairs.append(pair)
        pairs.sort()
    if len(windows) <= 2:  # the common case: nothing fell out of reach
        return {}
    starts = sorted(int(s) for s in windows)
    return {start: windows.pop(str(start)) for start in starts[:-2]}


def record_sample(state: dict[str, Any], metric: str, tag: str, model_version: str | None,
                  event_time_ms: int, start_ms: int) -> tuple[dict[int, list[str]], bool]:
    """:func:`note_sample`, and whether what it changed is worth storing: the canary
    version or the windows (not only the time the canary was last seen, which moves with
    every canary sample)."""
    windows = state["windows"]
    pairs = windows.get(str(start_ms))
    if (tag == BASELINE and pairs is not None and len(windows) <= 2
            and f"{metric}|{tag}" in pairs):
        return {}, False  # the common case, which note_sample would leave as it is
    before = (state["canary_version"], len(windows), len(pairs or ()))
    dropped = note_sample(state, metric, tag, model_version, event_time_ms, start_ms)
    after = (state["canary_version"], len(windows), len(windows[str(start_ms)]))
    return dropped, bool(dropped) or before != after


def expire_windows(state: dict[str, Any], now_ms: int,
                   window_ms: int) -> dict[int, list[str]]:
    """Windows older than the one before ``now_ms``'s (a model that stopped sending
    samples): removed from the state and returned, so their samples can go."""
    oldest = window_start(now_ms, window_ms) - window_ms
    return {int(start): state["windows"].pop(start)
            for start in [s for s in state["windows"] if int(s) < oldest]}


def sample_keys(scope: str, start_ms: int, pairs: Sequence[str]) -> list[str]:
    """Every shard key of the window's ``metric|tag`` pairs."""
    return [samples_key(scope, start_ms, *pair.split("|", 1), shard)
            for pair in pairs for shard in range(SHARDS)]


def _metric_dict(verdict: Any, window_start_ms: int, new: Sequence[float],
                 baseline: Sequence[float]) -> dict[str, Any]:
    return {
        "verdict": verdict.verdict.value, "delta": verdict.delta, "margin": verdict.margin,
        "p_value": verdict.p_value, "p_noninferior": verdict.p_noninferior,
        "p_inferior": verdict.p_inferior, "p_better": verdict.p_better,
        "p_worse": verdict.p_worse, "n_canary": verdict.n_new, "n_baseline": verdict.n_baseline,
        "mean_canary": sum(new) / len(new) if new else None,
        "mean_baseline": sum(baseline) / len(baseline) if baseline else None,
        "direction": verdict.direction.value, "alpha": verdict.alpha,
        "sufficient": verdict.sufficient_samples,
        "window_start_ms": window_start_ms, "reason": verdict.reason,
    }


def decided_window(now_ms: int, window_ms: int) -> int:
    """The start of the window judged at ``now_ms``: the last completed one."""
    return window_start(now_ms, window_ms) - window_ms


def evaluate(
    samples: Mapping[int, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    leading: Mapping[str, str], alpha: float, min_samples: int, test: str, now_ms: int,
    window_ms: int, canary_version: str | None, margins: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Verdict per leading metric and combined, from ``samples[window_start][metric] =
    (canary values, baseline values)``, on the last completed window at ``now_ms``,
    with each metric's non-inferiority margin (``margins``, 0 when not given)."""
    metrics: dict[str, dict[str, Any]] = {}
    verdicts = {}
    start = decided_window(now_ms, window_ms)
    for metric, direction in leading.items():
        new, baseline = samples.get(start, {}).get(metric, ((), ()))
        verdict = noninferiority_verdict(list(new), list(baseline), direction,
                                         (margins or {}).get(metric, 0.0), alpha,
                                         min_samples, test, metric)
        verdicts[metric] = verdict
        metrics[metric] = _metric_dict(verdict, start, new, baseline)
    combined = combine_verdicts(verdicts) if verdicts else None
    return {
        "evaluated_ms": now_ms, "window_s": window_ms / 1000, "window_start_ms": start,
        "decided_ms": start + window_ms, "canary_version": canary_version,
        "combined": combined.verdict.value if combined else Verdict.HOLD.value,
        "regressed": list(combined.regressed) if combined else [],
        "metrics": metrics,
    }


def decided(evaluation: Mapping[str, Any] | None, now_ms: int, window_ms: int,
            canary_version: str | None) -> bool:
    """Whether ``evaluation`` is already the decision of the window judged at ``now_ms``
    (decided once, at the window's end: later samples of it change nothing)."""
    return (evaluation is not None
            and evaluation.get("window_start_ms") == decided_window(now_ms, window_ms)
            and evaluation.get("canary_version") == canary_version)


def summary(evaluation: Mapping[str, Any], metric: str) -> str:
    m = evaluation["metrics"][metric]
    delta = "n/a" if m["delta"] is None else f"{m['delta']:+.6g}"
    p_worse = "n/a" if m["p_worse"] is None else f"{m['p_worse']:.3g}"
    p_better = "n/a" if m["p_better"] is None else f"{m['p_better']:.3g}"
    margin = m.get("margin")
    p_value = m.get("p_value")
    return (f"{metric} {m['verdict']}: canary−baseline {delta} ({m['direction']}), "
            f"margin {'n/a' if margin is None else f'{margin:g}'}, "
            f"p {'n/a' if p_value is None else f'{p_value:.3g}'} "
            f"(p_better {p_better}, p_worse {p_worse}), alpha {m['alpha']:g}, "
            f"n {m['n_canary']}/{m['n_baseline']}")


_NO_RULE = AlertRule()


def note_baseline_delta(state: dict[str, Any], evaluation: dict[str, Any]) -> None:
    """Keep the baseline cohort's means of the decided window (the last two windows'),
    and add ``baseline_delta`` per leading metric to ``evaluation``: the mean now, the
    mean over the previous window, and their difference (None while either is unknown)."""
    start = evaluation["window_start_ms"]
    previous_start = start - int(evaluation["window_s"] * 1000)
    kept = state.setdefault("baseline_means", {})
    kept[str(start)] = {metric: [figures["mean_baseline"], figures["n_baseline"]]
                        for metric, figures in evaluation["metrics"].items()
                        if figures.get("mean_baseline") is not None}
    for old in sorted(kept, key=int)[:-2]:
        del kept[old]
    before = kept.get(str(previous_start), {})
    deltas = {}
    for metric, figures in evaluation["metrics"].items():
        now = figures.get("mean_baseline")
        then = before.get(metric, [None, 0])[0]
        deltas[metric] = {
            "mean_now": now, "mean_before": then,
            "delta": now - then if now is not None and then is not None else None,
            "n_now": figures.get("n_baseline", 0), "n_before": before.get(metric, [None, 0])[1],
            "window_start_ms": start, "previous_window_start_ms": previous_start}
    evaluation["baseline_delta"] = deltas


def judge(state: dict[str, Any], evaluation: dict[str, Any],
          rule: AlertRule = _NO_RULE) -> list[AlertTransition]:
    """Store the evaluation; the regression alert fires when a leading metric regressed
    (through ``rule``), resolves when a window decides none did, and keeps its state
    through windows without enough samples."""
    note_baseline_delta(state, evaluation)
    state["evaluation"] = evaluation
    regressed = evaluation["regressed"]
    measured = any(m.get("sufficient", True) for m in evaluation["metrics"].values())
    verdict = BREACH if regressed else (CLEAR if measured else UNKNOWN)
    track = state.setdefault("track", {})
    edge = hysteresis(track, state["alert"] is not None, verdict, rule,
                      evaluation["evaluated_ms"])
    if edge is None:
        return []
    metric = regressed[0] if regressed else next(iter(evaluation["metrics"]), "none")
    m = evaluation["metrics"].get(metric, {})
    condition = Condition(
        scope=state["scope"], subject="canary", reason_code=REGRESSION,
        firing=edge == "fire", metric=f"p_inferior:{metric}", value=m.get("p_inferior"),
        threshold=m.get("alpha"),
        window_s=evaluation["window_s"],
        cause=f"{evaluation['canary_version']}@{m.get('window_start_ms')}:{metric}",
        event_time_ms=evaluation["evaluated_ms"],
        message=("canary regressed: " if regressed else "canary not regressed: ")
        + ("; ".join(summary(evaluation, name) for name in evaluation["metrics"]) or "no metrics"),
    )
    state["alert"], transition = step_alert(state["alert"], condition)
    if transition and condition.firing:
        state["alert_evaluation"] = evaluation
    return [transition] if transition else []
