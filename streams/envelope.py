"""ReportEnvelope builders: alerts, incidents and the audit log share one envelope, with
ids derived from their causes so a re-delivered input re-publishes the same ids."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from streams.reason_codes import reason
from streams.records import AlertPayload, AlertStatus, AuditPayload, ReportEnvelope
from streams.tracing import Cause


def derive_id(kind: str, *parts: object) -> str:
    """A deterministic id: the same cause always gives the same id."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return f"{kind}-{digest[:24]}"


def dedup_key(scope: str, reason_code: str) -> str:
    """What groups repeats: scope + reason family."""
    return f"{scope}|{reason(reason_code).family}"


def cause_fields(cause: Cause | None) -> dict[str, Any]:
    """An envelope's trace fields (trace_id, cause_span_id, cause_events) for ``cause``."""
    return {} if cause is None else cause.fields()


def alert_envelope(
    *, alert_id: str, status: AlertStatus, scope: str, reason_code: str, metric: str,
    value: float | None, threshold: float | None, window_s: float | None, message: str,
    source: str, observed_ms: int, event_time_ms: int, config_version: str,
    cause: Cause | None = None,
) -> ReportEnvelope:
    return ReportEnvelope(
        **cause_fields(cause), envelope_id=alert_id, source=source, reason_code=reason_code,
        severity=reason(reason_code).severity, scope=scope,
        dedup_key=dedup_key(scope, reason_code), observed_time_ms=observed_ms,
        event_time_ms=event_time_ms, config_version=config_version,
        payload=AlertPayload(status=status, metric=metric, value=value, threshold=threshold,
                             window_s=window_s, message=message),
    )


def audit_envelope(
    *, decision_id: str, scope: str, reason_code: str, action: str, actor: str, decision: str,
    before: Any = None, after: Any = None, evidence: dict[str, Any] | None = None,
    source: str, observed_ms: int, event_time_ms: int, config_version: str,
    cause: Cause | None = None,
) -> ReportEnvelope:
    def as_json(state: Any) -> str | None:
        return None if state is None else json.dumps(state, sort_keys=True, default=str)

    return ReportEnvelope(
        **cause_fields(cause), envelope_id=derive_id("audit", decision_id),
        source=source, reason_code=reason_code,
        severity=reason(reason_code).severity, scope=scope,
        dedup_key=dedup_key(scope, reason_code), observed_time_ms=observed_ms,
        event_time_ms=event_time_ms, config_version=config_version,
        payload=AuditPayload(
            action=action, actor=actor, decision=decision, before=as_json(before),
            after=as_json(after),
            evidence={k: str(v) for k, v in (evidence or {}).items()},
        ),
    )
