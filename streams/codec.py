"""The worker's Avro: streams.avro's codecs with the C decoder and encoder
(streams.avrodecode; fastavro, their twin, for whatever they leave and wherever the
extension is off), registered with Faust, and the dead-letter routing of input that fails
to decode or validate."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from faust.serializers import codecs
from pydantic import ValidationError as PydanticValidationError

from streams import assembly, avro, avrodecode
from streams.avro import SCHEMA_DIR as SCHEMA_DIR  # re-exported: where the schemas live
from streams.avro import (
    CodecError,
    SchemaCatalog,
    SchemaEntry,
    describe_validation_error,
)
from streams.avro import _has_record_unions as _has_record_unions  # re-exported for tests
from streams.records import DeadLetter, DeadLetterStage, Record


class AvroCodec(avro.AvroCodec):
    """Encode/decode one schema's records, framed: the C decoder and encoder for this
    record's own schema; fastavro (streams.avro) for the rest, and for everything when
    the extension is off."""

    def __init__(self, entry: SchemaEntry, catalog: SchemaCatalog) -> None:
        super().__init__(entry, catalog)
        # bound once, the input records' compiled assembly where there is one: a pydantic
        # model class's attributes are read through its metaclass's __getattr__ hook,
        # and this runs per record
        self.from_avro = assembly.FROM_AVRO.get(self.record_type, self.record_type.from_avro)

    def encode(self, datum: dict[str, Any]) -> bytes:
        program = self._program
        if program is not None:  # the C encoder; fastavro for what it leaves
            data: bytes | None = avrodecode.encode_frame(program, self._header, datum)
            if data is not None:
                return data
        return super().encode(datum)

    @cached_property
    def _program(self) -> avrodecode.Program | None:
        """The C decoder's program for this record's own schema, when the extension is
        on. None for schemas whose unions hold several records (fastavro reads those)."""
        if self.entry.has_record_unions:
            return None
        return avrodecode.compile_program(self.entry.definition)

    def decode_own(self, data: bytes | None) -> dict[str, Any] | None:
        """The datum of a frame of this record's own schema, read by the C decoder (the
        common case, checked once); None when ``data`` is no such frame, the C decoder
        does not read it or is off: then fastavro decides, and says why."""
        program = self._program
        if program is not None:
            return avrodecode.decode_frame(program, self._header, data)
        return None

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
    themselves (a worker's are streams.framework.record_unpacking.FetchedRecord; a copy
    per message cost more than any field read from it)."""

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
    if program is None:  # no C decoder for this schema (or it is off): fastavro's path
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


def encode_dead_letter(codec: AvroCodec, message: InputMessage, stage: DeadLetterStage,
                       error: str, worker_id: str, dead_lettered_ms: int) -> bytes:
    """The frame of ``message``'s dead letter, written by ``codec`` (DeadLetter's) straight
    from the consumed message: no record is built, its fields are typed already."""
    return codec.encode({
        "source_topic": message.topic,
        "source_partition": message.partition,
        "source_offset": message.offset,
        "source_timestamp_ms": message.timestamp,
        "key": message.key,
        "value": message.value,
        "stage": stage.value,
        "error": error,
        "worker_id": worker_id,
        "dead_lettered_ms": dead_lettered_ms,
    })
