"""The worker's Avro: streams.avro's codecs with the hot path's fast decoders and
encoder (the C extension, cavro where it is not built, fastavro for whatever they leave),
registered with Faust, and the dead-letter routing of input that fails to decode or
validate."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Protocol

import cavro
from faust.serializers import codecs
from pydantic import ValidationError as PydanticValidationError

from streams import assembly, avro, avrodecode
from streams.avro import (
    _HEADER,
    MAGIC_BYTE,
    CodecError,
    SchemaCatalog,
    SchemaEntry,
    SchemaRegistryError,
    describe_validation_error,
)
from streams.avro import SCHEMA_DIR as SCHEMA_DIR  # re-exported: where the schemas live
from streams.avro import _has_record_unions as _has_record_unions  # re-exported for tests
from streams.records import DeadLetter, DeadLetterStage, Record

# Appended to a frame's body before the fast decoder reads it (see AvroCodec._fast): read
# right after the record, it proves the record ended exactly at the frame's end. Random
# per process, so no input can be made to fake it.
_END_MARK = os.urandom(8)
_END_FIELD = "polymon_end_mark"  # appended to a record's fields to read the mark after it
_FAST_OPTIONS = cavro.Options(record_decodes_to_dict=True)


class AvroCodec(avro.AvroCodec):
    """Encode/decode one schema's records, framed: the C decoder and encoder, or cavro,
    for this record's own schema; fastavro (streams.avro) for the rest."""

    def __init__(self, entry: SchemaEntry, catalog: SchemaCatalog) -> None:
        super().__init__(entry, catalog)
        # bound once, the input records' compiled assembly where there is one: a pydantic
        # model class's attributes are read through its metaclass's __getattr__ hook
        # (~400 instructions), and this runs per record
        self.from_avro = assembly.FROM_AVRO.get(self.record_type, self.record_type.from_avro)

    def encode(self, datum: dict[str, Any]) -> bytes:
        program = self._program
        if program is not None:  # the C encoder; fastavro for what it leaves
            data: bytes | None = avrodecode.encode_frame(program, self._header, datum)
            if data is not None:
                return data
        return super().encode(datum)

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
