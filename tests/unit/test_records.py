"""The contract: every schema parses, every record model mirrors its schema, every
record round-trips through the Avro codec."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from streams import assembly, avrodecode, compiled, records
from streams.codec import SCHEMA_DIR, Codecs, SchemaCatalog
from streams.records import (
    RECORD_TYPES,
    FeatureSample,
    FillEvent,
    HealthEvent,
    HealthEventKind,
    ModelScore,
    OpsCommand,
    Record,
    ReportEnvelope,
)
from streams.topics import load_topic_specs
from tests.samples import SAMPLES, T0

CATALOG = SchemaCatalog()
CODECS = Codecs(CATALOG)


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.avsc")), ids=lambda p: p.stem)
def test_every_schema_parses(path) -> None:
    definition = json.loads(path.read_text())
    fastavro.parse_schema(definition)
    assert definition["name"] == path.stem
    assert definition["namespace"] == "polymon.v1"


def test_every_topic_has_a_schema_and_a_record_type() -> None:
    for spec in load_topic_specs().values():
        assert spec.schema in CATALOG.names(), spec.name
        assert spec.schema in RECORD_TYPES, spec.name


def test_schema_ids_are_unique() -> None:
    ids = [CATALOG[name].schema_id for name in CATALOG.names()]
    assert len(ids) == len(set(ids))


def _avro_fields(definition: dict) -> dict[str, bool]:
    """field name -> nullable"""
    fields = {}
    for field in definition["fields"]:
        kind = field["type"]
        fields[field["name"]] = isinstance(kind, list) and "null" in kind
    return fields


def _model_fields(model: type[BaseModel]) -> dict[str, bool]:
    return {
        name: not info.is_required() and info.default is None
        for name, info in model.model_fields.items()
    }


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_record_model_mirrors_its_schema(name: str) -> None:
    definition = CATALOG[name].definition
    assert _model_fields(RECORD_TYPES[name]) == _avro_fields(definition)


def test_envelope_payload_models_mirror_the_union() -> None:
    from streams.records import _PAYLOADS

    union = next(f for f in CATALOG["ReportEnvelope"].definition["fields"]
                 if f["name"] == "payload")["type"]
    assert {f"polymon.v1.{branch['name']}" for branch in union} == set(_PAYLOADS)
    for branch in union:
        model = _PAYLOADS[f"polymon.v1.{branch['name']}"]
        assert _model_fields(model) == _avro_fields(branch)


@pytest.mark.parametrize(
    "record", [r for records in SAMPLES.values() for r in records],
    ids=lambda r: f"{type(r).__name__}",
)
def test_every_record_round_trips(record) -> None:
    codec = CODECS[record.AVRO_NAME]
    data = codec.encode_record(record)
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == codec.entry.schema_id
    assert codec.decode_record(data) == record


def test_samples_cover_every_schema() -> None:
    assert set(SAMPLES) == set(CATALOG.names())


def test_envelope_keeps_its_payload_type() -> None:
    for envelope in SAMPLES["ReportEnvelope"]:
        decoded = CODECS["ReportEnvelope"].decode_record(
            CODECS["ReportEnvelope"].encode_record(envelope))
        assert isinstance(decoded, ReportEnvelope)
        assert type(decoded.payload) is type(envelope.payload)


@pytest.mark.parametrize(("change", "field"), [
    ({"scope": "planet:mars"}, "scope"),
    ({"scope": "market"}, "scope"),
    ({"sequence": -1}, "sequence"),
    ({"event_time_ms": -5}, "event_time_ms"),
    ({"feed": None}, "feed"),
])
def test_health_event_validation_names_the_field(change: dict, field: str) -> None:
    good = {"event_id": "e", "scope": "market:m1", "kind": "DATA_UPDATE", "source": "s",
            "event_time_ms": T0, "feed": "book", "sequence": 1}
    with pytest.raises(ValidationError, match=field):
        HealthEvent.model_validate(good | change)


def test_overfilled_order_is_rejected() -> None:
    fill = SAMPLES["FillEvent"][0].model_dump()
    with pytest.raises(ValidationError, match="exceeds requested_size"):
        type(SAMPLES["FillEvent"][0]).model_validate(fill | {"filled_size": 11.0})


# Input records skip pydantic on their hot path (from_avro checks the decoded datum in
# plain Python): for any datum Avro can decode, both ways must agree exactly.
# at and over the bounds of ids and names (128), and what no scope id may hold
_texts = (st.sampled_from(["", "x", "e1", "book", "x" * 128, "x" * 129, "a/market:b", "m 1"])
          | st.text(max_size=4))
_longs = st.sampled_from([-(2**63), -1, 0, 1, T0, 2**63 - 1]) | st.integers(-3, 3)
_doubles = st.sampled_from([0.0, -0.0, 0.5, 1.0, 10.0, -1.0, math.nan, math.inf, -math.inf,
                            1e308]) | st.floats()
_scopes = st.sampled_from(["market:m1", "bot:b1/market:m7", "model:m-1", "global", "",
                           "planet:mars", "market", "market:" + "x" * 129])
_cohorts = st.sampled_from(["BASELINE", "CANARY", "BOGUS"])
_DATUMS = {
    HealthEvent: st.fixed_dictionaries({
        "event_id": _texts, "scope": _scopes, "source": _texts, "event_time_ms": _longs,
        "kind": st.sampled_from(["HEARTBEAT", "DATA_UPDATE", "SLO_PROBE", "BOGUS"]),
        "feed": st.none() | _texts, "sequence": st.none() | _longs, "slo": st.none() | _texts,
        "owner": st.none() | _texts, "healthy": st.none() | st.booleans(),
        "heartbeat_interval_ms": st.none() | _longs,
        "attributes": st.dictionaries(_texts, _texts, max_size=2),
    }),
    FillEvent: st.fixed_dictionaries({
        "event_id": _texts, "market": _texts, "bot": _texts, "order_id": _texts,
        "kind": st.sampled_from(["INTENT", "FILL", "BOGUS"]), "event_time_ms": _longs,
        "requested_size": _doubles, "filled_size": _doubles,
        "predicted_slippage_bps": st.none() | _doubles,
        "realized_slippage_bps": st.none() | _doubles, "cohort": _cohorts,
        "model": st.none() | _texts, "model_version": st.none() | _texts,
    }),
    ModelScore: st.fixed_dictionaries({
        "event_id": _texts, "model": _texts, "model_version": _texts, "cohort": _cohorts,
        "metric": _texts, "value": _doubles, "prediction_id": _texts, "event_time_ms": _longs,
    }),
    FeatureSample: st.fixed_dictionaries({
        "event_id": _texts, "model": _texts, "model_version": _texts, "event_time_ms": _longs,
        "features": st.dictionaries(_texts, _doubles, max_size=3),
    }),
}


def _outcome(build: Callable[[dict], BaseModel], datum: dict) -> tuple:
    try:
        record = build(dict(datum))
    except ValidationError as exc:
        return ("rejected", [(error["loc"], error["msg"]) for error in exc.errors()])
    # types too: a StrEnum member equals its string
    return ("accepted", {name: (type(value), value) for name, value in record},
            record.model_fields_set, record.model_dump(mode="json"))


# the model assembled in C (the extension) and in Python (without it)
_ASSEMBLERS = {"c": assembly._assemble, "python": assembly._assemble_in_python}


@pytest.mark.parametrize("assembler", list(_ASSEMBLERS))
@pytest.mark.parametrize("model", list(_DATUMS), ids=lambda model: model.__name__)
@given(data=st.data())
@settings(max_examples=400, deadline=None)
def test_input_records_hot_path_agrees_with_pydantic(model: type[Record], assembler: str,
                                                     data) -> None:
    datum = data.draw(_DATUMS[model])
    original, assembly._assemble = assembly._assemble, _ASSEMBLERS[assembler]
    try:
        assert _outcome(model.from_avro, datum) == _outcome(model.model_validate, datum)
    finally:
        assembly._assemble = original


def test_assembled_records_are_pydantic_models_like_any_other() -> None:
    if not compiled.NO_EXTENSIONS:  # the C assembly, unless the switch turned it off
        assert assembly._assemble is not assembly._assemble_in_python, avrodecode.status
    sample = SAMPLES["HealthEvent"][0]
    for assemble in _ASSEMBLERS.values():
        record = assemble(HealthEvent, dict(sample.__dict__), set(HealthEvent.model_fields))
        assert record == sample and record.model_dump() == sample.model_dump()
        assert record.model_copy(update={"source": "s2"}).source == "s2"
        with pytest.raises(ValidationError):  # frozen
            record.source = "s3"
    with pytest.raises(TypeError):
        assembly._assemble(HealthEvent, [("scope", "market:m1")], set())


def test_scopes_found_valid_are_remembered_within_a_bound(monkeypatch) -> None:
    monkeypatch.setattr(assembly, "_VALID_SCOPES", set())
    monkeypatch.setattr(assembly, "_VALID_SCOPES_KEPT", 3)
    assert not assembly._valid_scope("planet:mars")
    assert not assembly._VALID_SCOPES
    for number in range(5):
        assert assembly._valid_scope(f"market:m{number}")
        assert f"market:m{number}" in assembly._VALID_SCOPES
        assert len(assembly._VALID_SCOPES) <= 3


@pytest.mark.parametrize("model", list(_DATUMS), ids=lambda model: model.__name__)
def test_valid_input_records_skip_pydantic(model: type[Record], monkeypatch) -> None:
    for sample in SAMPLES[model.AVRO_NAME]:
        datum = CODECS[model.AVRO_NAME].decode(CODECS[model.AVRO_NAME].encode_record(sample))
        monkeypatch.setattr(model, "model_validate", _refuse)
        assert model.from_avro(datum) == sample
        monkeypatch.undo()


def _refuse(datum: dict) -> None:
    raise AssertionError(f"validated by pydantic: {datum}")


def _record_classes(base: type[Record] = Record) -> list[type[Record]]:
    found = []
    for cls in base.__subclasses__():
        found += [cls, *_record_classes(cls)]
    return found


_native = pytest.mark.skipif(compiled.NO_EXTENSIONS, reason="POLYMON_NO_EXTENSIONS is set")


@_native
def test_records_read_fields_without_pydantics_getattr_hook() -> None:
    extension = avrodecode.extension
    assert extension is not None, avrodecode.status
    classes = [cls for cls in _record_classes() if cls.__module__ == records.__name__]
    assert set(RECORD_TYPES.values()) <= set(classes)
    for cls in classes:  # what makes pydantic's __getattr__ a no-op for them
        assert not cls.__private_attributes__ and cls.model_config["extra"] == "forbid"
        assert extension.has_plain_getattr(cls), cls.__name__
    sample = SAMPLES["HealthEvent"][0]
    assert sample.scope == sample.__dict__["scope"] and sample.kind is HealthEventKind.DATA_UPDATE
    with pytest.raises(AttributeError, match="'HealthEvent' object has no attribute 'nope'"):
        sample.nope  # noqa: B018


@_native
def test_a_record_with_private_attributes_keeps_pydantics_getattr() -> None:
    class WithPrivate(Record):
        _cached: int = 7

    assert avrodecode.extension is not None, avrodecode.status
    assert not avrodecode.extension.has_plain_getattr(WithPrivate)
    assert WithPrivate()._cached == 7


def test_the_codec_decodes_input_records_through_their_compiled_assembly() -> None:
    codecs = Codecs(SchemaCatalog())
    for record_type, assemble in assembly.FROM_AVRO.items():
        assert codecs[record_type.AVRO_NAME].from_avro is assemble
        sample = SAMPLES[record_type.AVRO_NAME][0]
        encoded = codecs[record_type.AVRO_NAME].encode_record(sample)
        assert codecs[record_type.AVRO_NAME].decode_record(encoded) == sample
    assert codecs["ScopedFills"].from_avro == records.ScopedFills.from_avro  # pydantic's


@pytest.mark.parametrize(("model", "field", "value"), [
    (HealthEvent, "attributes", {f"k{i}": "v" for i in range(513)}),
    (HealthEvent, "attributes", {"k": "v" * 501}),
    (HealthEvent, "source", "s" * 129),
    (FeatureSample, "features", {f"f{i}": 1.0 for i in range(513)}),
    (FillEvent, "market", "m/market:x"),
])
def test_input_records_over_a_bound_are_refused_on_both_paths(
        model: type[Record], field: str, value: object) -> None:
    datum = SAMPLES[model.AVRO_NAME][0].to_avro()
    datum[field] = value
    for build in (model.from_avro, model.model_validate):
        with pytest.raises(ValidationError, match=field):
            build(dict(datum))


def test_operator_commands_from_kafka_are_bounded() -> None:
    command = SAMPLES["OpsCommand"][0].to_avro()
    for field, value in (("reason", "r" * 501), ("reason", "feed down\x1b[2J"),
                         ("actor", "alice bob"), ("command_id", "c" * 129)):
        with pytest.raises(ValidationError, match=field):
            OpsCommand.model_validate({**command, field: value})
