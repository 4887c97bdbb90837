"""Avro on the wire: fastavro with Confluent framing, registered with Faust, and the
dead-letter routing of input that fails to decode or validate.

Frame: magic byte 0, a 4-byte big-endian schema id, then the Avro binary body
(the Confluent wire format, so Confluent tooling can read our topics). Schema ids
come from schemas/registry.json, or from a Confluent Schema Registry when
``POLYMON_SCHEMA_REGISTRY_URL`` is set (subject = the record's full name, i.e.
RecordNameStrategy).
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Protocol

import cavro
import fastavro
from fastavro.validation import ValidationError, validate
from faust.serializers import codecs
from pydantic import ValidationError as PydanticValidationError

from streams import assembly, avrodecode
from streams.records import RECORD_TYPES, DeadLetter, DeadLetterStage, Record

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
_OBJECT_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# Appended to a frame's body before the fast decoder reads it (see AvroCodec._fast): read
# right after the record, it proves the record ended exactly at the frame's end. Random
# per process, so no input can be made to fake it.
_END_MARK = os.urandom(8)
_END_FIELD = "polymon_end_mark"  # appended to a record's fields to read the mark after it
_FAST_OPTIONS = cavro.Options(record_decodes_to_dict=True)


class CodecError(ValueError):
    """Bytes that are not a valid frame of the expected schema."""


class SchemaRegistryError(RuntimeError):
    """The configured Schema Registry could not be used."""


@dataclass(frozen=True)
class SchemaEntry:
    name: str
    schema_id: int
    definition: dict[str, Any]

    @cached_property
    def parsed(self) -> Any:
        return fastavro.parse_schema(self.definition)

    @cached_property
    def has_record_unions(self) -> bool:
        """Whether a union in the schema may have more than one record branch (decoded
        as (name, record) so the branch is known)."""
        return _has_record_unions(self.definition)

    @property
    def full_name(self) -> str:
        return f"{self.definition.get('namespace', '')}.{self.name}".lstrip(".")


_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _has_record_unions(node: Any) -> bool:
    if isinstance(node, list):  # a union; a branch named by reference may be a record
        named = [b for b in node if (isinstance(b, dict) and b.get("type") == "record")
                 or (isinstance(b, str) and b not in _PRIMITIVES)]
        return len(named) > 1 or any(_has_record_unions(branch) for branch in node)
    if isinstance(node, dict):
        return any(_has_record_unions(value) for key, value in node.items()
                   if key in ("type", "fields", "items", "values"))
    return False


class SchemaRegistryClient:
    """The two calls of the Confluent Schema Registry REST API that polymon needs."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method,
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SchemaRegistryError(f"schema registry {self.url}{path}: {exc}") from exc

    def register(self, subject: str, definition: dict[str, Any]) -> int:
        """Register (or look up, the call is idempotent) a schema; returns its id."""
        reply = self._call("POST", f"/subjects/{subject}/versions",
                           {"schema": json.dumps(definition)})
        return int(reply["id"])

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        return json.loads(self._call("GET", f"/schemas/ids/{schema_id}")["schema"])


class SchemaCatalog:
    """Every schema of schemas/, with its wire id."""

    def __init__(self, schema_dir: Path = SCHEMA_DIR, registry_url: str | None = None) -> None:
        self.schema_dir = schema_dir
        definitions = {
            path.stem: json.loads(path.read_text()) for path in sorted(schema_dir.glob("*.avsc"))
        }
        if registry_url:
            client = SchemaRegistryClient(registry_url)
            ids = {
                name: client.register(f"polymon.v1.{name}", definition)
                for name, definition in definitions.items()
            }
        else:
            local = json.loads((schema_dir / "registry.json").read_text())
            ids = {name: int(local[name]) for name in definitions if name in local}
            missing = sorted(set(definitions) - set(ids))
            if missing:
                raise SchemaRegistryError(
                    f"schemas without an id in {schema_dir / 'registry.json'}: {', '.join(missing)}"
                )
        self._by_name = {n: SchemaEntry(n, ids[n], d) for n, d in definitions.items()}
        self._by_id = {entry.schema_id: entry for entry in self._by_name.values()}

    def __getitem__(self, name: str) -> SchemaEntry:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no schema {name!r} in {self.schema_dir}") from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def by_id(self, schema_id: int) -> SchemaEntry | None:
        return self._by_id.get(schema_id)


class AvroCodec:
    """Encode/decode one schema's records, framed."""

    def __init__(self, entry: SchemaEntry, catalog: SchemaCatalog) -> None:
        self.entry = entry
        self.catalog = catalog
        self.record_type: type[Record] = RECORD_TYPES[entry.name]
        # bound once, the input records' compiled assembly where there is one: a pydantic
        # model class's attributes are read through its metaclass's __getattr__ hook
        # (~400 instructions), and this runs per record
        self.from_avro: Callable[[dict[str, Any]], Record] = assembly.FROM_AVRO.get(
            self.record_type, self.record_type.from_avro)
        self._header = _HEADER.pack(MAGIC_BYTE, entry.schema_id)

    def encode(self, datum: dict[str, Any]) -> bytes:
        program = self._program
        if program is not None:  # the C encoder; fastavro for what it leaves
            data: bytes | None = avrodecode.encode_frame(program, self._header, datum)
            if data is not None:
                return data
        buffer = io.BytesIO()
        buffer.write(self._header)
        fastavro.schemaless_writer(buffer, self.entry.parsed, datum)
        return buffer.getvalue()

    def encode_record(self, record: Record) -> bytes:
        return self.encode(record.to_avro())

    def validate(self, datum: dict[str, Any]) -> None:
        """Raise CodecError naming the field when ``datum`` does not fit the schema."""
        try:
            validate(datum, self.entry.parsed, raise_errors=True)
        except ValidationError as exc:
            raise CodecError(f"does not match schema {self.entry.name}: {exc}") from exc

    def writer_of(self, data: bytes | None) -> SchemaEntry | str:
        """The schema ``data`` was written with, or why it is not a frame of a schema of
        this record (its body may still be corrupt). Said without raising: garbage is
        common input."""
        if data is not None and data.startswith(self._header):
            return self.entry
        if data is None:
            return "value is null (tombstone), expected a record"
        if len(data) < _HEADER.size:
            return f"{len(data)} bytes is shorter than the 5-byte frame header"
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC_BYTE:
            return f"magic byte is {magic}, expected {MAGIC_BYTE} (not Avro-framed)"
        writer = self.catalog.by_id(schema_id)
        if writer is None:
            return f"unknown schema id {schema_id}"
        if writer.name != self.entry.name:
            return f"schema id {schema_id} is {writer.name}, expected {self.entry.name}"
        return writer

    @cached_property
    def _fast(self) -> cavro.Schema | None:
        """cavro, for bodies of this record's own schema followed by the end mark: the
        record's fields and one more, so that a body with bytes missing or left over is
        told apart (the mark is not where it belongs). None for schemas whose unions hold
        several records (decoded with the branch name)."""
        if self.entry.has_record_unions:
            return None
        definition = self.entry.definition
        return cavro.Schema({**definition, "fields": [*definition["fields"], {
            "name": _END_FIELD, "type": {"type": "fixed", "name": "End",
                                         "namespace": "polymon.framing",
                                         "size": len(_END_MARK)}}]}, options=_FAST_OPTIONS)

    @cached_property
    def _program(self) -> avrodecode.Program | None:
        """The C decoder's program for this record's own schema, when the extension is
        built (else cavro decodes). None for schemas whose unions hold several records."""
        if self.entry.has_record_unions:
            return None
        return avrodecode.compile_program(self.entry.definition)

    def decode_own(self, data: bytes | None) -> dict[str, Any] | None:
        """The datum of a frame of this record's own schema, read by the C decoder or
        cavro (the common case, checked once); None when ``data`` is no such frame or
        they do not read it: then :meth:`decode` (fastavro) decides, and says why."""
        program = self._program
        if program is not None:
            return avrodecode.decode_frame(program, self._header, data)
        if data is None or not data.startswith(self._header) or self._fast is None:
            return None
        try:
            datum = self._fast.binary_decode(data[_HEADER.size:] + _END_MARK)
        except Exception:
            return None
        return datum if datum.pop(_END_FIELD) == _END_MARK else None  # type: ignore[no-any-return]

    def decode(self, data: bytes | None) -> dict[str, Any]:
        datum = self.decode_own(data)
        return datum if datum is not None else self.decode_by_writer(data)

    def decode_by_writer(self, data: bytes | None,
                         writer: SchemaEntry | str | None = None) -> dict[str, Any]:
        """fastavro, with the schema the frame names: what is not the common case (an
        older schema version, whatever cavro does not read). CodecError says why not.
        ``writer``: :meth:`writer_of` the frame, when the caller has it already."""
        if writer is None:
            writer = self.writer_of(data)
        if isinstance(writer, str):
            raise CodecError(writer)
        assert data is not None  # a frame
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        try:
            # our own schema needs no resolution; record names matter only in unions of
            # several records (fastavro's per-call cost is most of the decode)
            datum = fastavro.schemaless_reader(
                body, writer.parsed, None if writer is self.entry else self.entry.parsed,
                return_record_name=self.entry.has_record_unions,
                return_record_name_override=self.entry.has_record_unions,
            )
        except Exception as exc:  # fastavro raises many types on corrupt bodies
            # fastavro's messages name the buffer object ("from <_io.BytesIO object at
            # 0x...>"): without the address, the same bytes always get the same reason
            reason = _OBJECT_ADDRESS.sub("", repr(exc))
            raise CodecError(f"corrupt Avro body for {self.entry.name}: {reason}") from exc
        if body.tell() != len(data):
            raise CodecError(
                f"{len(data) - body.tell()} trailing bytes after the {self.entry.name} record"
            )
        return datum

    def decode_record(self, data: bytes | None) -> Record:
        """Decode and validate; CodecError or pydantic ValidationError on bad input."""
        return self.from_avro(self.decode(data))


class FaustAvroCodec(codecs.Codec):
    """Faust codec so topics declared with ``value_serializer='avro-<Name>'`` encode records."""

    def __init__(self, codec: AvroCodec, **kwargs: Any) -> None:
        self.avro = codec
        super().__init__(**kwargs)

    def _dumps(self, obj: Any) -> bytes | None:
        if obj is None:  # a tombstone: compaction drops the key's earlier values
            return None
        if isinstance(obj, Record):
            return self.avro.encode_record(obj)
        return self.avro.encode(obj)

    def _loads(self, s: bytes) -> Any:
        return self.avro.decode_record(s)


class Codecs:
    """One AvroCodec per schema, by record name."""

    def __init__(self, catalog: SchemaCatalog) -> None:
        self.catalog = catalog
        self._codecs = {name: AvroCodec(catalog[name], catalog) for name in catalog.names()}

    def __getitem__(self, name: str) -> AvroCodec:
        return self._codecs[name]

    def register_with_faust(self) -> None:
        for name, codec in self._codecs.items():
            codecs.register(f"avro-{name}", FaustAvroCodec(codec))


def describe_validation_error(exc: PydanticValidationError) -> str:
    """'field.path: message' for each error, as a user can act on it."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


class InputMessage(Protocol):
    """What handlers and the dead-letter read of a consumed message: fields of a Kafka
    client's consumer record. The batch consumer hands over the fetched records
    themselves (a worker's are streams.fetching.FetchedRecord; a copy per message cost
    more than any field read from it)."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None  # ms since the Unix epoch
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input message cannot be used: the dead-letter stage and a precise reason."""

    stage: DeadLetterStage
    error: str


def decode_or_reject(codec: AvroCodec, data: bytes | None) -> Record | Rejection:
    """The decoded, validated record, or why it is to be dead-lettered instead."""
    return _record_or_rejection(codec, codec.decode_own(data), data)


def _record_or_rejection(codec: AvroCodec, datum: dict[str, Any] | None,
                         data: bytes | None) -> Record | Rejection:
    """The record of ``datum`` (decode_own's reading of ``data``), or why not."""
    try:
        if datum is None:  # not the common case: garbage is told apart without raising
            writer = codec.writer_of(data)
            if isinstance(writer, str):
                return Rejection(DeadLetterStage.DECODE, writer)
            datum = codec.decode_by_writer(data, writer)
        return codec.from_avro(datum)
    except (CodecError, PydanticValidationError) as exc:
        return _rejection(exc)


def _rejection(exc: CodecError | PydanticValidationError) -> Rejection:
    if isinstance(exc, CodecError):
        return Rejection(DeadLetterStage.DECODE, str(exc))
    return Rejection(DeadLetterStage.VALIDATE, describe_validation_error(exc))


def rejecting_decoder(codec: AvroCodec) -> Callable[[bytes | None], Record | Rejection]:
    """``decode_or_reject(codec, ·)`` with what it reads of the codec bound once: it is
    the first step of every input event, and each read of a codec attribute or method
    (the C decoder's program, the frame header, the assembly) is a lookup per record."""
    program, header, from_avro = codec._program, codec._header, codec.from_avro
    if program is None:  # no C decoder for this schema (or not built): cavro's path
        return functools.partial(decode_or_reject, codec)
    decode_frame = avrodecode.decode_frame

    def decode(data: bytes | None) -> Record | Rejection:
        datum = decode_frame(program, header, data)
        if datum is None:
            return _record_or_rejection(codec, None, data)
        try:
            return from_avro(datum)
        except (CodecError, PydanticValidationError) as exc:
            return _rejection(exc)

    return decode


def dead_letter(
    message: InputMessage, stage: DeadLetterStage, error: str, worker_id: str,
    dead_lettered_ms: int | None = None,
) -> DeadLetter:
    # every field comes typed from the consumed message and this code: no validation
    return DeadLetter.model_construct(
        source_topic=message.topic,
        source_partition=message.partition,
        source_offset=message.offset,
        source_timestamp_ms=message.timestamp,
        key=message.key,
        value=message.value,
        stage=stage,
        error=error,
        worker_id=worker_id,
        dead_lettered_ms=int(time.time() * 1000) if dead_lettered_ms is None
        else dead_lettered_ms,
    )


def _zigzag(number: int) -> bytes:
    """Avro int/long: zig-zag, then a little-endian base-128 varint."""
    number = (number << 1) ^ (number >> 63)
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


_ZIGZAG_SMALL = [_zigzag(n) for n in range(64)]  # lengths and indexes are mostly small
_NULL = _zigzag(0)  # union branch 0: null
_PRESENT = _zigzag(1)  # union branch 1: the value


def _long(number: int) -> bytes:
    return _ZIGZAG_SMALL[number] if 0 <= number < 64 else _zigzag(number)


# timestamps repeat: a producer's batch shares one, and letters written in the same ms
_timestamp = functools.lru_cache(maxsize=256)(_zigzag)


def _blob(data: bytes) -> bytes:
    return _long(len(data)) + data


@functools.lru_cache(maxsize=4096)  # topics, worker ids and most errors repeat
def _text(text: str) -> bytes:
    return _blob(text.encode())


class DeadLetterWriter:
    """Avro-encodes a dead letter straight from the consumed message: a flood of garbage
    makes this path as hot as valid input, and building a DeadLetter record and handing
    it to fastavro costs several times the work of writing its ten fields here. The
    layout is checked against schemas/DeadLetter.avsc, so a schema change fails loudly
    (and the unit tests compare every byte with fastavro's encoding)."""

    LAYOUT: ClassVar[list[tuple[str, Any]]] = [
        ("source_topic", "string"), ("source_partition", "int"), ("source_offset", "long"),
        ("source_timestamp_ms", ["null", "long"]), ("key", ["null", "bytes"]),
        ("value", ["null", "bytes"]), ("stage", "DeadLetterStage"), ("error", "string"),
        ("worker_id", "string"), ("dead_lettered_ms", "long"),
    ]

    def __init__(self, entry: SchemaEntry) -> None:
        fields = entry.definition["fields"]
        layout = [(f["name"], f["type"]["name"] if isinstance(f["type"], dict) else f["type"])
                  for f in fields]
        if layout != self.LAYOUT:
            raise SchemaRegistryError(
                f"{entry.name} schema fields {layout} differ from the DeadLetterWriter layout "
                f"{self.LAYOUT}: update streams/codec.py with the schema")
        symbols = next(f["type"]["symbols"] for f in fields if f["name"] == "stage")
        self._stage = {DeadLetterStage(symbol): _long(index)
                       for index, symbol in enumerate(symbols)}
        self._header = _HEADER.pack(MAGIC_BYTE, entry.schema_id)

    def encode(self, message: InputMessage, stage: DeadLetterStage, error: str,
               worker_id: str, dead_lettered_ms: int) -> bytes:
        timestamp, key, value = message.timestamp, message.key, message.value
        return b"".join((
            self._header,
            _text(message.topic),
            _long(message.partition),
            _long(message.offset),
            _NULL if timestamp is None else _PRESENT + _timestamp(timestamp),
            _NULL if key is None else _PRESENT + _blob(key),
            _NULL if value is None else _PRESENT + _blob(value),
            self._stage[stage],
            _text(error),
            _text(worker_id),
            _timestamp(dead_lettered_ms),
        ))
