"""The optional OpenTelemetry exporter: a span per decision, a child of and linked to its
cause's span; exported over OTLP/HTTP to a real (local) HTTP receiver by the batch
processor; a collector that is down is logged, rate-limited, never raised; the worker
refuses to start with the setting on and the extra missing."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from streams import otel
from streams.records import PauseState
from tests.samples import SAMPLES

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TOPICS = ["monitor.alerts", "control.pauses", "monitor.incidents", "audit.log"]


def _alert() -> Any:
    alert = SAMPLES["ReportEnvelope"][0]
    return alert.model_copy(update={"trace_id": TRACE, "cause_span_id": SPAN,
                                    "cause_events": ["health.events/2@41"]})


def _pause(**fields: Any) -> PauseState:
    return PauseState(scope="market:m7", paused=True, reason_code="RISK_STALE_BOOK",
                      since_ms=1_790_000_000_000, cause_id="alert-1", policy="AUTO_CLEAR",
                      actor="agents.health", updated_ms=1_790_000_000_005, state_id="s-1",
                      **fields)


@pytest.fixture
def memory() -> Iterator[tuple[otel.DecisionSpans, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    spans = otel.DecisionSpans(SimpleSpanProcessor(exporter), "worker-1", TOPICS)
    yield spans, exporter
    spans.shutdown()


def test_a_decision_s_span_is_a_child_of_and_linked_to_its_cause(
        memory: tuple[otel.DecisionSpans, InMemorySpanExporter]) -> None:
    spans, exporter = memory
    alert = _alert()
    spans.sent("monitor.alerts", alert)
    [span] = exporter.get_finished_spans()
    assert span.name == "polymon.alert"
    assert format(span.context.trace_id, "032x") == TRACE  # in the cause's trace
    assert span.parent is not None and format(span.parent.span_id, "016x") == SPAN
    [link] = span.links
    assert (format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")) == (
        TRACE, SPAN)
    assert span.attributes["polymon.reason_code"] == "RISK_STALE_BOOK"
    assert span.attributes["polymon.scope"] == alert.scope
    assert span.attributes["polymon.envelope_id"] == alert.envelope_id
    assert tuple(span.attributes["polymon.cause_events"]) == ("health.events/2@41",)
    assert span.start_time == alert.observed_time_ms * 1_000_000


def test_pauses_and_untraced_decisions_get_spans_and_other_topics_none(
        memory: tuple[otel.DecisionSpans, InMemorySpanExporter]) -> None:
    spans, exporter = memory
    spans.sent("control.pauses", _pause(trace_id=TRACE, cause_span_id=SPAN))
    spans.sent("control.pauses", _pause())  # no trace: a root span, no link
    spans.sent("monitor.incident.inputs", _alert())  # a re-keyed input: no decision
    pause, untraced = exporter.get_finished_spans()
    assert pause.name == "polymon.pause" and pause.attributes["polymon.envelope_id"] == "s-1"
    assert format(pause.links[0].context.span_id, "016x") == SPAN
    assert untraced.parent is None and not untraced.links


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[ExportTraceServiceRequest]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.status == 200:
            self.received.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", handler
    finally:
        server.shutdown()
        thread.join(timeout=5)
        otel.active = None


def test_spans_reach_an_otlp_http_receiver_in_the_background(
        receiver: tuple[str, type[_Receiver]]) -> None:
    endpoint, handler = receiver
    otel.start(endpoint, "worker-1", TOPICS)
    assert otel.active is not None
    otel.active.sent("monitor.alerts", _alert())
    otel.active.provider.force_flush(10_000)
    spans = [span for request in handler.received for resource in request.resource_spans
             for scope in resource.scope_spans for span in scope.spans]
    [span] = spans
    assert span.name == "polymon.alert" and span.trace_id.hex() == TRACE
    assert [link.span_id.hex() for link in span.links] == [SPAN]
    otel.active.shutdown()


def test_a_collector_that_is_down_is_logged_rate_limited(
        receiver: tuple[str, type[_Receiver]], caplog: pytest.LogCaptureFixture) -> None:
    endpoint, handler = receiver
    handler.status = 400  # refused (not retried): as quick as a test wants
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    quiet = otel.QuietExporter(OTLPSpanExporter(endpoint=endpoint, timeout=2), endpoint)
    spans = otel.DecisionSpans(SimpleSpanProcessor(quiet), "worker-1", TOPICS)
    with caplog.at_level(logging.WARNING, logger="streams.otel"):
        for _ in range(3):
            spans.sent("monitor.alerts", _alert())  # no exception reaches the caller
    warnings = [r for r in caplog.records if "could not export" in r.getMessage()]
    assert len(warnings) == 1 and endpoint in warnings[0].getMessage()
    spans.shutdown()


def test_an_exporter_that_raises_is_a_failure_not_an_exception() -> None:
    class Broken:
        def export(self, spans: Any) -> Any:
            raise ConnectionError("collector gone")

    quiet = otel.QuietExporter(Broken(), "http://127.0.0.1:1/v1/traces")
    assert quiet.export([object()]) is SpanExportResult.FAILURE


def test_the_worker_modules_do_not_import_opentelemetry() -> None:
    code = ("import sys; import streams.otel, streams.agents.causes; "
            "sys.exit('opentelemetry' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_off_by_default_and_a_clear_error_without_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    otel.start(None, "worker-1", TOPICS)
    assert otel.active is None
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter",
                        None)  # as if the otel extra were not installed
    with pytest.raises(otel.OtelUnavailable, match=r"polymon\[otel\]"):
        otel.start("http://127.0.0.1:4318/v1/traces", "worker-1", TOPICS)
    assert otel.active is None
