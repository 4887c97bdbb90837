"""Incidents: alerts grouped by dedup key (scope + reason family), open → acknowledged →
resolved, with a timeline; each change published on the compacted monitor.incidents,
keyed by incident id.

Partitioning: the incident state of a dedup key lives in the ``incidents`` table on the
partition of monitor.alerts that carries that key. Operator commands arrive on
ops.commands keyed by *scope*, and pause changes on control.pauses keyed by scope, i.e.
possibly on another partition and worker. Both are re-keyed by dedup key onto
monitor.incident.inputs (the incident id carries its reason family, so scope + id name
the dedup key), which is co-partitioned with monitor.alerts: the agent that owns an
incident sees its alerts, its pauses and its commands, in one place.

Flow: decode → the key's state → pure lifecycle (streams.control.incidents) → publish
the incident, audit lifecycle decisions and operator commands.
"""

from __future__ import annotations

import json
from typing import Any

import faust

from streams import tracing
from streams.agents import causes
from streams.agents.commands import handles
from streams.agents.decoding import InvalidInput, consume
from streams.agents.operator_audit import publish_command_audit
from streams.agents.outputs import enqueue, forget, owned_partitions, send, store
from streams.agents.ticks import every
from streams.app import app, clock, codecs, settings, topics
from streams.codec import InputMessage
from streams.control import incidents as lifecycle
from streams.control.incidents import IncidentIdError, Outcome
from streams.envelope import audit_envelope, cause_fields, derive_id
from streams.reason_codes import reason
from streams.records import (
    AlertPayload,
    AuditPayload,
    IncidentPayload,
    OpsAction,
    OpsCommand,
    PauseState,
    ReportEnvelope,
    TimelineEntry,
)
from streams.tracing import Cause

SOURCE = "agents.incidents"
OPERATOR_FAMILY = "operator"
incidents = app.Table(
    "incidents", default=None, partitions=topics.alerts.partitions,
    schema=faust.Schema(key_serializer="json", value_serializer="json"),
)


def _key_state(dedup_key: str, scope: str, family: str) -> dict[str, Any]:
    entry = incidents.data.get(dedup_key)
    return entry["state"] if entry else lifecycle.new_key_state(dedup_key, scope, family)


def _incident_envelope(incident: dict[str, Any], cause_id: str, now_ms: int,
                       event_time_ms: int, cause: Cause | None = None) -> ReportEnvelope:
    """One version of an incident; its id derives from the input that caused it (an alert,
    a pause change, a command), so it does not depend on the order inputs arrive in; its
    trace fields are that input's (``cause``)."""
    return ReportEnvelope(
        **cause_fields(cause), envelope_id=derive_id("incident", incident["incident_id"], cause_id),
        source=SOURCE, reason_code=incident["reason_code"], severity=incident["severity"],
        scope=incident["scope"], dedup_key=incident["dedup_key"], observed_time_ms=now_ms,
        event_time_ms=event_time_ms, config_version=settings.config_version,
        payload=IncidentPayload(
            incident_id=incident["incident_id"], state=incident["state"],
            reason_family=incident["family"], opened_time_ms=incident["opened_ms"],
            timeline=[TimelineEntry(**entry) for entry in incident["timeline"]],
        ),
    )


async def _decide(dedup_key: str, state: dict[str, Any], outcome: Outcome, partition: int,
                  cause_id: str, event_time_ms: int) -> None:
    """Keep the state, publish the incident if it changed, audit an opening."""
    store(incidents, dedup_key, {"partition": partition, "state": state}, partition)
    now_ms = clock.now_ms()
    cause = causes.of(None)  # the input's: its handler says so (caused_by)
    if outcome.incident is not None:
        incident = outcome.incident
        version = _incident_envelope(incident, cause_id, now_ms, event_time_ms, cause)
        await send(topics.incidents, incident["incident_id"].encode(), version)
        # on the partition the input producers pick for the scope (not Faust's), where
        # the scope's rollout state lives; sent with the batch's other output
        enqueue(topics.incident_scopes, incident["scope"].encode(),
                codecs["ReportEnvelope"].encode_record(version))
    if outcome.decision == "opened" and outcome.incident is not None:
        incident = outcome.incident
        await send(topics.audit, incident["scope"].encode(), audit_envelope(
            decision_id=incident["incident_id"], scope=incident["scope"],
            reason_code=incident["reason_code"], action="incident", actor=SOURCE,
            decision="opened", before=outcome.before, after=outcome.after,
            evidence={"incident_id": incident["incident_id"], **outcome.extra},
            source=SOURCE, observed_ms=now_ms, event_time_ms=event_time_ms,
            config_version=settings.config_version, cause=cause,
        ))


# --- alerts ---------------------------------------------------------------------------


async def on_alert(envelope: ReportEnvelope, message: InputMessage) -> None:
    if not isinstance(envelope.payload, AlertPayload):
        raise InvalidInput(f"monitor.alerts carries alerts, got {type(envelope.payload).__name__}")
    family = reason(envelope.reason_code).family
    state = _key_state(envelope.dedup_key, envelope.scope, family)
    state, outcome = lifecycle.on_alert(
        state, alert_id=envelope.envelope_id, status=envelope.payload.status.value,
        reason_code=envelope.reason_code, severity=envelope.severity.value,
        message=envelope.payload.message, time_ms=envelope.observed_time_ms,
        source=envelope.source, timeline_limit=settings.incident_timeline_limit,
    )
    if outcome.decision != "duplicate":
        with causes.caused_by(envelope):  # the alert's cause
            await _decide(envelope.dedup_key, state, outcome, message.partition,
                          envelope.envelope_id, envelope.event_time_ms)


consume(topics.alerts, "ReportEnvelope", on_alert)


# --- re-keying: commands and pause changes to the partition of their dedup key ------


@handles(OpsAction.ACK, OpsAction.RESOLVE)
async def forward_incident_command(command: OpsCommand, message: InputMessage) -> None:
    """ACK/RESOLVE arrive keyed by scope; the incident lives on its dedup key's partition."""
    try:
        if not command.target:
            raise IncidentIdError("target: the incident id is required")
        dedup_key = lifecycle.dedup_key_of(command.scope, command.target)
    except IncidentIdError as exc:
        await publish_command_audit(command, "refused", detail=str(exc), source=SOURCE)
        return
    request = ReportEnvelope(
        **cause_fields(causes.of(None)),  # the command's record, carried along
        envelope_id=derive_id("incident-input", command.command_id), source=SOURCE,
        reason_code="GOV_OPERATOR_ACTION", severity="INFO", scope=command.scope,
        dedup_key=dedup_key, observed_time_ms=clock.now_ms(),
        event_time_ms=command.issued_time_ms, config_version=settings.config_version,
        payload=AuditPayload(
            action=command.action.value.lower(), actor=command.actor, decision="requested",
            evidence={"command_id": command.command_id, "incident_id": command.target,
                      "reason": command.reason, "issued_time_ms": str(command.issued_time_ms),
                      **review_evidence(command)},
        ),
    )
    await send(topics.incident_inputs, dedup_key.encode(), request)


def review_evidence(command: OpsCommand) -> dict[str, str]:
    """A resolution's review as audit evidence (strings): the follow-ups as a JSON list."""
    if command.action is not OpsAction.RESOLVE:
        return {}
    return {"root_cause": command.root_cause or "",
            "follow_ups": json.dumps(command.follow_ups, ensure_ascii=False)}


def follow_ups_of(evidence: dict[str, str]) -> list[str]:
    try:
        items = json.loads(evidence.get("follow_ups") or "[]")
    except ValueError:
        items = None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise InvalidInput("follow_ups: expected a JSON list of strings")
    return items


async def forward_pause(state: PauseState, message: InputMessage) -> None:
    code = state.reason_code or "GOV_OPERATOR_PAUSE"
    family = reason(code).family
    if family == OPERATOR_FAMILY:  # an operator's own pause belongs to no alert's incident
        return
    dedup_key = f"{state.scope}|{family}"
    change = ReportEnvelope(
        **cause_fields(tracing.cause_of(state)),  # the pause's cause, carried along
        envelope_id=derive_id("incident-input", state.state_id), source=SOURCE,
        reason_code=code, severity=reason(code).severity, scope=state.scope,
        dedup_key=dedup_key, observed_time_ms=state.updated_ms,
        event_time_ms=state.updated_ms, config_version=settings.config_version,
        payload=AuditPayload(
            action="pause" if state.paused else "resume", actor=state.actor,
            decision="paused" if state.paused else "resumed",
            evidence={"state_id": state.state_id, "cause_id": state.cause_id or "",
                      "policy": state.policy.value},
        ),
    )
    await send(topics.incident_inputs, dedup_key.encode(), change)


consume(topics.pauses, "PauseState", forward_pause)


# --- commands and pause changes, on the incident's partition -------------------------


async def on_incident_input(envelope: ReportEnvelope, message: InputMessage) -> None:
    with causes.caused_by(envelope):  # the cause it carries (a command's, a pause's)
        await _on_incident_input(envelope, message)


async def _on_incident_input(envelope: ReportEnvelope, message: InputMessage) -> None:
    payload = envelope.payload
    if not isinstance(payload, AuditPayload):
        raise InvalidInput(f"expected an AuditPayload, got {type(payload).__name__}")
    family = envelope.dedup_key.rsplit("|", 1)[-1]
    state = _key_state(envelope.dedup_key, envelope.scope, family)
    evidence = payload.evidence
    if payload.action in ("pause", "resume"):
        state, outcome = lifecycle.on_pause(
            state, state_id=evidence["state_id"], paused=payload.action == "pause",
            reason_code=envelope.reason_code, cause_id=evidence.get("cause_id") or None,
            policy=evidence.get("policy", ""), actor=payload.actor,
            time_ms=envelope.event_time_ms, timeline_limit=settings.incident_timeline_limit,
        )
        if outcome.decision not in ("duplicate", "ignored"):
            await _decide(envelope.dedup_key, state, outcome, message.partition,
                          evidence["state_id"], envelope.event_time_ms)
        return
    if payload.action not in ("ack", "resolve"):
        raise InvalidInput(f"unknown incident input action {payload.action!r}")
    command = OpsCommand(
        command_id=evidence["command_id"], scope=envelope.scope,
        action=OpsAction.ACK if payload.action == "ack" else OpsAction.RESOLVE,
        actor=payload.actor, reason=evidence.get("reason", ""),
        target=evidence["incident_id"], issued_time_ms=envelope.event_time_ms,
        root_cause=evidence.get("root_cause") or None,
        follow_ups=follow_ups_of(evidence),
    )
    state, outcome = lifecycle.on_command(
        state, command_id=command.command_id, action=command.action.value,
        incident=evidence["incident_id"], actor=f"operator:{command.actor}",
        reason=command.reason, time_ms=command.issued_time_ms,
        root_cause=command.root_cause, follow_ups=command.follow_ups,
        timeline_limit=settings.incident_timeline_limit,
    )
    if outcome.decision == "duplicate":
        return
    await _decide(envelope.dedup_key, state, outcome, message.partition,
                  command.command_id, envelope.event_time_ms)
    await publish_command_audit(command, outcome.decision, before=outcome.before,
                                after=outcome.after, detail=outcome.detail,
                                evidence={"incident_id": evidence["incident_id"],
                                          **review_evidence(command)},
                                source=SOURCE)


consume(topics.incident_inputs, "ReportEnvelope", on_incident_input)


# --- retention: resolved incidents leave monitor.incidents and the table ------------

# often enough that an incident outlives its retention by a quarter of it at most
_SWEEP_S = min(60.0, max(0.5, settings.incident_retention_s / 4))


@every(_SWEEP_S)
async def expire_resolved_incidents(now_ms: int) -> None:
    """A resolved incident past ``incident_retention_s`` gets a tombstone on the compacted
    monitor.incidents (compaction drops it; the API's read view forgets it), and its key
    leaves the table: neither grows with every incident ever opened."""
    if not settings.incident_retention_s:
        return
    owned = owned_partitions(topics.alerts)
    for dedup_key, entry in list(incidents.data.items()):
        if not entry or entry["partition"] not in owned:
            continue  # given up in a rebalance: its new owner sweeps it
        expired = lifecycle.expired_incidents(entry["state"], now_ms,
                                              settings.incident_retention_s * 1000)
        if expired is None:
            continue
        for incident_id in expired:  # sent as its versions were, so on their partition
            await send(topics.incidents, incident_id.encode(), None)
        forget(incidents, dedup_key, entry["partition"])


# --- the read model per scope, on the scope's partition (the rollout gate reads it) ---

scope_incidents = app.Table(
    "scope-incidents", default=None, partitions=topics.health_events.partitions,
    schema=faust.Schema(key_serializer="json", value_serializer="json"),
)


async def on_scope_incident(envelope: ReportEnvelope, message: InputMessage) -> None:
    payload = envelope.payload
    if not isinstance(payload, IncidentPayload):
        raise InvalidInput(f"expected an IncidentPayload, got {type(payload).__name__}")
    entry = scope_incidents.data.get(envelope.scope)
    tracked = lifecycle.track_on_scope(
        entry["open"] if entry else {}, incident_id=payload.incident_id,
        state=payload.state.value, severity=envelope.severity.value,
        reason_code=envelope.reason_code)
    if tracked:
        store(scope_incidents, envelope.scope, {"partition": message.partition,
                                                "open": tracked}, message.partition)
    elif entry:  # nothing unresolved: no row kept for every scope that ever had one
        forget(scope_incidents, envelope.scope, message.partition)


consume(topics.incident_scopes, "ReportEnvelope", on_scope_incident)


def open_critical_incidents(scope: str) -> dict[str, str]:
    """The scope's unresolved CRITICAL incidents (incident id → reason code), on the
    worker that owns the scope's partition."""
    entry = scope_incidents.data.get(scope)
    return lifecycle.critical_of(entry["open"]) if entry else {}
