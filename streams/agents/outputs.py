"""What agents publish: alerts, pauses and their audit entries; and table writes that
also work from timers (outside a stream, the changelog partition is given explicitly).

One place turns pure-core decisions into envelopes, so every agent publishes the same
way and every decision is audited."""

from __future__ import annotations

from typing import Any

import faust

from streams.app import app, settings, topics
from streams.control.alerts import AlertTransition
from streams.control.pauses import PauseChange
from streams.envelope import alert_envelope, audit_envelope
from streams.records import AlertStatus, PauseState


def owned_partitions(topic: faust.TopicT) -> set[int]:
    """Partition numbers of ``topic`` this worker actively owns (standby table copies are
    not ours to act on). Inputs are co-partitioned, so any input topic answers for all."""
    name = topic.get_topic_name()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name}


def store(table: faust.Table, key: str, value: Any, partition: int) -> None:
    """Write ``table[key]`` and its changelog record to ``partition`` (the partition of
    the input that owns the key), from a stream or a timer alike."""
    table.data[key] = value
    table.send_changelog(partition, key, value)


async def publish_alert(transition: AlertTransition, source: str, now_ms: int) -> None:
    condition = transition.condition
    envelope = alert_envelope(
        alert_id=transition.alert_id, status=transition.status, scope=condition.scope,
        reason_code=condition.reason_code, metric=condition.metric, value=condition.value,
        threshold=condition.threshold, window_s=condition.window_s, message=condition.message,
        source=source, observed_ms=now_ms, event_time_ms=condition.event_time_ms,
        config_version=settings.config_version,
    )
    await topics.alerts.send(key=envelope.dedup_key.encode(), value=envelope)
    firing = transition.status is AlertStatus.FIRING
    await topics.audit.send(key=condition.scope.encode(), value=audit_envelope(
        decision_id=transition.alert_id, scope=condition.scope,
        reason_code=condition.reason_code, action="alert", actor=source,
        decision="firing" if firing else "resolved",
        evidence={"alert_id": transition.fired_alert_id, "metric": condition.metric,
                  "value": condition.value, "threshold": condition.threshold,
                  "subject": condition.subject, "message": condition.message},
        source=source, observed_ms=now_ms, event_time_ms=condition.event_time_ms,
        config_version=settings.config_version,
    ))


async def publish_pause(change: PauseChange, source: str, now_ms: int) -> None:
    state = PauseState(
        scope=change.scope, paused=change.paused, reason_code=change.reason_code,
        since_ms=change.since_ms, cause_id=change.cause_id, policy=change.policy,
        actor=change.actor, updated_ms=now_ms, state_id=change.state_id,
    )
    await topics.pauses.send(key=change.scope.encode(), value=state)
    await topics.audit.send(key=change.scope.encode(), value=audit_envelope(
        decision_id=change.state_id, scope=change.scope,
        reason_code=change.reason_code or "GOV_OPERATOR_ACTION",
        action="pause" if change.paused else "resume", actor=change.actor,
        decision="paused" if change.paused else "resumed",
        before=change.before, after=change.after,
        evidence={"cause_id": change.cause_id, "policy": change.policy},
        source=source, observed_ms=now_ms, event_time_ms=now_ms,
        config_version=settings.config_version,
    ))
