"""polymon's own heartbeat on monitor.heartbeat, so trading runners can fail closed."""

from __future__ import annotations

import time

from streams import __version__
from streams.app import app, metrics, settings, topics
from streams.records import MonitorHeartbeat

STARTED_MS = int(time.time() * 1000)


def _processed_total() -> int:
    samples = metrics.events_processed.collect()[0].samples
    return int(sum(s.value for s in samples if s.name.endswith("_total")))


@app.timer(interval=settings.monitor_heartbeat_interval_s)
async def publish_liveness() -> None:
    beat = MonitorHeartbeat(
        worker_id=settings.worker_id,
        time_ms=int(time.time() * 1000),
        started_ms=STARTED_MS,
        version=__version__,
        events_processed=_processed_total(),
    )
    metrics.worker_up.set(1)
    await topics.heartbeat.send(key=settings.worker_id.encode(), value=beat)
