"""The operator API's pure parts: request validation with precise messages, and the JSON
views built from table state and from the records of the compacted output topics.

No Faust, no aiohttp: streams/web/views.py binds these to routes, and
tests/unit/web/ tests them with plain values.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.control.health import gap_counts
from streams.control.incidents import IncidentIdError, family_of, resolved_alert_id
from streams.records import (
    AuditPayload,
    IncidentPayload,
    PauseState,
    ReportEnvelope,
    RolloutStage,
    RolloutState,
)
from streams.scopes import SCOPE_KINDS, ScopeError, ancestors, parse_scope

STAGES = [stage.value for stage in RolloutStage]  # the ladder, in order
ROLLOUT_KINDS = ("model", "strategy")
INCIDENT_STATES = ("OPEN", "ACKNOWLEDGED", "RESOLVED")
SEVERITIES = ("INFO", "WARNING", "CRITICAL")
MAX_REASON = 500
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


class ApiError(Exception):
    """An answer other than success: 400 bad request, 404 unknown, 409 conflict."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


# --- query parameters ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScopeFilter:
    """``scope``: that scope and every scope it covers (a pause of it would cover);
    ``kind``: scopes whose last segment is of that kind."""

    scope: str | None = None
    kind: str | None = None

    def matches(self, scope: str) -> bool:
        if self.kind is not None and _leaf_kind(scope) != self.kind:
            return False
        if self.scope is None:
            return True
        try:
            return self.scope in ancestors(scope)
        except ScopeError:
            return False


def _leaf_kind(scope: str) -> str:
    return scope.rsplit("/", 1)[-1].split(":", 1)[0]


def scope_kind(scope: str) -> str:
    """'global' or the kind of the scope's last segment (a bounded metrics label)."""
    return "global" if scope == "global" else _leaf_kind(scope)


def check_scope(scope: str, what: str = "scope") -> str:
    try:
        parse_scope(scope)
    except ScopeError as exc:
        raise bad_request(f"{what}: {exc}") from None
    return scope


def _bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise bad_request(f"{name}: expected true or false, got {value!r}")


def _choices(name: str, value: str, allowed: Iterable[str]) -> list[str]:
    allowed = list(allowed)
    chosen = [part.strip().upper() for part in value.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in allowed]
    if not chosen or unknown:
        raise bad_request(f"{name}: {', '.join(unknown) or 'nothing'} is not one of "
                          f"{', '.join(a.lower() for a in allowed)}")
    return chosen


def _kind(value: str) -> str:
    if value not in SCOPE_KINDS | {"global"}:
        raise bad_request(f"kind: {value!r} is not one of "
                          f"{', '.join(sorted(SCOPE_KINDS))}, global")
    return value


def _limit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 5000:
        raise bad_request(f"limit: expected an integer from 1 to 5000, got {value!r}")
    return int(value)


QUERY_PARSERS: dict[str, Callable[[str], Any]] = {
    "scope": lambda v: check_scope(v, "scope"),
    "kind": _kind,
    "state": lambda v: _choices("state", v, INCIDENT_STATES),
    "severity": lambda v: _choices("severity", v, SEVERITIES),
    "paused": lambda v: _bool("paused", v),
    "stale": lambda v: _bool("stale", v),
    "limit": _limit,
    "action": lambda v: v.lower(),
    "local": lambda v: _bool("local", v),
}


def parse_query(query: Mapping[str, str], allowed: Iterable[str]) -> dict[str, Any]:
    """The query parameters of ``allowed`` parsed; an unknown or malformed one is a 400."""
    allowed = [*allowed, "local"]
    parsed: dict[str, Any] = {}
    for name, value in query.items():
        if name not in allowed:
            raise bad_request(f"unknown query parameter {name!r} (allowed: "
                              f"{', '.join(a for a in allowed if a != 'local')})")
        parsed[name] = QUERY_PARSERS[name](value)
    return parsed


def scope_filter(params: Mapping[str, Any]) -> ScopeFilter:
    return ScopeFilter(params.get("scope"), params.get("kind"))


# --- request bodies and headers ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BodyField:
    required: bool = False
    choices: tuple[str, ...] | None = None
    max_length: int = MAX_REASON


REASON = BodyField(required=True)


def parse_body(raw: bytes, fields: Mapping[str, BodyField]) -> dict[str, str]:
    """A JSON object with exactly these string fields; everything else is a precise 400."""
    expected = ", ".join(f"'{name}'" for name in fields)
    if not raw.strip():
        raise bad_request(f"body: expected a JSON object with {expected}, got an empty body")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request(f"body: expected a JSON object with {expected}, "
                          f"got {type(body).__name__}")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise bad_request(f"body: unknown field {', '.join(repr(u) for u in unknown)} "
                          f"(allowed: {', '.join(fields)})")
    parsed: dict[str, str] = {}
    for name, spec in fields.items():
        value = body.get(name)
        if value is None:
            if spec.required:
                raise bad_request(f"{name}: required")
            continue
        if not isinstance(value, str):
            raise bad_request(f"{name}: expected a string, got {type(value).__name__}")
        value = value.strip()
        if spec.required and not value:
            raise bad_request(f"{name}: must not be empty")
        if len(value) > spec.max_length:
            raise bad_request(f"{name}: at most {spec.max_length} characters, got {len(value)}")
        if spec.choices is not None:
            upper = value.upper()
            if upper not in spec.choices:
                raise bad_request(f"{name}: {value!r} is not one of "
                                  f"{', '.join(c.lower() for c in spec.choices)}")
            value = upper
        parsed[name] = value
    return parsed


def command_id(idempotency_key: str | None) -> str:
    """The command id: the Idempotency-Key header (same key, same command), or a new id."""
    if idempotency_key is None:
        return f"api-{uuid.uuid4().hex}"
    if not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise bad_request("Idempotency-Key: 1 to 128 characters of A-Z a-z 0-9 _ . : -")
    return idempotency_key


def incident_path_id(incident_id: str) -> str:
    try:
        family_of(incident_id)
    except IncidentIdError as exc:
        raise bad_request(str(exc)) from None
    return incident_id


def rollout_scope(model: str) -> str:
    """``m1`` means ``model:m1``; a full ``model:``/``strategy:`` scope is taken as is."""
    scope = model if ":" in model else f"model:{model}"
    check_scope(scope, "model")
    if "/" in scope or _leaf_kind(scope) not in ROLLOUT_KINDS:
        raise bad_request(f"model: {model!r} is not a model or strategy (model:<id>, "
                          "strategy:<id> or a bare model id)")
    return scope


def check_promotion(scope: str, rollout: Mapping[str, Any] | None,
                    to_stage: str | None) -> None:
    if rollout is None:
        return  # the rollout agent decides for a scope it has no state for yet
    current = rollout["stage"]
    if current == STAGES[-1]:
        raise ApiError(409, f"{scope} is already {current}: nothing to promote to")
    if to_stage is not None and STAGES.index(to_stage) <= STAGES.index(current):
        raise ApiError(409, f"cannot promote {scope} from {current} to {to_stage}: "
                       "not a later stage")


def check_rollback(scope: str, rollout: Mapping[str, Any] | None, to_stage: str) -> None:
    if rollout is None:
        raise ApiError(404, f"no rollout state for {scope} on control.rollout")
    current = rollout["stage"]
    if STAGES.index(to_stage) >= STAGES.index(current):
        raise ApiError(409, f"cannot roll {scope} back from {current} to {to_stage}: "
                       "not an earlier stage")


# --- views of table state (this worker's partitions) -----------------------------------


def freshness_rows(scope_health: Iterable[tuple[str, Any]], now_ms: int,
                   threshold_s: Callable[[str, str], float], match: ScopeFilter,
                   stale_only: bool = False) -> dict[str, Any]:
    """Per scope and feed: age, threshold, stale flag, gap counts."""
    rows: dict[str, Any] = {}
    for scope, state in scope_health:
        if not state or not state.get("feeds") or not match.matches(scope):
            continue
        feeds = {}
        for feed, entry in state["feeds"].items():
            age_s = max(0, now_ms - entry["last_event_ms"]) / 1000
            threshold = threshold_s(scope, feed)
            gaps = gap_counts(entry)
            feed_row = {
                "last_event_ms": entry["last_event_ms"], "age_s": round(age_s, 3),
                "threshold_s": threshold, "stale": age_s > threshold,
                "alert_id": (entry.get("alert") or {}).get("alert_id"),
                "highest_sequence": gaps["highest"], "missing": gaps["missing"],
                "duplicates": gaps["duplicates"], "reorders": gaps["reorders"],
                "count": gaps["count"],
            }
            if not stale_only or feed_row["stale"]:
                feeds[feed] = feed_row
        if feeds:
            rows[scope] = {"feeds": feeds, "stale": any(f["stale"] for f in feeds.values()),
                           "missing": sum(f["missing"] for f in feeds.values())}
    return rows


def heartbeat_rows(scope_health: Iterable[tuple[str, Any]], now_ms: int, miss_factor: float,
                   match: ScopeFilter) -> dict[str, Any]:
    """Per scope with heartbeats (bots, markets, ...): age, limit, healthy."""
    rows: dict[str, Any] = {}
    for scope, state in scope_health:
        beat = (state or {}).get("heartbeat")
        if not beat or not match.matches(scope):
            continue
        age_s = max(0, now_ms - beat["last_event_ms"]) / 1000
        limit_s = beat["interval_ms"] * miss_factor / 1000
        rows[scope] = {"last_event_ms": beat["last_event_ms"], "age_s": round(age_s, 3),
                       "interval_ms": beat["interval_ms"], "limit_s": limit_s,
                       "healthy": age_s <= limit_s,
                       "alert_id": (beat.get("alert") or {}).get("alert_id")}
    return rows


def execution_rows(execution_state: Iterable[tuple[str, Any]],
                   match: ScopeFilter) -> dict[str, Any]:
    """Fill ratio and slippage error per window, per market, bot and model cohort
    (keys ``model:<id>#CANARY`` / ``#BASELINE``), with the execution alerts firing."""
    rows: dict[str, Any] = {}
    for key, state in execution_state:
        if not state:
            continue
        scope, _, cohort = key.partition("#")
        if not match.matches(scope):
            continue
        alerts = state.get("alerts") or {}
        rows[key] = {
            "scope": scope, "cohort": cohort or None,
            "last_event_ms": state.get("last_event_ms"), "windows": state.get("figures") or {},
            "alerts": {code: (alert or {}).get("alert_id") for code, alert in alerts.items()},
            "breaching": sorted(code for code, alert in alerts.items() if alert),
        }
    return rows


def drift_rows(drift_state: Iterable[tuple[str, Any]], canary_state: Iterable[tuple[str, Any]],
               match: ScopeFilter) -> dict[str, Any]:
    """Per model: drift against training (max KL, its feature, healthy) and the canary
    against the baseline per leading metric (means, delta, verdict, p-values)."""
    rows: dict[str, Any] = {}
    for scope, state in drift_state:
        if state and match.matches(scope):
            rows.setdefault(scope, {"drift": None, "canary": None})["drift"] = {
                **(state.get("evaluation") or {}),
                "alert_id": (state.get("alert") or {}).get("alert_id")}
    for scope, state in canary_state:
        if state and match.matches(scope):
            evaluation = state.get("evaluation") or {}
            rows.setdefault(scope, {"drift": None, "canary": None})["canary"] = {
                "canary_version": evaluation.get("canary_version"),
                "combined": evaluation.get("combined"),
                "regressed": evaluation.get("regressed", []),
                "evaluated_ms": evaluation.get("evaluated_ms"),
                "metrics": evaluation.get("metrics", {}),
                "alert_id": (state.get("alert") or {}).get("alert_id")}
    return rows


# --- views of the compacted output topics (every worker reads them whole) --------------


def pause_view(state: PauseState) -> dict[str, Any]:
    return state.model_dump(mode="json")


def rollout_view(state: RolloutState) -> dict[str, Any]:
    view = state.model_dump(mode="json")
    view["stage_index"] = STAGES.index(state.stage.value)
    view["ladder"] = STAGES
    return view


def incident_view(envelope: ReportEnvelope) -> dict[str, Any]:
    payload = envelope.payload
    assert isinstance(payload, IncidentPayload)
    timeline = [entry.model_dump(mode="json") for entry in payload.timeline]
    fired = [e["ref"] for e in timeline if e["what"].startswith("alert firing") and e["ref"]]
    ended = {e["ref"] for e in timeline if e["what"].startswith("alert resolved")}
    firing = [alert for alert in fired if resolved_alert_id(alert) not in ended]
    acked = [e for e in timeline if e["what"].startswith("acknowledged")]
    resolved = [e for e in timeline if e["what"].startswith("resolved")]
    pauses = [e for e in timeline if e["what"].startswith("scope ")]
    return {
        "incident_id": payload.incident_id, "state": payload.state.value,
        "severity": envelope.severity.value, "scope": envelope.scope,
        "dedup_key": envelope.dedup_key, "reason_code": envelope.reason_code,
        "reason_family": payload.reason_family, "opened_ms": payload.opened_time_ms,
        "updated_ms": max([payload.opened_time_ms, *(e["time_ms"] for e in timeline)]),
        "acknowledged_by": acked[-1]["actor"] if acked else None,
        "acknowledged_ms": acked[-1]["time_ms"] if acked else None,
        "resolved_by": resolved[-1]["actor"] if resolved else None,
        "resolved_ms": resolved[-1]["time_ms"] if resolved else None,
        "firing_alerts": len(firing), "alerts": len(fired),
        "paused": pauses[-1]["what"].startswith("scope paused") if pauses else None,
        "timeline": timeline, "envelope_id": envelope.envelope_id,
    }


def audit_view(envelope: ReportEnvelope) -> dict[str, Any]:
    payload = envelope.payload
    assert isinstance(payload, AuditPayload)

    def parsed(text: str | None) -> Any:
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text

    return {
        "envelope_id": envelope.envelope_id, "time_ms": envelope.observed_time_ms,
        "scope": envelope.scope, "reason_code": envelope.reason_code,
        "severity": envelope.severity.value, "source": envelope.source,
        "action": payload.action, "actor": payload.actor, "decision": payload.decision,
        "before": parsed(payload.before), "after": parsed(payload.after),
        "evidence": dict(payload.evidence),
    }


def incident_sort_key(incident: Mapping[str, Any]) -> tuple[int, int, int]:
    """Unresolved first, then the most severe, then the newest."""
    return (INCIDENT_STATES.index(incident["state"]) // 2,
            -SEVERITIES.index(incident["severity"]), -incident["opened_ms"])


def select_incidents(incidents: Iterable[dict[str, Any]],
                     params: Mapping[str, Any]) -> list[dict[str, Any]]:
    match = scope_filter(params)
    states = params.get("state")
    severities = params.get("severity")
    chosen = [
        incident for incident in incidents
        if match.matches(incident["scope"])
        and (states is None or incident["state"] in states)
        and (severities is None or incident["severity"] in severities)
    ]
    chosen.sort(key=incident_sort_key)
    return chosen[:params.get("limit", 500)]
