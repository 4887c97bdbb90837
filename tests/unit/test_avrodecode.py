"""The C decoder against fastavro: every datum of every schema, edge values, and bytes
that are not a record (it must answer None, never a different datum, never crash)."""

from __future__ import annotations

import io
import json
import math
import random
import struct
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import avrodecode
from streams.codec import SCHEMA_DIR, _has_record_unions
from tests.samples import SAMPLES

SCHEMAS = {path.stem: json.loads(path.read_text()) for path in sorted(SCHEMA_DIR.glob("*.avsc"))}
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

pytestmark = pytest.mark.skipif(not avrodecode.available(),
                                reason=f"the C extension is {avrodecode.status}")


def _zigzag(number: int) -> bytes:
    """Avro int/long: zig-zag, then a little-endian base-128 varint."""
    number = (number << 1) ^ (number >> 63)
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _program(schema: dict[str, Any]) -> avrodecode.Program:
    program = avrodecode.compile_program(schema)
    assert program is not None
    return program


def _decode(program: avrodecode.Program, data: bytes) -> Any:
    """The datum of ``data`` as a whole (a frame with an empty header)."""
    return avrodecode.decode_frame(program, b"", data)


def _fastavro(schema: dict[str, Any], data: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(data), fastavro.parse_schema(schema), None,
                                      return_record_name=False)


def _encode(schema: dict[str, Any], datum: Any) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), datum)
    return buffer.getvalue()


def _same(left: Any, right: Any) -> bool:
    """Equal, NaN equal to NaN, and of the same types (True is not 1)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return left == right or (math.isnan(left) and math.isnan(right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))
    return bool(left == right)


# -- datums of any schema ------------------------------------------------------------

_PRIMITIVE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(INT_MIN, INT_MAX),
    "long": st.one_of(st.integers(LONG_MIN, LONG_MAX),
                      st.sampled_from([0, -1, LONG_MIN, LONG_MAX, INT_MIN, INT_MAX])),
    "float": st.floats(width=32),
    "double": st.floats(),
    "bytes": st.binary(max_size=40),
    "string": st.text(max_size=20),
}


def _datums(node: Any, named: dict[str, Any], namespace: str) -> st.SearchStrategy[Any]:
    if isinstance(node, str):
        if node in _PRIMITIVE_VALUES:
            return _PRIMITIVE_VALUES[node]
        return named[node if "." in node else f"{namespace}.{node}".lstrip(".")]
    if isinstance(node, list):
        # a union's value is written by the first branch it fits: records of unions of
        # several records are not in the fast path's schemas, so one record branch at most
        return st.one_of(*[_datums(branch, named, namespace) for branch in node])
    kind = node["type"]
    if kind in _PRIMITIVE_VALUES:
        return _PRIMITIVE_VALUES[kind]
    if kind == "array":
        return st.lists(_datums(node["items"], named, namespace), max_size=5)
    if kind == "map":
        return st.dictionaries(st.text(max_size=8), _datums(node["values"], named, namespace),
                               max_size=5)
    name = node["name"] if "." in node["name"] else \
        f"{node.get('namespace', namespace)}.{node['name']}".lstrip(".")
    inner = name.rpartition(".")[0]
    if kind == "enum":
        strategy: st.SearchStrategy[Any] = st.sampled_from(node["symbols"])
    elif kind == "fixed":
        strategy = st.binary(min_size=node["size"], max_size=node["size"])
    else:
        strategy = st.fixed_dictionaries(
            {field["name"]: _datums(field["type"], named, inner) for field in node["fields"]})
    named[name] = strategy
    return strategy


def _schema_and_datum() -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(*[
        st.tuples(st.just(name), _datums(schema, {}, schema.get("namespace", "")))
        for name, schema in SCHEMAS.items()
        if not _has_record_unions(schema)
    ])


@settings(max_examples=600, deadline=None)
@given(_schema_and_datum())
def test_every_datum_decodes_as_fastavro_decodes_it(case: tuple[str, Any]) -> None:
    name, datum = case
    schema = SCHEMAS[name]
    data = _encode(schema, datum)
    decoded = avrodecode.decode_frame(_program(schema), b"\x00head", b"\x00head" + data)
    assert _same(decoded, _fastavro(schema, data)), (name, data.hex())


@settings(max_examples=600, deadline=None)
@given(_schema_and_datum())
def test_every_datum_encodes_as_fastavro_encodes_it(case: tuple[str, Any]) -> None:
    name, datum = case
    schema = SCHEMAS[name]
    encoded = avrodecode.encode_frame(_program(schema), b"\x00head", datum)
    if encoded is None:  # left to fastavro: only a union of several branches besides null
        assert _has_wide_union(schema), name
    else:
        assert encoded == b"\x00head" + _encode(schema, datum), name


def _has_wide_union(node: Any) -> bool:
    if isinstance(node, list):
        return sum(branch != "null" for branch in node) > 1 or any(map(_has_wide_union, node))
    if isinstance(node, dict):
        return any(_has_wide_union(value) for key, value in node.items()
                   if key in ("type", "fields", "items", "values"))
    return False


def test_the_records_polymon_writes_are_encoded_in_c() -> None:
    """Every sample of every schema with a program (ScopedFills: a batch's fills)."""
    names = [name for name, schema in SCHEMAS.items() if not _has_record_unions(schema)]
    assert "ScopedFills" in names and "PauseState" in names
    for name in names:
        schema = SCHEMAS[name]
        assert SAMPLES[name], name
        for sample in SAMPLES[name]:
            datum = sample.to_avro()
            assert avrodecode.encode_frame(_program(schema), b"", datum) == _encode(
                schema, datum), name


RECORD = {"type": "record", "name": "R", "fields": [
    {"name": "n", "type": "long"}, {"name": "x", "type": "double"},
    {"name": "f", "type": "float"}, {"name": "s", "type": ["null", "string"]},
    {"name": "i", "type": "int"}]}
FINE = {"n": 1, "x": 2.5, "f": 0.5, "s": "é", "i": 3}


@pytest.mark.parametrize("change", [
    {"n": True}, {"n": 1.0}, {"n": 2**63}, {"x": False}, {"x": "1"}, {"x": 2**1100},
    {"f": 1e300}, {"s": b"bytes"}, {"s": "\ud800"}, {"i": 2**31}, {"i": None},
])
def test_values_of_another_type_or_out_of_range_are_left_to_fastavro(change: dict) -> None:
    assert avrodecode.encode_frame(_program(RECORD), b"", FINE | change) is None


def test_what_fastavro_writes_alike_is_written_alike() -> None:
    program = _program(RECORD)
    for datum in (FINE, FINE | {"x": 7, "s": None}, FINE | {"extra": "ignored"}):
        assert avrodecode.encode_frame(program, b"h", datum) == b"h" + _encode(RECORD, datum)
    missing = dict(FINE)
    del missing["s"]
    assert avrodecode.encode_frame(program, b"", missing) is None  # fastavro: default or error
    assert avrodecode.encode_frame(program, b"", ["not", "a", "dict"]) is None
    with pytest.raises(TypeError):
        avrodecode.encode_frame(program, "not bytes", FINE)


@pytest.mark.parametrize("name", [n for n, s in SCHEMAS.items() if not _has_record_unions(s)])
def test_any_bytes_decode_as_fastavro_does_or_not_at_all(name: str) -> None:
    """Mutated frames: the C decoder answers None or fastavro's own datum; whatever it
    accepts, fastavro accepts (None sends the caller to fastavro, which decides)."""
    schema = SCHEMAS[name]
    program = _program(schema)
    rng = random.Random(name)
    seeds = [_encode(schema, sample.to_avro()) for sample in SAMPLES[name]]
    accepted = rejected = 0
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(len(data) + 1)
            if rng.random() < 0.5 and where < len(data):
                data[where] = rng.randrange(256)
            elif rng.random() < 0.5:
                del data[where:]
            else:
                data.insert(where, rng.randrange(256))
        decoded = _decode(program, bytes(data))
        if decoded is None:
            rejected += 1
            continue
        accepted += 1
        assert _same(decoded, _fastavro(schema, bytes(data))), data.hex()
    assert accepted and rejected


# -- edge cases, written by hand -----------------------------------------------------

LONG_SCHEMA = {"type": "record", "name": "L", "fields": [{"name": "n", "type": "long"}]}
INT_SCHEMA = {"type": "record", "name": "I", "fields": [{"name": "n", "type": "int"}]}
MAP_SCHEMA = {"type": "record", "name": "M",
              "fields": [{"name": "m", "type": {"type": "map", "values": "long"}}]}
ARRAY_SCHEMA = {"type": "record", "name": "A",
                "fields": [{"name": "a", "type": {"type": "array", "items": "string"}}]}


@pytest.mark.parametrize("number", [0, 1, -1, 63, -64, 64, INT_MAX, INT_MIN, LONG_MAX, LONG_MIN])
def test_longs_to_the_edges_of_their_range(number: int) -> None:
    assert _decode(_program(LONG_SCHEMA), _zigzag(number)) == {"n": number}


@pytest.mark.parametrize("data", [
    b"\x80" * 10 + b"\x00",  # eleven bytes
    b"\xff" * 9 + b"\x02",  # a 65th bit
    b"\x80",  # ends inside the varint
    b"",
])
def test_a_varint_longer_than_a_long_or_cut_short_is_not_read(data: bytes) -> None:
    assert _decode(_program(LONG_SCHEMA), data) is None


def test_an_int_out_of_its_range_is_left_to_fastavro() -> None:
    program = _program(INT_SCHEMA)
    assert _decode(program, _zigzag(INT_MAX)) == {"n": INT_MAX}
    assert _decode(program, _zigzag(INT_MAX + 1)) is None


def test_a_non_canonical_varint_reads_as_fastavro_reads_it() -> None:
    data = b"\x82\x80\x00"  # 1, in three bytes
    assert _decode(_program(LONG_SCHEMA), data) == _fastavro(LONG_SCHEMA, data)


def test_blocks_with_a_byte_size_and_several_blocks() -> None:
    """Writers may give a block's item count negated, followed by its size in bytes."""
    first = _zigzag(-2) + _zigzag(6) + b"\x02a" + _zigzag(5) + b"\x02b" + _zigzag(-3)
    data = first + _zigzag(1) + b"\x02c" + _zigzag(7) + _zigzag(0)
    expected = {"m": {"a": 5, "b": -3, "c": 7}}
    assert _decode(_program(MAP_SCHEMA), data) == expected == \
        _fastavro(MAP_SCHEMA, data)
    items = _zigzag(2) + b"\x02x\x02y" + _zigzag(-1) + _zigzag(2) + b"\x02z" + _zigzag(0)
    assert _decode(_program(ARRAY_SCHEMA), items) == {"a": ["x", "y", "z"]}


@pytest.mark.parametrize("count", [2**40, LONG_MAX, LONG_MIN + 1, LONG_MIN])
def test_a_block_count_beyond_the_bytes_left_is_not_believed(count: int) -> None:
    data = _zigzag(count) + _zigzag(0) + b"\x02a\x02" + _zigzag(0)
    assert _decode(_program(MAP_SCHEMA), data) is None


@pytest.mark.parametrize("data", [
    b"\x04\xff\xfe",  # not UTF-8
    b"\x04\xed\xa0",  # a surrogate, cut short
    b"\x03a",  # a negative length
    b"\x0aab",  # longer than the bytes left
])
def test_a_string_that_is_not_utf8_or_not_there_is_not_read(data: bytes) -> None:
    schema = {"type": "record", "name": "S", "fields": [{"name": "s", "type": "string"}]}
    assert _decode(_program(schema), data) is None


def test_union_and_enum_indexes_out_of_range_are_not_read() -> None:
    schema = {"type": "record", "name": "U", "fields": [
        {"name": "u", "type": ["null", "long"]},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}}]}
    program = _program(schema)
    assert _decode(program, _zigzag(1) + _zigzag(7) + _zigzag(1)) == \
        {"u": 7, "e": "B"}
    for data in (_zigzag(2) + _zigzag(0), _zigzag(-1) + _zigzag(0),
                 _zigzag(0) + _zigzag(2), _zigzag(0) + _zigzag(-1)):
        assert _decode(program, data) is None, data.hex()


def test_a_boolean_byte_other_than_0_or_1_is_left_to_fastavro() -> None:
    schema = {"type": "record", "name": "B", "fields": [{"name": "b", "type": "boolean"}]}
    program = _program(schema)
    assert _decode(program, b"\x01") == {"b": True}
    assert _decode(program, b"\x00") == {"b": False}
    assert _decode(program, b"\x02") is None


def test_floats_are_read_little_endian() -> None:
    schema = {"type": "record", "name": "F", "fields": [
        {"name": "f", "type": "float"}, {"name": "d", "type": "double"}]}
    data = struct.pack("<fd", 1.5, -2.25)
    assert _decode(_program(schema), data) == {"f": 1.5, "d": -2.25}
    assert _decode(_program(schema), data[:-1]) is None


def test_a_frame_is_decoded_after_its_header_and_anything_else_is_none() -> None:
    program = _program(LONG_SCHEMA)
    assert avrodecode.decode_frame(program, b"\x00head", b"\x00head" + _zigzag(-7)) == \
        {"n": -7}
    for data in (None, b"", b"\x00hea", b"\x00heax" + _zigzag(1), _zigzag(1),
                 b"\x00head" + _zigzag(1) + b"\x00", bytearray(b"\x00head\x02")):
        assert avrodecode.decode_frame(program, b"\x00head", data) is None, data
    with pytest.raises(TypeError):
        avrodecode.decode_frame(program, "not bytes", b"\x00head\x02")  # type: ignore[arg-type]


def test_named_types_are_shared_and_namespaces_resolved() -> None:
    schema = {"type": "record", "name": "Outer", "namespace": "a.b", "fields": [
        {"name": "first", "type": {"type": "fixed", "name": "Id", "size": 2}},
        {"name": "second", "type": "Id"},
        {"name": "third", "type": ["null", "a.b.Id"]}]}
    data = b"xy" + b"zw" + _zigzag(1) + b"pq"
    assert _decode(_program(schema), data) == \
        {"first": b"xy", "second": b"zw", "third": b"pq"} == _fastavro(schema, data)


@pytest.mark.parametrize("schema", [
    {"type": "record", "name": "T", "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]},
    {"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "Node"]}]},
    {"type": "record", "name": "X", "fields": [{"name": "x", "type": "Unknown"}]},
])
def test_schemas_it_does_not_read_as_fastavro_does_get_no_program(schema: dict) -> None:
    assert avrodecode.compile_program(schema) is None


def test_a_bad_program_is_a_type_error_not_a_crash() -> None:
    with pytest.raises(TypeError):
        _decode((99,), b"\x00")
    with pytest.raises(TypeError):
        _decode("not a program", b"\x00")  # type: ignore[arg-type]
