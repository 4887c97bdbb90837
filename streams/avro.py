"""Avro on the wire, read and written with fastavro: the schema catalog, the Confluent
frame, and a codec per record. All a client of polymon's topics needs (the runner's
PauseGuard): neither Faust nor cavro nor a compiled module. The worker's codec
(streams.codec) builds its fast paths and Faust's serializers on this.

Frame: magic byte 0, a 4-byte big-endian schema id, then the Avro binary body
(the Confluent wire format, so Confluent tooling can read our topics). Schema ids
come from schemas/registry.json, or from a Confluent Schema Registry when
``POLYMON_SCHEMA_REGISTRY_URL`` is set (subject = the record's full name, i.e.
RecordNameStrategy).
"""

from __future__ import annotations

import io
import json
import re
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import fastavro
from fastavro.validation import ValidationError, validate
from pydantic import ValidationError as PydanticValidationError

from streams.records import RECORD_TYPES, Record

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
_OBJECT_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


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
        # Earlier versions of a record's schema, to read what they wrote: history/
        # <Name>.<id>.avsc, the id its frames carry.
        history = [(path.stem.rpartition(".")[0], int(path.stem.rpartition(".")[2]),
                    json.loads(path.read_text()))
                   for path in sorted((schema_dir / "history").glob("*.avsc"))]
        if registry_url:
            client = SchemaRegistryClient(registry_url)
            history = [(name, client.register(f"polymon.v1.{name}", definition), definition)
                       for name, _, definition in history]
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
        self._by_id = {old_id: SchemaEntry(n, old_id, d) for n, old_id, d in history}
        self._by_id.update((entry.schema_id, entry) for entry in self._by_name.values())

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
    """Encode/decode one schema's records, framed, with fastavro."""

    def __init__(self, entry: SchemaEntry, catalog: SchemaCatalog) -> None:
        self.entry = entry
        self.catalog = catalog
        self.record_type: type[Record] = RECORD_TYPES[entry.name]
        self.from_avro: Callable[[dict[str, Any]], Record] = self.record_type.from_avro
        self._header = _HEADER.pack(MAGIC_BYTE, entry.schema_id)

    def encode(self, datum: dict[str, Any]) -> bytes:
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

    def decode(self, data: bytes | None) -> dict[str, Any]:
        return self.decode_by_writer(data)

    def decode_by_writer(self, data: bytes | None,
                         writer: SchemaEntry | str | None = None) -> dict[str, Any]:
        """fastavro, with the schema the frame names (an older version of this record's
        is resolved to its own). CodecError says why not. ``writer``: :meth:`writer_of`
        the frame, when the caller has it already."""
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


def describe_validation_error(exc: PydanticValidationError) -> str:
    """'field.path: message' for each error, as a user can act on it."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)
