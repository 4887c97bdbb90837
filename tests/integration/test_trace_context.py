"""Decisions carry their cause, on the real broker with a real worker: an input with a W3C
``traceparent`` header goes stale and pauses its market; the alert, the pause, the
incident and the audit entries all name that input (trace id, span id, and its
``topic/partition@offset``), and a PauseGuard's denial names the trace id. An operator
command's pause names the command's record and trace."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

import pytest

from streams.console import kafka_producer
from streams.records import (
    AlertPayload,
    AuditPayload,
    FillEvent,
    FillKind,
    HealthEvent,
    HealthEventKind,
    IncidentPayload,
    OpsAction,
    OpsCommand,
    PauseState,
    ReportEnvelope,
)
from streams.runner import PauseGuard
from tests.conftest import CODECS, Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.compiled_twin]

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
COMMAND_TRACE, COMMAND_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
TOKEN = "alice-token-0123456789"
FAST = {"evaluation_interval_s": 0.1, "staleness_thresholds_s": {"book": 1.0},
        "monitor_heartbeat_interval_s": 0.2}


def _produce(stack: Stack, topic: str, key: str, value: bytes,
             headers: list[tuple[str, bytes]]) -> str:
    """Send one record with headers; its ``topic/partition@offset`` as the worker names it."""
    producer = kafka_producer(stack.bootstrap)
    delivered: list[Any] = []
    producer.produce(stack.topic(topic), value=value, key=key.encode(), headers=headers,
                     on_delivery=lambda error, message: delivered.append((error, message)))
    producer.flush(10)
    error, message = delivered[0]
    assert error is None, error
    return f"{message.topic()}/{message.partition()}@{message.offset()}"


def _traced(record: Any) -> tuple[str | None, str | None, list[str]]:
    return record.trace_id, record.cause_span_id, record.cause_events


def test_a_stale_book_s_pause_alert_incident_and_audit_name_its_traced_input(
        stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(**FAST, api_tokens={TOKEN: {"actor": "alice",
                                                            "rights": ["pause"]}})
    event = HealthEvent(event_id=uuid.uuid4().hex, scope="market:tr1",
                        kind=HealthEventKind.DATA_UPDATE, source="book-feed",
                        event_time_ms=int(time.time() * 1000), feed="book", sequence=1)
    # a garbage traceparent on another scope: ignored (counted), the record still counts
    _produce(stack, "health.events", "market:tr2", CODECS["HealthEvent"].encode_record(
        event.model_copy(update={"scope": "market:tr2"})), [("traceparent", b"00-zz")])
    cause_event = _produce(stack, "health.events", "market:tr1",
                           CODECS["HealthEvent"].encode_record(event),
                           [("traceparent", f"00-{TRACE}-{SPAN}-01".encode())])
    expected = (TRACE, SPAN, [cause_event])

    def pause_of(scope: str) -> PauseState | None:
        states = [CODECS["PauseState"].decode_record(m.value)
                  for m in stack.read("control.pauses", idle_timeout_s=0.5)]
        return next((s for s in states if s.scope == scope and s.paused), None)

    pause = wait_until(lambda: pause_of("market:tr1"), 20, what="market:tr1 paused")
    assert _traced(pause) == expected
    alert = next(a for a in stack.read_records("monitor.alerts", idle_timeout_s=0.5)
                 if a.scope == "market:tr1" and isinstance(a.payload, AlertPayload))
    assert alert.reason_code == "RISK_STALE_BOOK" and _traced(alert) == expected
    assert pause.cause_id == alert.envelope_id  # the pause's cause is that alert

    def incident() -> ReportEnvelope | None:
        return next((i for i in stack.read_records("monitor.incidents", idle_timeout_s=0.5)
                     if i.scope == "market:tr1" and isinstance(i.payload, IncidentPayload)),
                    None)

    assert _traced(wait_until(incident, 10, what="its incident")) == expected

    def audits() -> dict[str, ReportEnvelope]:
        entries = [e for e in stack.read_records("audit.log", idle_timeout_s=0.5)
                   if e.scope == "market:tr1" and isinstance(e.payload, AuditPayload)]
        found = {e.payload.action: e for e in entries}
        return found if {"alert", "pause", "incident"} <= set(found) else {}

    for action, entry in wait_until(audits, 10, what="the audit entries").items():
        assert _traced(entry) == expected, action
    # the tr2 pause (stale as well) names its own record, without a trace
    other = wait_until(lambda: pause_of("market:tr2"), 10, what="market:tr2 paused")
    assert other.trace_id is None and len(other.cause_events) == 1

    with PauseGuard(stack.bootstrap, topic_prefix=stack.prefix,
                    heartbeat_max_age_s=5) as guard:
        def denied() -> list[Any]:  # (a denial is falsy)
            decision = guard.allowed("bot:b1/market:tr1")
            return [decision] if decision.trace_id else []

        [decision] = wait_until(denied, 15, what="a PauseGuard denial naming the trace")
        assert not decision and decision.trace_id == TRACE
        assert decision.cause_id == alert.envelope_id
        assert decision.reason_code == "RISK_STALE_BOOK"
        assert f"trace {TRACE}" in str(decision) and cause_event in str(decision)

    # an operator's pause names the command's record and its trace
    command = OpsCommand(command_id=uuid.uuid4().hex, scope="bot:op1", action=OpsAction.PAUSE,
                         actor="alice", reason="trace test",
                         issued_time_ms=int(time.time() * 1000))
    command_event = _produce(stack, "ops.commands", "bot:op1",
                             CODECS["OpsCommand"].encode_record(command),
                             [("traceparent", f"00-{COMMAND_TRACE}-{COMMAND_SPAN}-01".encode())])
    operator_pause = wait_until(lambda: pause_of("bot:op1"), 10, what="bot:op1 paused")
    assert _traced(operator_pause) == (COMMAND_TRACE, COMMAND_SPAN, [command_event])

    # the API passes a request's traceparent on with the command it publishes
    request = urllib.request.Request(
        f"http://127.0.0.1:{worker.web_port}/api/scopes/bot:op2/pause", method="POST",
        data=json.dumps({"reason": "trace test"}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                 "traceparent": f"00-{COMMAND_TRACE}-{'c' * 16}-01"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        command_id = json.loads(response.read())["command_id"]
    api_pause = wait_until(lambda: pause_of("bot:op2"), 10, what="bot:op2 paused")
    assert (api_pause.trace_id, api_pause.cause_span_id) == (COMMAND_TRACE, "c" * 16)
    assert api_pause.cause_id == command_id
    [event] = api_pause.cause_events
    assert event.startswith(stack.topic("ops.commands") + "/")


def test_a_bot_s_pause_after_the_fills_repartition_names_the_original_fill(
        stack: Stack) -> None:
    """bot:<id>'s figures live on the bot's partition: its fills get there re-keyed (one
    digest per input batch on the repartition topic), and the digest carries the cause
    of its last fill along, so the bot's pause names the exec.fills record."""
    stack.create_topics()
    stack.start_worker(evaluation_interval_s=0.1, exec_tumbling_window_s=86_400,
                       exec_hopping_window_s=86_400, exec_hop_s=3_600, exec_min_fills=20,
                       exec_slippage_rmse_bound_bps=10.0, exec_fill_ratio_min=0.2)
    now = int(time.time() * 1000)
    fills = [FillEvent(event_id=uuid.uuid4().hex, market="m8", bot="b8", kind=FillKind.FILL,
                       order_id=uuid.uuid4().hex, event_time_ms=now, requested_size=10.0,
                       filled_size=8.0, predicted_slippage_bps=2.0,
                       realized_slippage_bps=60.0 + i) for i in range(25)]
    producer = kafka_producer(stack.bootstrap)
    delivered: list[str] = []
    for index, event in enumerate(fills):  # every fill of this trace, each its own span
        span = f"{index + 1:016x}"
        producer.produce(
            stack.topic("exec.fills"), key=b"market:m8",
            value=CODECS["FillEvent"].encode_record(event),
            headers=[("traceparent", f"00-{TRACE}-{span}-01".encode())],
            on_delivery=lambda error, message: delivered.append(
                f"{message.topic()}/{message.partition()}@{message.offset()}"))
        producer.poll(0)
    producer.flush(10)
    assert len(delivered) == len(fills)

    def paused() -> dict[str, PauseState]:
        states = [CODECS["PauseState"].decode_record(m.value)
                  for m in stack.read("control.pauses", idle_timeout_s=0.5)]
        found = {s.scope: s for s in states if s.paused}
        return found if {"market:m8", "bot:b8"} <= set(found) else {}

    states = wait_until(paused, 20, what="market:m8 and bot:b8 paused")
    for scope in ("market:m8", "bot:b8"):
        state = states[scope]
        assert state.reason_code == "EXEC_SLIPPAGE_BREACH", scope
        assert state.trace_id == TRACE, scope
        [event] = state.cause_events
        assert event in delivered, (scope, event)  # an exec.fills record, not a digest
        assert state.cause_span_id == f"{delivered.index(event) + 1:016x}", scope
