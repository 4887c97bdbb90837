"""Decisions carry their cause: W3C trace context (``traceparent``) and the input records
a decision came from. Pure: plain values in (a record's topic, partition, offset and
Kafka headers), plain values out; no Kafka, no I/O.

Parsing is strict and bounded (https://www.w3.org/TR/trace-context/#traceparent-header):
``<version>-<32 hex trace id>-<16 hex span id>-<2 hex flags>``, lowercase hex, ids not
all zeros, version ``ff`` invalid; a later version may append ``-…`` after the 55
characters of version 00. Anything else, or a header longer than
:data:`MAX_HEADER_BYTES`, is ignored (counted by the caller): the record itself is still
processed.

Headers are parsed only when a decision is made: agents keep, per scope, a reference to
the last input record (no copy, no parsing per event) and :func:`cause_of` reads it then.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

TRACEPARENT = "traceparent"
# the input records a re-keyed (repartitioned) record stands for, comma-separated; read
# only on polymon's own repartition topics (an input producer cannot name other records)
CAUSE_EVENTS_HEADER = "polymon-cause-events"
REPARTITION_SUFFIX = "-repartition"
MAX_HEADER_BYTES = 512
MAX_CAUSE_EVENTS = 16
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_EVENT = re.compile(r"[A-Za-z0-9._\-]{1,249}/[0-9]{1,10}@[0-9]{1,19}")

# called with a reason ("malformed", "oversized", "zero_id", "cause_events") for every
# header ignored: the worker counts them in a metric
on_invalid: Callable[[str], None] | None = None


@dataclass(frozen=True, slots=True)
class SpanContext:
    trace_id: str
    span_id: str
    flags: str = "01"

    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


@dataclass(frozen=True, slots=True)
class Cause:
    """What caused a decision: its trace context (if the input carried one) and the input
    records, as ``<topic>/<partition>@<offset>``."""

    trace_id: str | None = None
    span_id: str | None = None
    events: tuple[str, ...] = ()
    flags: str = "01"

    def fields(self) -> dict[str, Any]:
        """The envelope's and the pause state's trace fields."""
        return {"trace_id": self.trace_id, "cause_span_id": self.span_id,
                "cause_events": list(self.events)}

    def span_context(self) -> SpanContext | None:
        if self.trace_id is None or self.span_id is None:
            return None
        return SpanContext(self.trace_id, self.span_id, self.flags)

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers carrying this cause along a re-keyed record."""
        headers = []
        context = self.span_context()
        if context is not None:
            headers.append((TRACEPARENT, context.traceparent().encode()))
        if self.events:
            headers.append((CAUSE_EVENTS_HEADER, ",".join(self.events).encode()))
        return headers


NO_CAUSE = Cause()


def _invalid(reason: str) -> None:
    if on_invalid is not None:
        on_invalid(reason)


def parse_traceparent(value: bytes | str | None) -> SpanContext | None:
    """The span context of a ``traceparent`` value, or None (invalid: reported to
    :data:`on_invalid`)."""
    if value is None:
        return None
    if len(value) > MAX_HEADER_BYTES:
        _invalid("oversized")
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            _invalid("malformed")
            return None
    value = value.strip(" \t")
    match = _TRACEPARENT.match(value)
    if match is None:
        _invalid("malformed")
        return None
    version, trace_id, span_id, flags = match.groups()
    rest = value[55:]
    if version == "ff" or (version == "00" and rest) or (rest and not rest.startswith("-")):
        _invalid("malformed")
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        _invalid("zero_id")
        return None
    return SpanContext(trace_id, span_id, flags)


def event_id(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}@{offset}"


def _cause_events(value: bytes) -> tuple[str, ...] | None:
    if len(value) > MAX_CAUSE_EVENTS * 300:
        _invalid("oversized")
        return None
    try:
        events = tuple(value.decode("ascii").split(","))
    except UnicodeDecodeError:
        events = ()
    if not events or len(events) > MAX_CAUSE_EVENTS or not all(
            _EVENT.fullmatch(event) for event in events):
        _invalid("cause_events")
        return None
    return events


def cause_of_record(topic: str, partition: int, offset: int,
                    headers: Iterable[tuple[str, Any]] | None) -> Cause:
    """The cause a decision on this input record names: the record itself (or, for a
    re-keyed record, the inputs its ``polymon-cause-events`` header names) and the trace
    context of its ``traceparent`` header, if valid."""
    context, events = None, None
    for key, value in headers or ():
        if value is None:
            continue
        name = key.lower() if isinstance(key, str) else ""
        if name == TRACEPARENT:
            context = parse_traceparent(value)
        elif name == CAUSE_EVENTS_HEADER and topic.endswith(REPARTITION_SUFFIX):
            events = _cause_events(bytes(value))
    if events is None:
        events = (event_id(topic, partition, offset),)
    if context is None:
        return Cause(events=events)
    return Cause(context.trace_id, context.span_id, events, context.flags)


def carried_headers(message: Any) -> list[tuple[str, bytes]]:
    """The headers of a record re-keyed from input ``message`` (one per batch and target,
    so not parsed here): its position, and its ``traceparent`` as it came."""
    headers = [(CAUSE_EVENTS_HEADER,
                f"{message.topic}/{message.partition}@{message.offset}".encode())]
    for key, value in getattr(message, "headers", None) or ():
        if key == TRACEPARENT and value is not None:
            headers.append((TRACEPARENT, bytes(value)))
            break
    return headers


def cause_of(source: Any) -> Cause:
    """A Cause from what an agent kept: a Cause, an input message (topic, partition,
    offset, headers), an envelope or pause state with trace fields, or None."""
    if source is None:
        return NO_CAUSE
    if type(source) is Cause:
        return source
    headers = getattr(source, "headers", None)
    if headers is not None or hasattr(source, "offset"):
        return cause_of_record(source.topic, source.partition, source.offset, headers)
    return cause_from_fields(getattr(source, "trace_id", None),
                             getattr(source, "cause_span_id", None),
                             getattr(source, "cause_events", None) or ())


def cause_from_fields(trace_id: str | None, span_id: str | None,
                      events: Sequence[str]) -> Cause:
    """The cause recorded on an envelope or a pause state (already validated there)."""
    return Cause(trace_id, span_id, tuple(events)[:MAX_CAUSE_EVENTS])


def merge(causes: Iterable[Cause]) -> Cause:
    """One cause of several: the trace of the last one that has a trace, and their events
    (the last :data:`MAX_CAUSE_EVENTS`, in order, no repeats)."""
    trace: Cause | None = None
    events: list[str] = []
    for cause in causes:
        if cause.trace_id is not None:
            trace = cause
        events.extend(event for event in cause.events if event not in events)
    kept = tuple(events[-MAX_CAUSE_EVENTS:])
    if trace is None:
        return Cause(events=kept)
    return Cause(trace.trace_id, trace.span_id, kept, trace.flags)
