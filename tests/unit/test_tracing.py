"""streams.tracing: strict, bounded traceparent parsing and the cause a decision names."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import tracing
from streams.tracing import Cause, cause_of, cause_of_record, merge, parse_traceparent

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


@pytest.fixture
def invalid() -> Iterator[list[str]]:
    seen: list[str] = []
    previous, tracing.on_invalid = tracing.on_invalid, seen.append
    yield seen
    tracing.on_invalid = previous


def test_the_spec_example_parses(invalid: list[str]) -> None:
    context = parse_traceparent(VALID.encode())
    assert context is not None
    assert (context.trace_id, context.span_id, context.flags) == (TRACE, SPAN, "01")
    assert context.traceparent() == VALID
    assert invalid == []


@pytest.mark.parametrize("value, reason", [
    (f"00-{'0' * 32}-{SPAN}-01", "zero_id"),
    (f"00-{TRACE}-{'0' * 16}-01", "zero_id"),
    (f"ff-{TRACE}-{SPAN}-01", "malformed"),
    (f"00-{TRACE.upper()}-{SPAN}-01", "malformed"),
    (f"00-{TRACE}-{SPAN}-01-extra", "malformed"),  # version 00 is exactly 55 characters
    (f"00-{TRACE[:-1]}-{SPAN}-01", "malformed"),
    (f"00_{TRACE}-{SPAN}-01", "malformed"),
    ("", "malformed"),
    (b"\xff\xfe", "malformed"),
    ("x" * (tracing.MAX_HEADER_BYTES + 1), "oversized"),
])
def test_invalid_values_are_ignored_and_counted(value: str | bytes, reason: str,
                                                invalid: list[str]) -> None:
    assert parse_traceparent(value) is None
    assert invalid == [reason]


def test_a_later_version_may_append_fields(invalid: list[str]) -> None:
    context = parse_traceparent(f"01-{TRACE}-{SPAN}-00-more")
    assert context is not None and context.flags == "00"
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-00more") is None
    assert invalid == ["malformed"]


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_bytes_parse_to_none_or_a_valid_context(value: bytes | str) -> None:
    context = parse_traceparent(value)
    if context is not None:
        assert len(context.trace_id) == 32 and context.trace_id != "0" * 32
        assert len(context.span_id) == 16 and context.span_id != "0" * 16


def test_a_record_names_itself_and_its_trace(invalid: list[str]) -> None:
    cause = cause_of_record("health.events", 3, 41, (("other", b"x"),
                                                     ("traceparent", VALID.encode())))
    assert cause == Cause(TRACE, SPAN, ("health.events/3@41",))
    assert cause.fields() == {"trace_id": TRACE, "cause_span_id": SPAN,
                              "cause_events": ["health.events/3@41"]}
    bad = cause_of_record("health.events", 3, 42, (("traceparent", b"garbage"),))
    assert bad == Cause(events=("health.events/3@42",))  # the record still counts
    assert invalid == ["malformed"]


REKEYED = "g-exec.fills-by-scope-repartition"


def test_a_rekeyed_record_carries_the_original_cause() -> None:
    original = Cause(TRACE, SPAN, ("exec.fills/1@7",))
    assert cause_of_record(REKEYED, 0, 99, original.headers()) == original
    fill = SimpleNamespace(topic="exec.fills", partition=1, offset=7,
                           headers=(("x", b"y"), ("traceparent", VALID.encode())))
    assert cause_of_record(REKEYED, 0, 99, tracing.carried_headers(fill)) == original
    untraced = SimpleNamespace(topic="exec.fills", partition=1, offset=8, headers=())
    assert cause_of_record(REKEYED, 0, 99, tracing.carried_headers(untraced)) == Cause(
        events=("exec.fills/1@8",))


def test_only_repartition_topics_may_name_other_records() -> None:
    forged = ((tracing.CAUSE_EVENTS_HEADER, b"audit.log/0@1"),)
    assert cause_of_record("exec.fills", 2, 5, forged).events == ("exec.fills/2@5",)


def test_bad_cause_events_headers_fall_back_to_the_record(invalid: list[str]) -> None:
    for value in (b"not an event", b",".join([b"t/0@1"] * 17), b"t/0@1,\xff"):
        cause = cause_of_record(REKEYED, 0, 5, ((tracing.CAUSE_EVENTS_HEADER, value),))
        assert cause.events == (f"{REKEYED}/0@5",)
    assert invalid == ["cause_events"] * 3


def test_cause_of_what_agents_keep() -> None:
    message = SimpleNamespace(topic="t", partition=1, offset=2, headers=())
    assert cause_of(message) == Cause(events=("t/1@2",))
    assert cause_of(None) == tracing.NO_CAUSE
    state = SimpleNamespace(trace_id=TRACE, cause_span_id=SPAN, cause_events=["t/1@2"])
    assert cause_of(state) == Cause(TRACE, SPAN, ("t/1@2",))
    assert cause_of(Cause(TRACE)) == Cause(TRACE)


def test_merge_keeps_the_last_trace_and_at_most_16_events() -> None:
    causes = [Cause(events=(f"t/0@{i}",)) for i in range(20)]
    causes[3] = Cause(TRACE, SPAN, ("t/0@3",))
    merged = merge(causes)
    assert (merged.trace_id, merged.span_id) == (TRACE, SPAN)
    assert merged.events == tuple(f"t/0@{i}" for i in range(4, 20))
