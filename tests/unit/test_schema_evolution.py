"""The trace fields of ReportEnvelope (17, was 7) and PauseState (18, was 8), both ways:
records written before them are read by the new code with their defaults (trace_id None,
cause_events []); records written with them are read by an old reader (fastavro schema
resolution, the old schema as reader schema), which skips the new fields. A
TradePayload is a new union branch: an old reader cannot read it (docs/contracts.md)."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streams.app import codecs as worker_codecs
from streams.avro import AvroCodec, SchemaCatalog
from streams.codec import Rejection, rejecting_decoder
from streams.records import PauseState, ReportEnvelope, TradePayload
from tests.samples import SAMPLES

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
OLD = {"ReportEnvelope": 7, "PauseState": 8}
TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACE_FIELDS = ("trace_id", "cause_span_id", "cause_events")


def _schema(name: str, old: bool) -> Any:
    path = SCHEMAS / ("history" if old else "") / (f"{name}.{OLD[name]}.avsc" if old
                                                     else f"{name}.avsc")
    return fastavro.parse_schema(json.loads(path.read_text()))


def _write(schema: Any, datum: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, datum)
    return buffer.getvalue()


def _old_frame(name: str, datum: dict[str, Any]) -> bytes:
    return struct.pack(">bI", 0, OLD[name]) + _write(_schema(name, old=True), datum)


def _traced(record: Any) -> Any:
    return record.model_copy(update={"trace_id": TRACE, "cause_span_id": SPAN,
                                     "cause_events": ["health.events/2@99", "exec.fills/0@7"]})


def _untraced_datum(record: Any) -> dict[str, Any]:
    datum = record.to_avro()
    for field in TRACE_FIELDS:
        datum.pop(field, None)
    return datum


def _pause() -> PauseState:
    return PauseState(scope="market:m7", paused=True, reason_code="RISK_STALE_BOOK",
                      since_ms=1_790_000_000_000, cause_id="alert-1", policy="AUTO_CLEAR",
                      actor="agents.health", updated_ms=1_790_000_000_005, state_id="s-1")


OLD_READABLE = [r for r in SAMPLES["ReportEnvelope"] if not isinstance(r.payload, TradePayload)]


@pytest.mark.parametrize("record", [*OLD_READABLE, _pause()],
                         ids=lambda r: type(getattr(r, "payload", r)).__name__)
def test_an_old_record_is_read_by_the_new_code_with_the_defaults(record: Any) -> None:
    name = type(record).AVRO_NAME
    frame = _old_frame(name, _untraced_datum(record))
    catalog = SchemaCatalog()
    codec = AvroCodec(catalog[name], catalog)  # what PauseGuard and the API read with
    decoded = codec.decode_record(frame)
    assert (decoded.trace_id, decoded.cause_span_id, decoded.cause_events) == (None, None, [])
    assert decoded == record.model_copy(update={"trace_id": None, "cause_span_id": None,
                                                "cause_events": []})
    # and the worker's decoder (the C path when built) takes the old frame as well
    worker_decoded = rejecting_decoder(worker_codecs[name])(frame)
    assert not isinstance(worker_decoded, Rejection), worker_decoded
    assert worker_decoded == decoded


@pytest.mark.parametrize("record", [*OLD_READABLE, _pause()],
                         ids=lambda r: type(getattr(r, "payload", r)).__name__)
def test_a_new_record_is_read_by_an_old_reader_without_the_new_fields(record: Any) -> None:
    name = type(record).AVRO_NAME
    traced = _traced(record)
    body = _write(_schema(name, old=False), traced.to_avro())
    old = fastavro.schemaless_reader(io.BytesIO(body), _schema(name, old=False),
                                     _schema(name, old=True), return_record_name=True)
    assert not set(TRACE_FIELDS) & set(old)
    assert old == _untraced_datum(traced)
    # and the new code reads its own record back whole
    catalog = SchemaCatalog()
    codec = AvroCodec(catalog[name], catalog)
    assert codec.decode_record(codec.encode_record(traced)) == traced


def test_a_trade_payload_is_a_branch_an_old_reader_cannot_read() -> None:
    trade = next(r for r in SAMPLES["ReportEnvelope"] if isinstance(r.payload, TradePayload))
    body = _write(_schema("ReportEnvelope", old=False), trade.to_avro())
    with pytest.raises(Exception):  # noqa: B017 - fastavro: no matching union branch
        fastavro.schemaless_reader(io.BytesIO(body), _schema("ReportEnvelope", old=False),
                                   _schema("ReportEnvelope", old=True))


def test_trace_ids_are_checked_on_the_way_in() -> None:
    envelope = OLD_READABLE[0]
    for bad in ({"trace_id": "0" * 31}, {"cause_span_id": "XYZ"},
                {"cause_events": [f"t/0@{i}" for i in range(17)]}):
        with pytest.raises(ValueError):
            ReportEnvelope.model_validate({**envelope.model_dump(), **bad})
