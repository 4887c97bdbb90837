"""Runners acknowledge pauses: how far each runner's PauseGuard is behind control.pauses.

A runner's PauseGuard publishes on control.pause-acks (keyed by its runner id) the next
offset it has applied of each control.pauses partition (its watermarks) and its guard
state. Against the log of control.pauses as every worker reads it whole (``PauseLog``:
per partition, each record's offset, scope, state and when it was published), a runner's
lag is the records past its watermarks, and the age of the oldest of them.

Two alerts per runner, scope ``runner:<id>``, one episode each (streams.control.alerts):

- ``GOV_PAUSE_NOT_APPLIED`` (CRITICAL): a pause state published longer ago than the
  bound that the runner's watermark has not passed, while its guard says it is ready
  (a guard that is not ready denies every scope: there is nothing it could trade on);
- ``GOV_RUNNER_SILENT`` (WARNING): no acknowledgement for longer than the timeout from a
  runner that acknowledged before, or a required one. WARNING because a silent runner is
  most often a stopped one; a pause published while a runner is silent is not passed by
  its last watermark, so the CRITICAL alert follows as soon as a pause is at stake.

Neither pauses anything: a runner that does not apply pauses is not stopped by a pause.
Pure: plain values, time passed in.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.control.alerts import (
    BREACH,
    CLEAR,
    AlertRule,
    AlertTransition,
    Condition,
    hysteresis,
    step_alert,
)

NOT_APPLIED = "GOV_PAUSE_NOT_APPLIED"
SILENT = "GOV_RUNNER_SILENT"
REASONS = (NOT_APPLIED, SILENT)
SUBJECT = "pause-acks"
READY = "ready"  # streams.runner.GuardState.READY
MAX_RECORDS_PER_PARTITION = 10_000


def runner_scope(runner_id: str) -> str:
    return f"runner:{runner_id}"


@dataclass(frozen=True, slots=True)
class PublishedPause:
    """One control.pauses record: where it is, what it says, when it was published."""

    partition: int
    offset: int
    scope: str
    state_id: str | None  # None: a tombstone
    paused: bool
    published_ms: int


class PauseLog:
    """control.pauses by partition and offset, as a reader of every partition saw it. The
    newest ``max_per_partition`` records of each partition are kept: a watermark below
    them counts from the oldest kept one (its lag can only be under-stated)."""

    __slots__ = ("caught_up", "ends", "max_per_partition", "records")

    def __init__(self, max_per_partition: int = MAX_RECORDS_PER_PARTITION) -> None:
        self.max_per_partition = max_per_partition
        self.records: dict[int, list[PublishedPause]] = {}
        # partition -> next offset (the end read at start, or past the last record seen)
        self.ends: dict[int, int] = {}
        # whether the log has read every partition up to its end (its reader says)
        self.caught_up: Callable[[], bool] = lambda: False

    def set_end(self, partition: int, end: int) -> None:
        self.ends[partition] = max(self.ends.get(partition, 0), end)

    def note(self, record: PublishedPause) -> None:
        kept = self.records.setdefault(record.partition, [])
        if kept and record.offset <= kept[-1].offset:
            return  # read again (a reconnect without a reset): already known
        kept.append(record)
        if len(kept) > 2 * self.max_per_partition:  # trimmed in steps: amortised O(1)
            del kept[:len(kept) - self.max_per_partition]
        self.set_end(record.partition, record.offset + 1)

    def clear(self) -> None:
        self.records.clear()
        self.ends.clear()

    def lag_records(self, watermarks: Mapping[int, int]) -> int:
        """Records of every partition past the runner's watermarks (0 for none)."""
        return sum(max(0, end - watermarks.get(p, 0)) for p, end in self.ends.items())

    def oldest_unapplied(self, watermarks: Mapping[int, int]) -> PublishedPause | None:
        """The earliest published pause state (not a tombstone) past the watermarks."""
        oldest: PublishedPause | None = None
        for partition, kept in self.records.items():
            start = bisect.bisect_left(kept, watermarks.get(partition, 0),
                                       key=lambda r: r.offset)
            for record in kept[start:]:
                if record.state_id is None:
                    continue
                if oldest is None or record.published_ms < oldest.published_ms:
                    oldest = record
                break  # offsets grow with publication: the first is the oldest here
        return oldest


@dataclass(frozen=True, slots=True)
class AckSeen:
    """A runner's latest acknowledgement and when this worker received it."""

    runner_id: str
    runner_version: str
    guard_state: str
    sent_ms: int
    watermarks: dict[int, int]
    paused_scopes: int
    received_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"runner_id": self.runner_id, "runner_version": self.runner_version,
                "guard_state": self.guard_state, "sent_ms": self.sent_ms,
                "watermarks": {str(p): o for p, o in self.watermarks.items()},
                "paused_scopes": self.paused_scopes, "received_ms": self.received_ms}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> AckSeen:
        return cls(value["runner_id"], value["runner_version"], value["guard_state"],
                   int(value["sent_ms"]),
                   {int(p): int(o) for p, o in value["watermarks"].items()},
                   int(value["paused_scopes"]), int(value["received_ms"]))


@dataclass(frozen=True, slots=True)
class Unapplied:
    scope: str
    state_id: str
    paused: bool
    age_s: float


@dataclass(frozen=True, slots=True)
class RunnerLag:
    """One runner's standing: what GET /api/runners lists and the alerts are judged on."""

    runner_id: str
    required: bool
    listed: bool
    ack: AckSeen | None
    ack_age_s: float | None
    lag_records: int | None
    lag_s: float | None
    oldest_unapplied: Unapplied | None
    silent: bool

    @property
    def never_acknowledged(self) -> bool:
        return self.ack is None

    def not_applied(self, bound_s: float) -> bool:
        """A pause state older than the bound unapplied, while the guard is ready."""
        return (self.ack is not None and self.ack.guard_state == READY
                and self.oldest_unapplied is not None and self.oldest_unapplied.age_s > bound_s)

    def view(self) -> dict[str, Any]:
        ack, oldest = self.ack, self.oldest_unapplied
        return {
            "runner_id": self.runner_id,
            "runner_version": ack.runner_version if ack else None,
            "guard_state": ack.guard_state if ack else None,
            "required": self.required, "listed": self.listed,
            "never_acknowledged": self.never_acknowledged,
            "last_ack_age_s": _round(self.ack_age_s),
            "lag_records": self.lag_records, "lag_s": _round(self.lag_s),
            "oldest_unapplied": None if oldest is None else {
                "scope": oldest.scope, "state_id": oldest.state_id, "paused": oldest.paused,
                "age_s": _round(oldest.age_s)},
            "paused_scopes": ack.paused_scopes if ack else None,
            "silent": self.silent,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def judge(runner_id: str, ack: AckSeen | None, log: PauseLog, now_ms: int, *,
          required: bool, listed: bool, timeout_s: float,
          watching_since_ms: int | None = None) -> RunnerLag:
    """A runner's lag behind ``log`` and whether it is silent, at ``now_ms``. A required
    runner that never acknowledged is silent once polymon has watched for longer than the
    timeout (``watching_since_ms``: since when; None: not yet)."""
    if ack is None:
        watched_s = None if watching_since_ms is None else (now_ms - watching_since_ms) / 1000
        return RunnerLag(runner_id, required, listed, None, None, None, None, None,
                         silent=required and watched_s is not None and watched_s > timeout_s)
    ack_age_s = max(0.0, (now_ms - ack.received_ms) / 1000)
    oldest = log.oldest_unapplied(ack.watermarks)
    unapplied = None if oldest is None else Unapplied(
        oldest.scope, oldest.state_id or "", oldest.paused,
        max(0.0, (now_ms - oldest.published_ms) / 1000))
    return RunnerLag(runner_id, required, listed, ack, ack_age_s,
                     log.lag_records(ack.watermarks),
                     unapplied.age_s if unapplied is not None else 0.0, unapplied,
                     silent=ack_age_s > timeout_s)


def _utc(time_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(time_ms / 1000, UTC).isoformat(timespec="milliseconds")


def _describe_runner(lag: RunnerLag) -> str:
    if lag.ack is None:
        return "never acknowledged"
    return (f"version {lag.ack.runner_version}, guard {lag.ack.guard_state}, last "
            f"acknowledgement {lag.ack_age_s:.1f}s ago")


def condition(reason_code: str, lag: RunnerLag, firing: bool, now_ms: int, *, bound_s: float,
              timeout_s: float, cause: str) -> Condition:
    """The alert condition of ``reason_code`` for ``lag`` (``cause``: its episode's)."""
    scope = runner_scope(lag.runner_id)
    if reason_code == NOT_APPLIED:
        oldest = lag.oldest_unapplied
        if firing and oldest is not None:
            message = (f"runner {lag.runner_id} has not applied pause state {oldest.state_id} "
                       f"of {oldest.scope} ({'pause' if oldest.paused else 'resume'}) "
                       f"published {oldest.age_s:.1f}s ago, beyond the {bound_s:g}s bound; "
                       f"{lag.lag_records} control.pauses records behind "
                       f"({_describe_runner(lag)})")
        else:
            message = (f"runner {lag.runner_id} has applied every pause state published "
                       f"more than {bound_s:g}s ago")
        return Condition(scope=scope, subject=SUBJECT, reason_code=NOT_APPLIED,
                         firing=firing, metric="unapplied_for_s",
                         value=oldest.age_s if firing and oldest else None,
                         threshold=bound_s, window_s=None, cause=cause,
                         event_time_ms=now_ms, message=message)
    if firing:
        message = (f"runner {lag.runner_id} sent no pause acknowledgement for "
                   + (f"{lag.ack_age_s:.1f}s" if lag.ack_age_s is not None
                      else "as long as polymon has watched, longer than the timeout "
                      "(required runner)")
                   + f", beyond the {timeout_s:g}s timeout; whether it applies pauses is "
                   f"unknown ({_describe_runner(lag)})")
    else:
        message = f"runner {lag.runner_id} acknowledges again"
    return Condition(scope=scope, subject=SUBJECT, reason_code=SILENT, firing=firing,
                     metric="ack_age_s", value=lag.ack_age_s if firing else None,
                     threshold=timeout_s, window_s=None, cause=cause, event_time_ms=now_ms,
                     message=message)


@dataclass
class RunnerAlerts:
    """A runner's alert state per reason code: active alert and hysteresis timers
    (JSON-able, kept in the agent's table)."""

    active: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"active": self.active, "tracks": self.tracks}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> RunnerAlerts:
        value = value or {}
        return cls(dict(value.get("active", {})),
                   {k: dict(v) for k, v in value.get("tracks", {}).items()})


def _cause(reason_code: str, lag: RunnerLag) -> str:
    """What names an episode: the first unapplied state, or the last acknowledgement."""
    if reason_code == NOT_APPLIED:
        oldest = lag.oldest_unapplied
        return f"{oldest.scope}@{oldest.state_id}" if oldest else "none"
    return f"ack@{lag.ack.received_ms}" if lag.ack else "never"


def step(alerts: RunnerAlerts, lag: RunnerLag, now_ms: int, *, bound_s: float,
         timeout_s: float, rules: Mapping[str, AlertRule]) -> list[AlertTransition]:
    """Advance both of a runner's alerts at ``now_ms`` (mutates ``alerts``); the
    transitions to publish. ``rules``: hysteresis per reason code (default: none)."""
    transitions: list[AlertTransition] = []
    for reason_code in REASONS:
        breached = lag.not_applied(bound_s) if reason_code == NOT_APPLIED else lag.silent
        active = alerts.active.get(reason_code)
        track = alerts.tracks.setdefault(reason_code, {})
        edge = hysteresis(track, active is not None, BREACH if breached else CLEAR,
                          rules.get(reason_code, AlertRule()), now_ms)
        if edge is None:
            continue
        firing = edge == "fire"
        cause = _cause(reason_code, lag) if firing else active["cause"]  # type: ignore[index]
        new, transition = step_alert(
            active, condition(reason_code, lag, firing, now_ms, bound_s=bound_s,
                              timeout_s=timeout_s, cause=cause))
        if new is None:
            alerts.active.pop(reason_code, None)
        else:
            alerts.active[reason_code] = new
        if transition is not None:
            transitions.append(transition)
    return transitions
