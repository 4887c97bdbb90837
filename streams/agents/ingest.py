"""Ingest of health events: what each scope last reported, and how much.

The foundation's agent: later agents (freshness, heartbeats, SLO) read the same
stream; this one keeps the per-scope summary the API and the demo show.
"""

from __future__ import annotations

import faust

from streams.agents.decoding import for_each_record
from streams.app import app, topics
from streams.records import HealthEvent

scope_summary = app.Table(
    "scope-summary", default=None, partitions=topics.health_events.partitions,
    schema=faust.Schema(key_serializer="json", value_serializer="json"),
)


def summarize(record: HealthEvent) -> None:
    previous = scope_summary.get(record.scope) or {"events": 0, "last_event_time_ms": 0}
    scope_summary[record.scope] = {
        "events": previous["events"] + 1,
        "last_kind": record.kind.value,
        "last_event_id": record.event_id,
        "last_event_time_ms": max(record.event_time_ms, previous["last_event_time_ms"]),
        "last_sequence": record.sequence,
        "source": record.source,
    }


@app.agent(topics.health_events)
async def ingest_health(stream: faust.StreamT) -> None:
    await for_each_record(stream, "HealthEvent", summarize)
