"""ReportEnvelope builders: deterministic ids, dedup keys from the reason-code registry,
and envelopes that fit the Avro contract."""

from __future__ import annotations

import json
import re

import pytest

from streams.codec import Codecs, SchemaCatalog
from streams.control.pauses import AUTO_CLEAR, hold, new_latch
from streams.envelope import alert_envelope, audit_envelope, dedup_key, derive_id
from streams.reason_codes import REASON_CODES, Severity, reason
from streams.records import AlertPayload, AlertStatus, AuditPayload, ReportEnvelope

CODEC = Codecs(SchemaCatalog())["ReportEnvelope"]
T0 = 1_790_000_000_000
SCOPE = "bot:b1/market:m7"
REGISTRY_FILE = re.escape("streams/reason_codes.py")


def round_trip(envelope: ReportEnvelope) -> ReportEnvelope:
    decoded = CODEC.decode_record(CODEC.encode_record(envelope))
    assert isinstance(decoded, ReportEnvelope)
    return decoded


# --- derive_id --------------------------------------------------------------------------


def test_derive_id_is_deterministic_and_prefixed() -> None:
    first = derive_id("alert", SCOPE, "RISK_STALE_BOOK", "book", f"book@{T0}")
    assert first == derive_id("alert", SCOPE, "RISK_STALE_BOOK", "book", f"book@{T0}")
    assert first.startswith("alert-")
    digest = first.removeprefix("alert-")
    assert len(digest) == 24
    assert all(c in "0123456789abcdef" for c in digest)
    assert derive_id("audit", "x").startswith("audit-")


def test_derive_id_differs_for_different_causes() -> None:
    ids = {
        derive_id("alert", "a", "b"),
        derive_id("alert", "a", "c"),
        derive_id("alert", "b", "a"),  # order matters
        derive_id("alert", "ab"),  # part boundaries matter
        derive_id("alert", "a", "b", ""),
        derive_id("pause", "a", "b"),  # the kind is part of the id
    }
    assert len(ids) == 6
    assert derive_id("x", "ab", "c") != derive_id("x", "a", "bc")


def test_derive_id_accepts_non_string_parts() -> None:
    assert derive_id("pause", SCOPE, True, 3) == derive_id("pause", SCOPE, "True", "3")


# --- dedup keys -------------------------------------------------------------------------


def test_dedup_key_is_scope_and_reason_family() -> None:
    assert dedup_key(SCOPE, "RISK_STALE_BOOK") == f"{SCOPE}|staleness"
    # One family groups its codes: a stale book and a stale registry are one incident.
    assert dedup_key(SCOPE, "RISK_STALE_REGISTRY") == dedup_key(SCOPE, "RISK_STALE_BOOK")
    assert dedup_key(SCOPE, "GOV_HEARTBEAT_MISSED") == f"{SCOPE}|heartbeat"
    assert dedup_key("global", "GOV_SLO_BURN") == "global|slo"
    assert dedup_key("market:m8", "RISK_STALE_BOOK") != dedup_key(SCOPE, "RISK_STALE_BOOK")


@pytest.mark.parametrize("code", sorted(REASON_CODES))
def test_every_reason_code_has_a_dedup_key(code: str) -> None:
    assert dedup_key(SCOPE, code) == f"{SCOPE}|{reason(code).family}"


# --- alert envelopes ----------------------------------------------------------------------


def make_alert(**changes: object) -> ReportEnvelope:
    fields: dict[str, object] = {
        "alert_id": derive_id("alert", SCOPE, "RISK_STALE_BOOK", "book", f"book@{T0}"),
        "status": AlertStatus.FIRING, "scope": SCOPE, "reason_code": "RISK_STALE_BOOK",
        "metric": "staleness_s", "value": 4.6, "threshold": 2.0, "window_s": None,
        "message": "book last updated 4.600s ago (threshold 2s)", "source": "agents.health",
        "observed_ms": T0 + 4_600, "event_time_ms": T0, "config_version": "cfg-1",
    }
    fields.update(changes)
    return alert_envelope(**fields)  # type: ignore[arg-type]


def test_alert_envelope_fields() -> None:
    envelope = make_alert()
    assert envelope.envelope_id == derive_id("alert", SCOPE, "RISK_STALE_BOOK", "book",
                                             f"book@{T0}")
    assert envelope.reason_code == "RISK_STALE_BOOK"
    assert envelope.severity is Severity.CRITICAL
    assert envelope.scope == SCOPE
    assert envelope.dedup_key == f"{SCOPE}|staleness"
    assert envelope.source == "agents.health"
    assert envelope.observed_time_ms == T0 + 4_600
    assert envelope.event_time_ms == T0
    assert envelope.config_version == "cfg-1"
    assert envelope.payload == AlertPayload(
        status=AlertStatus.FIRING, metric="staleness_s", value=4.6, threshold=2.0,
        window_s=None, message="book last updated 4.600s ago (threshold 2s)")


def test_alert_severity_comes_from_the_registry() -> None:
    assert make_alert(reason_code="GOV_DATA_GAP").severity is Severity.WARNING
    assert make_alert(reason_code="GOV_SLO_BURN").severity is Severity.CRITICAL


@pytest.mark.parametrize("envelope", [
    make_alert(),
    make_alert(status=AlertStatus.RESOLVED, value=None, threshold=None, message=""),
    make_alert(reason_code="GOV_SLO_BURN", metric="burn_rate", value=2.5, window_s=10.0,
               scope="global"),
], ids=["firing", "resolved-without-values", "slo-burn"])
def test_alert_envelope_round_trips_through_avro(envelope: ReportEnvelope) -> None:
    decoded = round_trip(envelope)
    assert decoded == envelope
    assert isinstance(decoded.payload, AlertPayload)


# --- audit envelopes ----------------------------------------------------------------------


def make_audit(**changes: object) -> ReportEnvelope:
    fields: dict[str, object] = {
        "decision_id": "pause-abc", "scope": SCOPE, "reason_code": "RISK_STALE_BOOK",
        "action": "pause", "actor": "agents.health", "decision": "paused",
        "before": {"paused": False, "holds": []},
        "after": {"paused": True, "holds": ["RISK_STALE_BOOK"]},
        "evidence": {"alert_id": "alert-1", "value": 4.6, "count": 3},
        "source": "agents.health", "observed_ms": T0, "event_time_ms": T0 - 100,
        "config_version": "cfg-1",
    }
    fields.update(changes)
    return audit_envelope(**fields)  # type: ignore[arg-type]


def test_audit_envelope_fields() -> None:
    envelope = make_audit()
    assert envelope.envelope_id == derive_id("audit", "pause-abc")
    assert envelope.envelope_id == make_audit().envelope_id  # re-delivery: same id
    assert envelope.envelope_id != make_audit(decision_id="pause-xyz").envelope_id
    assert envelope.severity is Severity.CRITICAL
    assert envelope.dedup_key == f"{SCOPE}|staleness"
    payload = envelope.payload
    assert isinstance(payload, AuditPayload)
    assert (payload.action, payload.actor, payload.decision) == (
        "pause", "agents.health", "paused")
    assert payload.evidence == {"alert_id": "alert-1", "value": "4.6", "count": "3"}


def test_audit_before_and_after_are_json_strings() -> None:
    payload = make_audit().payload
    assert isinstance(payload, AuditPayload)
    assert isinstance(payload.before, str) and isinstance(payload.after, str)
    assert json.loads(payload.before) == {"paused": False, "holds": []}
    assert json.loads(payload.after) == {"paused": True, "holds": ["RISK_STALE_BOOK"]}
    # Keys are sorted, so the same state always gives the same string.
    assert payload.after == '{"holds": ["RISK_STALE_BOOK"], "paused": true}'


def test_audit_without_states_has_null_before_and_after() -> None:
    payload = make_audit(before=None, after=None, evidence=None).payload
    assert isinstance(payload, AuditPayload)
    assert payload.before is None and payload.after is None
    assert payload.evidence == {}


def test_audit_of_a_pause_change_round_trips_through_avro() -> None:
    _, change = hold(new_latch(SCOPE), "RISK_STALE_BOOK", AUTO_CLEAR, "alert-1", T0,
                     "agents.health")
    assert change is not None
    envelope = make_audit(decision_id=change.state_id, before=change.before,
                          after=change.after, evidence={"cause_id": change.cause_id})
    decoded = round_trip(envelope)
    assert decoded == envelope
    assert isinstance(decoded.payload, AuditPayload)
    assert json.loads(decoded.payload.after or "") == change.after


def test_audit_states_that_json_cannot_encode_are_stringified() -> None:
    envelope = make_audit(before={"ids": {7}}, after={"status": AlertStatus.FIRING})
    payload = envelope.payload
    assert isinstance(payload, AuditPayload)
    assert json.loads(payload.before or "") == {"ids": "{7}"}
    assert json.loads(payload.after or "") == {"status": "FIRING"}
    assert round_trip(envelope) == envelope


# --- unknown reason codes ------------------------------------------------------------------


def test_unknown_reason_code_names_the_registry_file() -> None:
    with pytest.raises(KeyError, match=REGISTRY_FILE):
        reason("RISK_NOPE")
    with pytest.raises(KeyError, match="'RISK_NOPE'.*" + REGISTRY_FILE):
        dedup_key(SCOPE, "RISK_NOPE")
    with pytest.raises(KeyError, match=REGISTRY_FILE):
        make_alert(reason_code="RISK_NOPE")
    with pytest.raises(KeyError, match=REGISTRY_FILE):
        make_audit(reason_code="RISK_NOPE")
