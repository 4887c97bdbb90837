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
    summary = scope_summary.data.get(record.scope)
    if summary is None:
        summary = {"events": 0, "last_event_time_ms": 0}
    # updated in place, like the agents' state: a summary is only read as a whole
    summary["events"] += 1
    summary["last_kind"] = record.kind.value
    summary["last_event_id"] = record.event_id
    summary["last_event_time_ms"] = max(record.event_time_ms, summary["last_event_time_ms"])
    summary["last_sequence"] = record.sequence
    summary["source"] = record.source
    store(scope_summary, record.scope, summary, message.partition)

