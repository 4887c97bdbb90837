"""Health of one scope, from its events and the clock: staleness per feed, sequence gaps,
heartbeat timeliness, SLO burn. Pure: state is a plain dict, time is passed in, the
result is the alert transitions to publish."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from streams.control.alerts import AlertTransition, Condition, step_alert
from streams.envelope import derive_id
from streams.maths import windows
from streams.maths.freshness import Arrival, GapTracker, is_stale, stale_duration
from streams.maths.slo import BurnRule, multiwindow_burn
from streams.records import AlertStatus, HealthEventKind

STALE_REASONS = {"book": "RISK_STALE_BOOK", "registry": "RISK_STALE_REGISTRY",
                 "model": "RISK_STALE_MODEL"}
GAP_MEMORY = 1000  # outstanding missing numbers remembered per feed
_DATA_UPDATE, _HEARTBEAT = HealthEventKind.DATA_UPDATE, HealthEventKind.HEARTBEAT

ThresholdFn = Callable[[str, str], float]


def stale_reason(feed: str) -> str:
    return STALE_REASONS.get(feed, "RISK_STALE_DATA")


# A scope's state is one flat dict with its summary's fields (what the API shows per
# scope), and a feed's entry holds the two gap counters that every in-order update moves:
# a health event touches three objects (the state, its feeds, the feed's entry), not the
# five of the nested layout that states were kept in before (a summary dict, a gap dict),
# and with thousands of scopes each object touched is a likely cache miss.
SUMMARY_FIELDS = ("events", "last_kind", "last_event_id", "last_event_time_ms",
                  "last_sequence", "source")


def new_scope_state(partition: int) -> dict[str, Any]:
    return {"partition": partition, "feeds": {}, "heartbeat": None, "events": 0,
            "last_kind": None, "last_event_id": None, "last_event_time_ms": 0,
            "last_sequence": None, "source": None}


def new_feed_entry() -> dict[str, Any]:
    # highest and count: the gap tracker's in-order fields; "gaps": the rest of it
    return {"last_event_ms": 0, "alert": None, "highest": None, "count": 0, "gaps": None}


def upgrade_scope_state(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """A state as kept before the flat layout (recovered from an older changelog), in
    the current layout; a current one as it is."""
    if state is None or "events" in state:
        return state
    summary = state.pop("summary", None) or {}
    fresh, fresh_entry = new_scope_state(state["partition"]), new_feed_entry()
    state.update({field: summary.get(field, fresh[field]) for field in SUMMARY_FIELDS})
    for entry in state["feeds"].values():
        gaps = entry.get("gaps") or {}
        for field in ("highest", "count"):
            entry[field] = gaps.pop(field, fresh_entry[field])
    return state


def summary(state: dict[str, Any]) -> dict[str, Any] | None:
    """What the scope last reported, and how many events (None before the first)."""
    if not state["events"]:
        return None
    return {field: state[field] for field in SUMMARY_FIELDS}


def gap_counts(entry: dict[str, Any]) -> dict[str, Any]:
    """A feed's sequence numbers: the highest, how many arrived, missing (outstanding and
    forgotten), duplicates and late arrivals."""
    gaps = entry["gaps"] or {}
    return {"highest": entry["highest"], "count": entry["count"],
            "missing": len(gaps.get("outstanding") or ()) + int(gaps.get("lost") or 0),
            "duplicates": int(gaps.get("duplicates") or 0),
            "reorders": int(gaps.get("reorders") or 0)}


def note_event(state: dict[str, Any], kind: str, event_id: str, event_time_ms: int,
               sequence: int | None, source: str) -> None:
    """Count an event into the scope's summary: what it last reported, and how much (what
    the API shows per scope). Kept in the scope's state: one table write and one
    changelog record per scope, not two."""
    state["events"] += 1
    state["last_kind"] = kind
    state["last_event_id"] = event_id
    if event_time_ms > state["last_event_time_ms"]:
        state["last_event_time_ms"] = event_time_ms
    state["last_sequence"] = sequence
    state["source"] = source


def observe_event(state: dict[str, Any], scope: str, kind: HealthEventKind, event_id: str,
                  event_time_ms: int, sequence: int | None, source: str, feed: str | None,
                  heartbeat_interval_ms: int, now_ms: int, threshold_s: ThresholdFn,
                  heartbeat_miss_factor: float,
                  ) -> tuple[list[AlertTransition], bool, float | None]:
    """An event of the scope, in one call (a health event's whole pure-core work, most
    events): counted into its summary (:func:`note_event`); a DATA_UPDATE moves its
    feed's freshness on and checks its sequence (:func:`observe_update`), a HEARTBEAT
    the heartbeat's (:func:`observe_heartbeat`); an SLO_PROBE is judged by
    :func:`observe_probe`. Returns the gap alerts and :func:`evaluation_due` at
    ``now_ms``."""
    note_event(state, kind, event_id, event_time_ms, sequence, source)
    if kind is _DATA_UPDATE:
        assert feed is not None  # validated: a DATA_UPDATE carries a feed
        transitions = observe_update(state, scope, feed, event_time_ms, sequence)
    else:
        transitions = []
        if kind is _HEARTBEAT:
            observe_heartbeat(state, event_time_ms, heartbeat_interval_ms)
    return (transitions,
            *evaluation_due(state, scope, now_ms, threshold_s, heartbeat_miss_factor))


def _tracker(entry: dict[str, Any]) -> GapTracker:
    gaps = entry["gaps"] or {"max_outstanding": GAP_MEMORY, "outstanding": ()}
    return GapTracker(**{**gaps, "outstanding": set(gaps["outstanding"])},
                      highest=entry["highest"], count=entry["count"])


_TRACKER_FIELDS = tuple(field.name for field in dataclasses.fields(GapTracker)
                        if field.name not in ("highest", "count"))  # the entry's own


def _keep_tracker(entry: dict[str, Any], tracker: GapTracker) -> None:
    gaps = {name: getattr(tracker, name) for name in _TRACKER_FIELDS}
    gaps["outstanding"] = sorted(tracker.outstanding)
    entry["gaps"], entry["highest"], entry["count"] = gaps, tracker.highest, tracker.count


def observe_update(state: dict[str, Any], scope: str, feed: str, event_time_ms: int,
                   sequence: int | None) -> list[AlertTransition]:
    """A DATA_UPDATE arrived: freshness moves on, the sequence is checked for gaps."""
    entry = state["feeds"].get(feed)
    if entry is None:
        entry = state["feeds"][feed] = new_feed_entry()
    if event_time_ms > entry["last_event_ms"]:
        entry["last_event_ms"] = event_time_ms
    if sequence is None:
        return []
    highest_before = entry["highest"]
    if highest_before is not None and sequence == highest_before + 1:
        # the common case, in order: GapTracker.observe's first branch, without the
        # round trip through the dataclass
        entry["highest"] = sequence
        entry["count"] += 1
        return []
    tracker = _tracker(entry)
    arrival = tracker.observe(sequence)
    _keep_tracker(entry, tracker)
    if arrival is not Arrival.GAP or highest_before is None:
        return []
    missing = sequence - highest_before - 1
    condition = Condition(
        scope=scope, subject=feed, reason_code="GOV_DATA_GAP", firing=True,
        metric="missing_sequence_numbers", value=float(missing), threshold=0.0, window_s=None,
        cause=f"{highest_before}->{sequence}", event_time_ms=event_time_ms,
        message=f"{feed}: {missing} sequence numbers missing between {highest_before} "
                f"and {sequence}",
    )
    # A gap is an event, not a state: it fires once per gap and never resolves.
    gap_id = derive_id("alert", scope, "GOV_DATA_GAP", feed, condition.cause)
    return [AlertTransition(gap_id, AlertStatus.FIRING, condition, gap_id)]


def expect(state: dict[str, Any], feeds: Sequence[str], since_ms: int,
           heartbeat_interval_ms: int) -> bool:
    """Feeds of the scope that must report (``"heartbeat"``: its heartbeats), counted
    from ``since_ms`` (when this worker took the scope's partition) if they never have:
    one that stays silent goes stale after its threshold like any other. Whether the
    state changed."""
    changed = False
    for feed in feeds:
        if feed == "heartbeat":
            if state["heartbeat"] is None:
                observe_heartbeat(state, since_ms, heartbeat_interval_ms)
                changed = True
        elif feed not in state["feeds"]:
            entry = state["feeds"][feed] = new_feed_entry()
            entry["last_event_ms"] = since_ms
            changed = True
    return changed


def observe_heartbeat(state: dict[str, Any], event_time_ms: int, interval_ms: int) -> None:
    beat = state["heartbeat"] or {"last_event_ms": 0, "interval_ms": interval_ms, "alert": None}
    beat["last_event_ms"] = max(beat["last_event_ms"], event_time_ms)
    beat["interval_ms"] = interval_ms
    state["heartbeat"] = beat


def _age_s(now_ms: int, last_ms: int) -> float:
    """Seconds since ``last_ms``, from the exact millisecond difference: epoch seconds as
    floats lose sub-microsecond precision, which would misjudge an age at the threshold."""
    return stale_duration(now_ms, last_ms) / 1000


def evaluate(state: dict[str, Any], scope: str, now_ms: int, threshold_s: ThresholdFn,
             heartbeat_miss_factor: float) -> list[AlertTransition]:
    """Staleness of every feed and the heartbeat, at ``now_ms``."""
    transitions = []
    for feed, entry in state["feeds"].items():
        age_s = _age_s(now_ms, entry["last_event_ms"])
        threshold = threshold_s(scope, feed)
        condition = Condition(
            scope=scope, subject=feed, reason_code=stale_reason(feed),
            firing=is_stale(age_s, threshold), metric="staleness_s", value=round(age_s, 3),
            threshold=threshold, window_s=None, cause=f"{feed}@{entry['last_event_ms']}",
            event_time_ms=entry["last_event_ms"],
            message=f"{feed} last updated {age_s:.3f}s ago (threshold {threshold:g}s)",
        )
        entry["alert"], transition = step_alert(entry["alert"], condition)
        if transition:
            transitions.append(transition)
    beat = state["heartbeat"]
    if beat is not None:
        age_s = _age_s(now_ms, beat["last_event_ms"])
        limit_s = beat["interval_ms"] * heartbeat_miss_factor / 1000
        condition = Condition(
            scope=scope, subject="heartbeat", reason_code="GOV_HEARTBEAT_MISSED",
            firing=is_stale(age_s, limit_s), metric="heartbeat_age_s", value=round(age_s, 3),
            threshold=limit_s, window_s=None, cause=f"heartbeat@{beat['last_event_ms']}",
            event_time_ms=beat["last_event_ms"],
            message=f"last heartbeat {age_s:.3f}s ago (limit {limit_s:g}s)",
        )
        beat["alert"], transition = step_alert(beat["alert"], condition)
        if transition:
            transitions.append(transition)
    return transitions


def next_change(state: dict[str, Any], scope: str, threshold_s: ThresholdFn,
                heartbeat_miss_factor: float) -> tuple[float | None, bool]:
    """(next change, alerting), in one pass over the scope's feeds. The next change is
    the earliest clock time at which :func:`evaluate` can fire with no new event: when the
    first feed (or the heartbeat) that is not alerting yet turns stale, None if nothing
    can fire before the next event; an alerting one only resolves on an event. Alerting:
    whether a feed or the heartbeat has an active alert."""
    due = None
    alerting = False
    for feed, entry in state["feeds"].items():
        if entry["alert"] is not None:
            alerting = True
            continue
        stale_at = entry["last_event_ms"] + threshold_s(scope, feed) * 1000
        if due is None or stale_at < due:
            due = stale_at
    beat = state["heartbeat"]
    if beat is not None:
        if beat["alert"] is not None:
            alerting = True
        else:
            missed_at = beat["last_event_ms"] + beat["interval_ms"] * heartbeat_miss_factor
            if due is None or missed_at < due:
                due = missed_at
    return due, alerting


def next_change_ms(state: dict[str, Any], scope: str, threshold_s: ThresholdFn,
                   heartbeat_miss_factor: float) -> float | None:
    """When the scope can next change with no event (see :func:`next_change`)."""
    return next_change(state, scope, threshold_s, heartbeat_miss_factor)[0]


def evaluation_due(state: dict[str, Any], scope: str, now_ms: int, threshold_s: ThresholdFn,
                   heartbeat_miss_factor: float) -> tuple[bool, float | None]:
    """Whether :func:`evaluate` at ``now_ms`` can publish anything (an alert is active,
    which an event may have resolved, or a quiet feed or heartbeat is due), and the
    scope's :func:`next_change_ms`."""
    due, alerting = next_change(state, scope, threshold_s, heartbeat_miss_factor)
    return alerting or (due is not None and now_ms >= due), due


SLO_BURN, SLO_BURN_TICKET = "GOV_SLO_BURN", "GOV_SLO_BURN_TICKET"


def new_slo_state(partition: int, scope: str, slo: str, owner: str | None) -> dict[str, Any]:
    return {"partition": partition, "scope": scope, "slo": slo, "owner": owner,
            "counts": windows.new_counts(), "alert": None, "ticket_alert": None,
            "status": None}


def slo_status(counts: dict[int, tuple[int, int]], target: float, rules: Sequence[BurnRule],
               verdict: Any, now_ms: int) -> dict[str, Any]:
    """What the API, metrics and console show of an SLO: per window its counts,
    compliance and burn rate; per rule its burn rates and whether it fires; the error
    budget left over the longest window (1 − errors / allowed errors, < 0 when spent)."""
    per_window = {}
    for window_s, (healthy, total) in sorted(counts.items()):
        compliance = healthy / total if total else None
        per_window[str(window_s)] = {
            "healthy": healthy, "total": total, "compliance": compliance,
            "compliant": None if compliance is None else compliance >= target,
            "burn_rate": verdict.burn_rates.get(window_s)}
    longest = max(counts)
    healthy, total = counts[longest]
    allowed = (1 - target) * total
    firing = {rule.name for rule in verdict.firing_rules}
    return {
        "target": target, "evaluated_ms": now_ms, "windows": per_window,
        "budget_window_s": longest,
        "error_budget_remaining": (1 - (total - healthy) / allowed) if total else None,
        "rules": [{"name": rule.name, "severity": rule.severity,
                   "long_window_s": rule.long_window_s, "short_window_s": rule.short_window_s,
                   "threshold": rule.burn_rate_threshold,
                   "burn_rate_long": verdict.burn_rates.get(rule.long_window_s),
                   "burn_rate_short": verdict.burn_rates.get(rule.short_window_s),
                   "firing": rule.name in firing} for rule in rules],
        "firing_rules": [rule.name for rule in verdict.firing_rules],
    }


def observe_probe(state: dict[str, Any], event_time_ms: int, healthy: bool, now_ms: int,
                  target: float, rules: Sequence[BurnRule], min_events: int,
                  bucket_ms: int) -> list[AlertTransition]:
    """Count one SLO probe and evaluate the multiwindow burn rules at ``now_ms``.

    The firing rule's severity decides: a page-level rule raises GOV_SLO_BURN (CRITICAL,
    pauses the scope), a ticket-level one GOV_SLO_BURN_TICKET (WARNING, no pause)."""
    windows.add(state["counts"], event_time_ms, healthy, bucket_ms)
    longest_ms = max(rule.long_window_s for rule in rules) * 1000
    windows.prune(state["counts"], now_ms, longest_ms, bucket_ms)
    lengths = {w for rule in rules for w in (rule.long_window_s, rule.short_window_s)}
    counts = {w: windows.window(state["counts"], now_ms, w * 1000, bucket_ms) for w in lengths}
    verdict = multiwindow_burn(counts, target, rules, min_events)
    state["status"] = slo_status(counts, target, rules, verdict, now_ms)
    transitions = []
    for code, slot, severities in ((SLO_BURN, "alert", ("page",)),
                                   (SLO_BURN_TICKET, "ticket_alert", ("ticket",))):
        firing = [r for r in verdict.firing_rules if r.severity in severities]
        if code == SLO_BURN_TICKET:  # any other severity than page is a ticket
            firing = [r for r in verdict.firing_rules if r.severity != "page"]
        candidates = [r for r in rules if (r.severity == "page") == (code == SLO_BURN)]
        rule = firing[0] if firing else (candidates[0] if candidates else rules[0])
        if bool(firing) == (state.get(slot) is not None):
            continue  # no edge
        rate = verdict.burn_rates.get(rule.long_window_s)
        healthy_n, total_n = counts[rule.long_window_s]
        condition = Condition(
            scope=state["scope"], subject=state["slo"], reason_code=code,
            firing=bool(firing), metric="burn_rate", value=rate,
            threshold=rule.burn_rate_threshold, window_s=float(rule.long_window_s),
            cause=f"{state['slo']}@{event_time_ms - event_time_ms % bucket_ms}",
            event_time_ms=event_time_ms,
            message=(f"SLO {state['slo']} (owner {state['owner'] or 'unknown'}): {healthy_n}/"
                     f"{total_n} healthy over {rule.long_window_s}s, target {target}, "
                     f"burn rate {'n/a' if rate is None else f'{rate:.4g}'}, rule {rule.name} "
                     f"({rule.severity})"),
        )
        state[slot], transition = step_alert(state.get(slot), condition)
        if transition:
            transitions.append(transition)
    return transitions
