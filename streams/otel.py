"""Optional OpenTelemetry exporter: a span per decision (alert, pause, incident version,
audit entry), linked to its cause's span (the ``traceparent`` of the input that caused
it), exported over OTLP/HTTP (protobuf) by a background batch processor.

Off by default (setting ``otel_exporter_endpoint``). OpenTelemetry is imported only when
it is on: a worker without the ``otel`` extra starts as before, and one with the setting
on but the extra missing refuses to start with :class:`OtelUnavailable`. Nothing here
blocks an agent: a span is queued (a full queue drops it, as the SDK's batch processor
does) and exported from the processor's own thread; a collector that is down costs a
warning at most once per :data:`FAILURE_LOG_INTERVAL_S`, never the worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

from streams.records import (
    AlertPayload,
    AuditPayload,
    IncidentPayload,
    PauseState,
    ReportEnvelope,
)

log = logging.getLogger(__name__)
FAILURE_LOG_INTERVAL_S = 60.0
EXPORT_TIMEOUT_S = 5.0
TRACER = "polymon.decisions"


class OtelUnavailable(RuntimeError):
    """The exporter is configured but OpenTelemetry is not installed."""


# the running worker's exporter, None while off: streams.agents.outputs asks per send
active: DecisionSpans | None = None


def start(endpoint: str | None, worker_id: str, decision_topics: Collection[str]) -> None:
    """Turn the exporter on when ``endpoint`` is set (spans of what is sent to
    ``decision_topics``); raise OtelUnavailable when the extra is missing."""
    global active
    if not endpoint:
        active = None
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise OtelUnavailable(
            f"otel_exporter_endpoint is set ({endpoint}) but OpenTelemetry is not "
            f"installed ({exc}): install polymon with its otel extra "
            "(pip install 'polymon[otel]') or unset POLYMON_OTEL_EXPORTER_ENDPOINT") from exc
    exporter = QuietExporter(OTLPSpanExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S),
                             endpoint)
    active = DecisionSpans(BatchSpanProcessor(exporter), worker_id, decision_topics)
    log.info("exporting a span per decision to %s (OTLP/HTTP)", endpoint)


def _kind(record: Any) -> tuple[str, str] | None:
    """(kind, decision) of a decision record; None for anything else."""
    if isinstance(record, PauseState):
        return "pause", "paused" if record.paused else "resumed"
    if not isinstance(record, ReportEnvelope):
        return None
    payload = record.payload
    if isinstance(payload, AlertPayload):
        return "alert", str(payload.status)
    if isinstance(payload, IncidentPayload):
        return "incident", str(payload.state)
    if isinstance(payload, AuditPayload):
        return "audit", payload.decision
    return None


class DecisionSpans:
    """Makes the span of each decision and hands it to ``processor`` (a batch processor
    live; the SDK's in-memory exporter in tests)."""

    def __init__(self, processor: Any, worker_id: str, decision_topics: Collection[str]) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        # every decision is kept, whatever the cause's sampled flag said (decisions are rare)
        provider = TracerProvider(
            sampler=ALWAYS_ON, shutdown_on_exit=False,
            resource=Resource.create({"service.name": "polymon",
                                      "service.instance.id": worker_id}))
        provider.add_span_processor(processor)
        self.provider = provider
        self.tracer = provider.get_tracer(TRACER)
        self.topics = frozenset(decision_topics)
        self._failed_at = 0.0

    def sent(self, topic: str, record: Any) -> None:
        """A record was sent to ``topic``: its span, if it is a decision. Never raises."""
        if topic not in self.topics:
            return
        try:
            self.decision(record)
        except Exception:  # a span must never cost a decision
            now = time.monotonic()
            if now - self._failed_at >= FAILURE_LOG_INTERVAL_S:
                self._failed_at = now
                log.exception("could not make the span of a decision (no more such "
                              "messages for %gs)", FAILURE_LOG_INTERVAL_S)

    def decision(self, record: ReportEnvelope | PauseState) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags

        kind = _kind(record)
        if kind is None:
            return
        name, decision = kind
        if isinstance(record, PauseState):
            decision_id, time_ms = record.state_id, record.updated_ms
        else:
            decision_id, time_ms = record.envelope_id, record.observed_time_ms
        attributes: dict[str, Any] = {
            "polymon.decision.kind": name, "polymon.decision": decision,
            "polymon.reason_code": record.reason_code or "", "polymon.scope": record.scope,
            "polymon.envelope_id": decision_id,
            "polymon.cause_events": list(record.cause_events),
        }
        context, links = None, []
        if record.trace_id and record.cause_span_id:
            cause = SpanContext(int(record.trace_id, 16), int(record.cause_span_id, 16),
                                is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
            # a child of its cause (same trace) and linked to it
            context = trace.set_span_in_context(NonRecordingSpan(cause))
            links = [Link(cause, {"polymon.link": "cause"})]
        start_ns = time_ms * 1_000_000
        span = self.tracer.start_span(f"polymon.{name}", context=context, links=links,
                                      attributes=attributes, start_time=start_ns)
        span.end(end_time=start_ns)

    def shutdown(self) -> None:
        self.provider.shutdown()


class QuietExporter:
    """An exporter that logs its failures itself, at most once per interval (the OTLP
    exporter warns on every failed batch and retry: a collector that is down would flood
    the log)."""

    def __init__(self, inner: Any, endpoint: str) -> None:
        self.inner, self.endpoint = inner, endpoint
        self._failed_at = 0.0
        self._failures = 0
        for name in ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                     "opentelemetry.exporter.otlp.common.http"):
            logging.getLogger(name).setLevel(logging.CRITICAL)

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            result = self.inner.export(spans)
        except Exception as exc:  # never into the processor's thread
            result, error = SpanExportResult.FAILURE, repr(exc)
        else:
            error = "the collector refused them or could not be reached"
        if result is SpanExportResult.FAILURE:
            self._failures += len(spans)
            now = time.monotonic()
            if now - self._failed_at >= FAILURE_LOG_INTERVAL_S:
                self._failed_at = now
                log.warning("could not export %d decision span(s) to %s since the last such "
                            "message: %s (decisions are unaffected; next message in >= %gs)",
                            self._failures, self.endpoint, error, FAILURE_LOG_INTERVAL_S)
                self._failures = 0
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))
