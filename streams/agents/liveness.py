"""polymon's own heartbeat on monitor.heartbeat, so trading runners can fail closed. It
carries the worker's input progress: a worker whose input is stuck while this timer runs
on says so (``healthy`` false), and a runner's guard fails closed on it."""

from __future__ import annotations

import logging
import time
from typing import Any

from faust.exceptions import ConsumerNotStarted

from streams import __version__, delivery
from streams.app import app, metrics, settings, topics
from streams.control.progress import Mark, Observed, advance, stuck
from streams.records import MonitorHeartbeat

log = logging.getLogger(__name__)

STARTED_MS = int(time.time() * 1000)
# input partition -> its processed offset and since when it stood still with lag
_marks: dict[str, Mark] = {}
_stalled_by_fault: set[Any] = set()


def _processed_total() -> int:
    samples = metrics.events_processed.collect()[0].samples
    return int(sum(s.value for s in samples if s.name.endswith("_total")))


def _inputs() -> set[Any]:
    """The input topic partitions assigned to this worker (not changelogs, not outputs)."""
    try:
        assigned = app.consumer.assignment()
    except ConsumerNotStarted:  # the first beats of a starting worker
        return set()
    return {tp for tp in assigned if tp.topic in delivery.batch_handlers}


def _input_progress(inputs: set[Any]) -> dict[str, Observed]:
    """Each assigned input partition's next offset to process and the records after it, from
    what the consumer holds already (the highwater of its last fetch, the offsets it read
    and committed): no broker call. A partition whose highwater is not known yet is left
    out. Right after an assignment, one waiting record may go uncounted (Faust holds the
    committed offset there, not the last read one)."""
    consumer = app.consumer
    observed: dict[str, Observed] = {}
    for tp in inputs:
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        read = consumer._read_offset.get(tp)
        committed = consumer._committed_offset.get(tp) or 0
        position = max(read + 1 if read is not None else 0, committed)
        observed[f"{tp.topic}[{tp.partition}]"] = Observed(position, max(0, highwater - position))
    return observed


def _inject_stall(inputs: set[Any]) -> None:
    """The fault-injection hook (``fault_stall_input_file``, tests only): while the file
    exists, the worker stops taking records of its input partitions; its timers run on."""
    path = settings.fault_stall_input_file
    if path is None:
        return
    consumer = app.consumer
    if path.exists():
        fresh = inputs - _stalled_by_fault
        if fresh:
            log.warning("FAULT INJECTION: input stalled on %d partitions (%s exists)",
                        len(fresh), path)
            consumer.pause_partitions(fresh)
            _stalled_by_fault.update(fresh)
    elif _stalled_by_fault:
        log.warning("FAULT INJECTION: input resumed")
        consumer.resume_partitions(_stalled_by_fault & inputs)
        _stalled_by_fault.clear()


@app.timer(interval=settings.monitor_heartbeat_interval_s)
async def publish_liveness() -> None:
    global _marks
    inputs = _inputs()
    _inject_stall(inputs)
    observed = _input_progress(inputs)
    now = time.monotonic()
    _marks = advance(_marks, observed, now)
    problem = stuck(_marks, observed, now, settings.input_stall_s)
    beat = MonitorHeartbeat(
        worker_id=settings.worker_id,
        time_ms=int(time.time() * 1000),
        started_ms=STARTED_MS,
        version=__version__,
        events_processed=_processed_total(),
        input_partitions=len(inputs),
        input_lag=sum(seen.lag for seen in observed.values()),
        input_offset_sum=sum(seen.offset for seen in observed.values()),
        healthy=problem is None,
        unhealthy_reason=problem,
    )
    metrics.worker_up.set(1)
    await topics.heartbeat.send(key=settings.worker_id.encode(), value=beat)
