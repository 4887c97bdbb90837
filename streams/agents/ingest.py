"""What each scope last reported, and how much: the per-scope summary the API and the
demo show. Fed by the health agent (one agent per input topic, so that a bad message
is dead-lettered exactly once)."""

from __future__ import annotations

import faust

from streams.agents.outputs import store
from streams.app import app, topics
from streams.codec import InputMessage
from streams.records import HealthEvent

scope_summary = app.Table(
    "scope-summary", default=None, partitions=topics.health_events.partitions,
    schema=faust.Schema(key_serializer="json", value_serializer="json"),
)


def summarize(record: HealthEvent, message: InputMessage) -> None:
    previous = scope_summary.data.get(record.scope) or {"events": 0, "last_event_time_ms": 0}
    store(scope_summary, record.scope, {
        "events": previous["events"] + 1,
        "last_kind": record.kind.value,
        "last_event_id": record.event_id,
        "last_event_time_ms": max(record.event_time_ms, previous["last_event_time_ms"]),
        "last_sequence": record.sequence,
        "source": record.source,
    }, message.partition)

