"""What caused a decision, as the agents know it (streams.tracing parses it).

- Input agents keep, per scope, the last input record seen for it (:data:`last_input`:
  a reference to the fetched record, no copy and no header parsing per event). A
  decision on a scope names that record: for a threshold it is the record being handled
  when the condition became true; for a clock tick (a stale feed, a missed heartbeat:
  the absence of events) the last record seen for the scope before the silence.
- Code that knows its cause better (an operator command, an incident input, a re-keyed
  alert) says so with :func:`caused_by` around its decisions: that cause wins for the
  code it wraps (a context variable: a tick running meanwhile keeps its own).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from streams import tracing
from streams.app import metrics
from streams.tracing import NO_CAUSE, Cause

# scope -> the last input record (or Cause) seen for it on this worker
last_input: dict[str, Any] = {}
_explicit: contextvars.ContextVar[Cause | None] = contextvars.ContextVar(
    "polymon_cause", default=None)


def _count_invalid(reason: str) -> None:
    metrics.trace_context_invalid.labels(reason).inc()


tracing.on_invalid = _count_invalid


def of(scope: str | None) -> Cause:
    """The cause of a decision about ``scope`` made now."""
    explicit = _explicit.get()
    if explicit is not None:
        return explicit
    if scope is None:
        return NO_CAUSE
    return tracing.cause_of(last_input.get(scope))


@contextlib.contextmanager
def caused_by(source: Any) -> Iterator[Cause]:
    """Decisions made inside name ``source`` (a message, an envelope or a Cause)."""
    cause = tracing.cause_of(source)
    token = _explicit.set(cause)
    try:
        yield cause
    finally:
        _explicit.reset(token)
