"""The incident lifecycle of one dedup key (scope + reason family): open → acknowledged →
resolved, with a timeline of what happened and who did it.

Pure: state is a plain JSON-able dict per dedup key, time is passed in, and each step
returns the new state and an :class:`Outcome` (the incident to publish, the decision to
audit). Inputs are identified by their ids (alert envelope id, pause state id, command
id); a key remembers the ids it has processed, so a re-delivered input is a no-op.

Incident ids are derived from the dedup key and the alert that opened the incident, so a
re-delivered alert never opens a second incident, and they carry the reason family
(``inc-<family>-<hex>``): with the scope of a command, the id names its dedup key, which
is how an ACK/RESOLVE keyed by scope finds the partition that owns the incident.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any

from streams.envelope import derive_id

OPEN = "OPEN"
ACKNOWLEDGED = "ACKNOWLEDGED"
RESOLVED = "RESOLVED"
STATES = (OPEN, ACKNOWLEDGED, RESOLVED)
ACTIVE_STATES = (OPEN, ACKNOWLEDGED)
SEVERITY_RANK = {"INFO": 0, "WARNING": 1, "CRITICAL": 2}

DEFAULT_TIMELINE_LIMIT = 200
REMEMBERED_INPUTS = 500  # processed input ids per dedup key (re-delivery guard)
REMEMBERED_INCIDENTS = 20  # earlier incidents of a key, for precise answers about them
MAX_ALERTS = 100  # alert ids kept per incident (pauses are matched to them)

_INCIDENT_ID = re.compile(r"^inc-(?P<family>[a-z][a-z0-9_]*)-[0-9a-f]{24}$")


class IncidentIdError(ValueError):
    """A string that is not an incident id."""


def incident_id(dedup_key: str, family: str, opening_alert_id: str) -> str:
    return derive_id(f"inc-{family}", dedup_key, opening_alert_id)


def family_of(incident: str) -> str:
    """The reason family an incident id carries; raises IncidentIdError if malformed."""
    match = _INCIDENT_ID.match(incident)
    if match is None:
        raise IncidentIdError(
            f"{incident!r} is not an incident id (expected inc-<family>-<24 hex digits>)")
    return match["family"]


def dedup_key_of(scope: str, incident: str) -> str:
    """The dedup key of incident ``incident`` of ``scope``."""
    return f"{scope}|{family_of(incident)}"


def resolved_alert_id(fired_alert_id: str) -> str:
    """The id of the RESOLVED alert that ends ``fired_alert_id`` (streams.control.alerts)."""
    return derive_id("alert", fired_alert_id, "resolved")


def new_key_state(dedup_key: str, scope: str, family: str) -> dict[str, Any]:
    return {"dedup_key": dedup_key, "scope": scope, "family": family, "current": None,
            "history": [], "seen": []}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one input did to a key's incidents."""

    decision: str  # opened, updated, acknowledged, resolved, noop, refused, duplicate, ignored
    incident: dict[str, Any] | None = None  # the incident to publish (it changed)
    detail: str = ""
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    incident_id: str | None = None
    audit: bool = False  # a lifecycle decision (opened, an operator's command) to audit
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.incident is not None


def summary(incident: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the audit log records as before/after."""
    if incident is None:
        return None
    return {"incident_id": incident["incident_id"], "state": incident["state"],
            "severity": incident["severity"], "firing": len(incident["firing"])}


def track_on_scope(open_incidents: dict[str, dict[str, str]], *, incident_id: str, state: str,
                   severity: str, reason_code: str) -> dict[str, dict[str, str]]:
    """The scope's unresolved incidents (incident id → severity, reason code) after one
    published version of one of its incidents (in ``state``): a resolved incident leaves
    the map. Versions of one incident arrive in order, so the latest one is the truth."""
    tracked = {key: value for key, value in open_incidents.items() if key != incident_id}
    if state in ACTIVE_STATES:
        tracked[incident_id] = {"severity": severity, "reason_code": reason_code}
    return tracked


def critical_of(open_incidents: dict[str, dict[str, str]]) -> dict[str, str]:
    """The unresolved CRITICAL incidents among ``open_incidents``: incident id → reason code."""
    return {incident: entry["reason_code"] for incident, entry in open_incidents.items()
            if entry["severity"] == "CRITICAL"}


def expired_incidents(state: dict[str, Any], now_ms: int,
                      retention_ms: float) -> list[str] | None:
    """Whether the key can be forgotten, and the incident ids to tombstone then (the current
    incident and the earlier ones the key remembers): when its incident is resolved, no
    alert of it still fires, and nothing has changed it for ``retention_ms``. None: keep.
    A key that never opened an incident (only a stray resolved alert) goes at once."""
    current = state["current"]
    earlier = [entry["incident_id"] for entry in state["history"]]
    if current is None:
        return earlier
    if (current["state"] != RESOLVED or current["firing"]
            or now_ms - current["updated_ms"] < retention_ms):
        return None
    return [*earlier, current["incident_id"]]


def _seen(state: dict[str, Any], input_id: str) -> bool:
    return input_id in state["seen"]


def _remember(state: dict[str, Any], input_id: str) -> None:
    state["seen"] = [*state["seen"], input_id][-REMEMBERED_INPUTS:]


def _entry(time_ms: int, what: str, actor: str, ref: str | None) -> dict[str, Any]:
    return {"time_ms": int(time_ms), "what": what, "actor": actor, "ref": ref}


def _append(incident: dict[str, Any], entry: dict[str, Any], limit: int) -> None:
    """Add a timeline entry; past ``limit`` the oldest go, except the opening entry."""
    timeline = [*incident["timeline"], entry]
    if len(timeline) > limit:
        dropped = len(timeline) - limit
        timeline = [timeline[0], *timeline[1 + dropped:]]
        incident["timeline_dropped"] += dropped
    incident["timeline"] = timeline
    incident["updated_ms"] = max(incident["updated_ms"], int(entry["time_ms"]))
    incident["version"] += 1


def _retire(state: dict[str, Any]) -> None:
    current = state["current"]
    if current is not None:
        state["history"] = [*state["history"], {
            "incident_id": current["incident_id"], "state": current["state"],
            "opened_ms": current["opened_ms"], "updated_ms": current["updated_ms"],
        }][-REMEMBERED_INCIDENTS:]


def _alert_line(status: str, reason_code: str, message: str) -> str:
    return f"alert {status.lower()} {reason_code}" + (f": {message}" if message else "")


def on_alert(state: dict[str, Any], *, alert_id: str, status: str, reason_code: str,
             severity: str, message: str, time_ms: int, source: str,
             timeline_limit: int = DEFAULT_TIMELINE_LIMIT) -> tuple[dict[str, Any], Outcome]:
    """An alert of this key fired or resolved."""
    if _seen(state, alert_id):
        return state, Outcome("duplicate", detail=f"alert {alert_id} already processed")
    state = copy.deepcopy(state)
    _remember(state, alert_id)
    current = state["current"]
    line = _alert_line(status, reason_code, message)
    if status == "FIRING":
        if current is None or current["state"] == RESOLVED:
            new_id = incident_id(state["dedup_key"], state["family"], alert_id)
            if current is not None and current["incident_id"] == new_id:
                return state, Outcome("duplicate", detail=f"incident {new_id} exists")
            _retire(state)
            incident = {
                "incident_id": new_id, "dedup_key": state["dedup_key"],
                "scope": state["scope"], "family": state["family"], "state": OPEN,
                "severity": severity, "reason_code": reason_code, "opened_ms": int(time_ms),
                "updated_ms": int(time_ms), "acknowledged": None, "resolved": None,
                "alerts": [alert_id], "firing": [alert_id], "paused": None,
                "timeline": [], "timeline_dropped": 0, "version": 0,
            }
            _append(incident, _entry(time_ms, line, source, alert_id), timeline_limit)
            state["current"] = incident
            return state, Outcome("opened", incident, f"opened by {reason_code}", None,
                                  summary(incident), new_id, audit=True,
                                  extra={"alert_id": alert_id})
        before = summary(current)
        current["alerts"] = [*current["alerts"], alert_id][-MAX_ALERTS:]
        current["firing"] = [*current["firing"], alert_id][-MAX_ALERTS:]
        if SEVERITY_RANK[severity] > SEVERITY_RANK[current["severity"]]:
            current["severity"] = severity
        _append(current, _entry(time_ms, line, source, alert_id), timeline_limit)
        return state, Outcome("updated", current, "alert added", before, summary(current),
                              current["incident_id"])
    # RESOLVED: find the firing alert it ends.
    if current is None:
        return state, Outcome("ignored", detail=f"no incident for {state['dedup_key']}")
    ended = next((fired for fired in current["firing"]
                  if resolved_alert_id(fired) == alert_id), None)
    if ended is None:
        return state, Outcome("ignored", detail=f"alert {alert_id} ends no firing alert of "
                              f"incident {current['incident_id']}")
    before = summary(current)
    current["firing"] = [fired for fired in current["firing"] if fired != ended]
    _append(current, _entry(time_ms, line, source, alert_id), timeline_limit)
    if not current["firing"] and current["state"] != RESOLVED:
        _append(current, _entry(time_ms, "all alerts clear", source, None), timeline_limit)
    return state, Outcome("updated", current, "alert resolved", before, summary(current),
                          current["incident_id"])


def on_pause(state: dict[str, Any], *, state_id: str, paused: bool, reason_code: str,
             cause_id: str | None, policy: str, actor: str, time_ms: int,
             timeline_limit: int = DEFAULT_TIMELINE_LIMIT) -> tuple[dict[str, Any], Outcome]:
    """The scope of this key was paused or resumed for a reason of this key's family.

    It joins the current incident when caused by one of its alerts, or while the incident
    is still open or acknowledged."""
    if _seen(state, state_id):
        return state, Outcome("duplicate", detail=f"pause change {state_id} already processed")
    current = state["current"]
    if current is None or (cause_id not in current["alerts"]
                           and current["state"] == RESOLVED):
        return state, Outcome("ignored", detail="no incident the pause change belongs to")
    state = copy.deepcopy(state)
    _remember(state, state_id)
    current = state["current"]
    before = summary(current)
    current["paused"] = paused
    what = (f"scope paused ({reason_code}, {policy})" if paused
            else f"scope resumed (released {reason_code})")
    _append(current, _entry(time_ms, what, actor, state_id), timeline_limit)
    return state, Outcome("updated", current, what, before, summary(current),
                          current["incident_id"])


def review_missing(severity: str, root_cause: str | None, follow_ups: list[str]) -> str | None:
    """Why a resolution of an incident of ``severity`` is not enough, or None: a CRITICAL
    incident is resolved with its root cause and at least one follow-up."""
    if severity != "CRITICAL" or (root_cause and root_cause.strip() and follow_ups):
        return None
    return ("a CRITICAL incident is resolved with its root cause and at least one "
            "follow-up (root_cause, follow_ups)")


ROOT_CAUSE_ENTRY, FOLLOW_UP_ENTRY = "root cause: ", "follow-up: "


def on_command(state: dict[str, Any], *, command_id: str, action: str, incident: str,
               actor: str, reason: str, time_ms: int, root_cause: str | None = None,
               follow_ups: list[str] | None = None,
               timeline_limit: int = DEFAULT_TIMELINE_LIMIT) -> tuple[dict[str, Any], Outcome]:
    """An operator acknowledges (``ACK``) or resolves (``RESOLVE``) incident ``incident``;
    a resolution carries the review (root cause, follow-ups), required for CRITICAL."""
    if action not in ("ACK", "RESOLVE"):
        raise ValueError(f"not an incident command: {action!r}")
    if _seen(state, command_id):
        return state, Outcome("duplicate", detail=f"command {command_id} already processed")
    state = copy.deepcopy(state)
    _remember(state, command_id)
    current = state["current"]
    verb = "acknowledge" if action == "ACK" else "resolve"
    if current is None or current["incident_id"] != incident:
        earlier = next((h for h in state["history"] if h["incident_id"] == incident), None)
        if earlier is None:
            return state, Outcome("refused", detail=f"unknown incident {incident}",
                                  incident_id=incident, audit=True)
        newer = f"; the current incident of {state['dedup_key']} is " \
                f"{current['incident_id']}" if current else ""
        if action == "RESOLVE":
            return state, Outcome("noop", detail=f"incident {incident} is already resolved"
                                  f"{newer}", incident_id=incident, audit=True,
                                  before={"incident_id": incident, "state": RESOLVED},
                                  after={"incident_id": incident, "state": RESOLVED})
        return state, Outcome("refused", detail=f"cannot {verb} incident {incident}: it is "
                              f"resolved{newer}", incident_id=incident, audit=True)
    before = summary(current)
    who = {"actor": actor, "time_ms": int(time_ms), "reason": reason, "command_id": command_id}
    said = f": {reason}" if reason else ""
    if action == "ACK":
        if current["state"] == ACKNOWLEDGED:
            by = current["acknowledged"]["actor"] if current["acknowledged"] else "someone"
            return state, Outcome("noop", detail=f"incident {incident} is already "
                                  f"acknowledged by {by}", before=before, after=before,
                                  incident_id=incident, audit=True)
        if current["state"] == RESOLVED:
            return state, Outcome("refused", detail=f"cannot acknowledge incident {incident}: "
                                  "it is resolved", before=before, after=before,
                                  incident_id=incident, audit=True)
        current["state"] = ACKNOWLEDGED
        current["acknowledged"] = who
        _append(current, _entry(time_ms, f"acknowledged{said}", actor, command_id),
                timeline_limit)
        return state, Outcome("acknowledged", current, f"acknowledged by {actor}", before,
                              summary(current), incident, audit=True)
    if current["state"] == RESOLVED:
        return state, Outcome("noop", detail=f"incident {incident} is already resolved",
                              before=before, after=before, incident_id=incident, audit=True)
    follow_ups = [item for item in follow_ups or [] if item.strip()]
    missing = review_missing(current["severity"], root_cause, follow_ups)
    if missing is not None:
        return state, Outcome("refused", detail=f"cannot resolve incident {incident}: {missing}",
                              before=before, after=before, incident_id=incident, audit=True)
    current["state"] = RESOLVED
    current["resolved"] = who
    firing = len(current["firing"])
    note = f" ({firing} alert{'s' if firing != 1 else ''} still firing)" if firing else ""
    _append(current, _entry(time_ms, f"resolved{said}{note}", actor, command_id),
            timeline_limit)
    # the review goes on the timeline, which monitor.incidents carries and views read
    if root_cause and root_cause.strip():
        current["root_cause"] = root_cause.strip()
        _append(current, _entry(time_ms, ROOT_CAUSE_ENTRY + current["root_cause"], actor,
                                command_id), timeline_limit)
    current["follow_ups"] = follow_ups
    for item in follow_ups:
        _append(current, _entry(time_ms, FOLLOW_UP_ENTRY + item.strip(), actor, command_id),
                timeline_limit)
    return state, Outcome("resolved", current, f"resolved by {actor}{note}", before,
                          summary(current), incident, audit=True)


RESPONSE_STATS = ("count", "mean", "p50", "p90", "max")


def _figures(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)

    def rank(q: float) -> float:  # nearest rank: a value that really occurred
        return ordered[max(0, math.ceil(len(ordered) * q) - 1)]

    return {"count": len(ordered), "mean": sum(ordered) / len(ordered), "p50": rank(0.5),
            "p90": rank(0.9), "max": ordered[-1]}


def response_times(incidents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per reason family: incidents by state, and the seconds from opening to the first
    acknowledgement and to resolution (``count``, ``mean``, ``p50``, ``p90``, ``max`` of
    the incidents that got there; None when none did). ``incidents`` are the API's
    incident views (``opened_ms``, ``acknowledged_ms``, ``resolved_ms``)."""
    families: dict[str, dict[str, Any]] = {}
    waits: dict[str, tuple[list[float], list[float]]] = {}
    for incident in incidents:
        family = incident["reason_family"]
        row = families.setdefault(family, {"incidents": 0, **{s: 0 for s in STATES}})
        row["incidents"] += 1
        row[incident["state"]] += 1
        to_ack, to_resolve = waits.setdefault(family, ([], []))
        opened = incident["opened_ms"]
        if incident.get("acknowledged_ms") is not None:
            to_ack.append(max(0, incident["acknowledged_ms"] - opened) / 1000)
        if incident["state"] == RESOLVED and incident.get("resolved_ms") is not None:
            to_resolve.append(max(0, incident["resolved_ms"] - opened) / 1000)
    for family, (to_ack, to_resolve) in waits.items():
        families[family]["time_to_acknowledge_s"] = _figures(to_ack) if to_ack else None
        families[family]["time_to_resolve_s"] = _figures(to_resolve) if to_resolve else None
    return dict(sorted(families.items()))
