"""Fuzz targets of the C extensions, each checked against its pure twin.

    python -m tests.fuzz.harness BUILD_DIR TARGET [--corpus DIR] [libFuzzer flags, inputs]
    python -m tests.fuzz.harness BUILD_DIR --list

Targets: ``avro:<Schema>`` (decode_frame, then encode_frame of what it decoded) for each
schema under schemas/ whose program the C decoder walks, and ``batches`` (read_batches).
BUILD_DIR holds the sanitized build (tests/fuzz/build.py); ops/fuzz/run.sh runs it with
the sanitizer runtime preloaded. The process runs with POLYMON_NO_EXTENSIONS=1: the
tree's own build is never loaded, only the sanitized extensions, put in place here.

Properties (a failure is a finding, as a sanitizer report is):
- avro: a datum decode_frame returns is fastavro's datum of the same bytes, and fastavro
  reads exactly those bytes; encode_frame of it is what fastavro writes (or None).
- batches: the records and next fetch offsets of a fetched partition are aiokafka's, or
  both reject the bytes (as tests/unit/framework/test_record_unpacking.py checks), for
  batches whose CRC-32C the harness recomputes so that mutations reach past the check;
  read_batches on the bytes as mutated (wrong CRCs, unchecked) only has to not crash.
Seeds: the sample records of tests/samples.py, as frames and in record batches.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ["POLYMON_NO_EXTENSIONS"] = "1"  # before streams is imported: the twins' mode

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schemas"
HEADER = b"\x00\x00\x00\x00\x07"  # a frame's magic byte and schema id


def load_sanitized(build_dir: Path) -> dict[str, Any]:
    """The sanitized extensions, imported under their own names (the code under test
    then finds them as it finds the tree's build)."""
    import streams

    modules = {}
    for path in sorted((build_dir / "streams").glob("_*.so")):
        name = "streams." + path.name.split(".")[0]
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
        setattr(streams, name.rpartition(".")[2], module)
        modules[name] = module
    if set(modules) != {"streams._avro", "streams._batches"}:
        raise SystemExit(f"no sanitized build in {build_dir}: run tests/fuzz/build.py")
    return modules


def same(left: Any, right: Any) -> bool:
    """Equal, NaN equal to NaN, and of the same types (True is not 1)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return left == right or (math.isnan(left) and math.isnan(right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    return bool(left == right)


# -- Avro ----------------------------------------------------------------------------

def schemas() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(SCHEMA_DIR.glob("*.avsc"))}


def programs() -> dict[str, tuple[Any, ...]]:
    """Each schema whose program the C decoder walks (the others are fastavro's)."""
    from streams import avrodecode

    found = {}
    for name, schema in schemas().items():
        try:
            found[name] = avrodecode._compile(schema, {}, set(), schema.get("namespace", ""))
        except avrodecode.Unsupported:
            continue
    return found


def avro_seeds(name: str) -> list[bytes]:
    """The bodies of the sample records of schema ``name`` (tests/samples.py)."""
    import fastavro

    from tests.samples import SAMPLES

    parsed = fastavro.parse_schema(schemas()[name])
    bodies = []
    for record in SAMPLES.get(name, []):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, record.to_avro())
        bodies.append(buffer.getvalue())
    return bodies


def avro_target(name: str, avro: Any) -> Callable[[bytes], None]:
    import fastavro

    schema = schemas()[name]
    parsed = fastavro.parse_schema(schema)
    program = programs()[name]
    decode_frame, encode_frame = avro.decode_frame, avro.encode_frame

    def test_one(body: bytes) -> None:
        datum = decode_frame(program, HEADER, HEADER + body)
        if datum is None:
            return  # fastavro decides (and says why)
        stream = io.BytesIO(body)
        twin = fastavro.schemaless_reader(stream, parsed, None, return_record_name=False)
        if not same(datum, twin) or stream.tell() != len(body):
            raise AssertionError(f"{name}: C decoded {datum!r} from {body!r}; fastavro "
                                 f"{twin!r} from its first {stream.tell()} bytes")
        written = encode_frame(program, HEADER, datum)
        if written is not None:
            expected = io.BytesIO()
            fastavro.schemaless_writer(expected, parsed, twin)
            if written != HEADER + expected.getvalue():
                raise AssertionError(f"{name}: C encoded {datum!r} as {written!r}")

    return test_one


# -- Kafka record batches --------------------------------------------------------------

_LENGTH = struct.Struct(">i")
_CRC = struct.Struct(">I")


def with_crcs(data: bytes) -> bytes:
    """``data`` as v2 batches (magic 2) with the CRC-32C of each made right (a batch's
    CRC covers its bytes from the attributes on: without this, nearly every mutation
    would stop at the check), and uncompressed. The C reader hands any other batch to
    aiokafka whole; fuzzing those would fuzz aiokafka's legacy reader and codecs, which
    read a malformed legacy batch differently from a slice than from the whole fetch
    (SystemError, "Negative size passed to PyBytes_FromStringAndSize")."""
    from aiokafka.record.util import calc_crc32c

    out = bytearray(data)
    pos = 0
    while len(out) - pos >= 61:
        size = 12 + _LENGTH.unpack_from(out, pos + 8)[0]
        if size < 61 or size > len(out) - pos:
            break
        out[pos + 16] = 2  # magic
        out[pos + 22] &= 0xF8  # the attributes' compression bits
        _CRC.pack_into(out, pos + 17, calc_crc32c(bytes(out[pos + 21:pos + size])))
        pos += size
    return bytes(out)


def batch_seeds() -> list[bytes]:
    """Record batches of the sample records' frames, as a producer writes them (keys,
    nulls, headers, several batches, gaps in the offsets)."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    def batch(base: int, records: list[tuple[bytes | None, bytes | None]],
              headers: list[tuple[str, bytes]], step: int = 1) -> bytes:
        builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                            producer_id=-1, producer_epoch=0,
                                            base_sequence=-1, batch_size=1 << 20)
        for index, (key, value) in enumerate(records):
            builder.append(index * step, timestamp=1_790_000_000_000 + index, key=key,
                           value=value, headers=headers)
        data = builder.build()
        struct.pack_into(">q", data, 0, base)  # set by the broker
        return with_crcs(bytes(data))

    frames = [HEADER + body for name in programs() for body in avro_seeds(name)]
    seeds = [batch(0, [(b"market:m7", frame)], []) for frame in frames[:4]]
    seeds.append(batch(10, [(None, frame) for frame in frames[:3]] + [(b"k", None)],
                       [("trace", b"1"), ("h", b"")], step=2))
    seeds.append(seeds[0] + batch(1, [(b"bot:b1", frames[-1])], []))
    return seeds


def batches_target(batches: Any) -> Callable[[bytes], None]:
    from aiokafka.consumer import fetcher as aiokafka_fetcher
    from aiokafka.consumer.fetcher import PartitionRecords
    from aiokafka.structs import TopicPartition

    from streams.framework import record_unpacking

    record_unpacking._read_batches = batches.read_batches  # the sanitized build's
    tp = TopicPartition("t", 0)
    fields = record_unpacking.FetchedRecord._fields

    def unpacked(data: bytes, fetch_offset: int) -> tuple[list[Any], type | None, int]:
        """The records read one by one (each with the next fetch offset after it), the
        error that ended the reading (None: the end of the bytes) and the final offset."""
        records = PartitionRecords(tp, aiokafka_fetcher.MemoryRecords(data), [],
                                   fetch_offset, None, None, True, 0)
        out: list[Any] = []
        error: type | None = None
        try:
            for record in records:
                out.append((tuple(getattr(record, f) for f in fields),
                            records.next_fetch_offset))
        except Exception as exc:  # aiokafka's (corrupt, unsupported), or its reader's own
            error = type(exc)
        return out, error, records.next_fetch_offset

    def test_one(data: bytes) -> None:
        # the mutated bytes as they are: wrong CRCs both checked and not
        for check in (True, False):
            batches.read_batches(data, 0, 0, "t", 0, record_unpacking.FetchedRecord, check,
                                 None)
        fixed = with_crcs(data)
        fetch_offset = data[0] % 4 if data else 0  # some records before the fetch position
        record_unpacking.uninstall()
        stock = unpacked(fixed, fetch_offset)
        record_unpacking.install()
        ours = unpacked(fixed, fetch_offset)
        record_unpacking.uninstall()
        if stock[1] is None:
            agree = ours == stock
        else:
            # both reject: the C reader hands a batch it does not read to aiokafka whole,
            # which raises before that batch's records are handed out (so a prefix of
            # stock's), and not always the error it raises reading the bytes record by
            # record (a UnicodeDecodeError for its CorruptRecordException)
            agree = ours[1] is not None and ours[0] == stock[0][:len(ours[0])]
        if not agree:
            raise AssertionError(f"read_batches: {ours!r} where aiokafka reads {stock!r} "
                                 f"from {fixed!r}")

    return test_one


# -- entry point -----------------------------------------------------------------------

def targets() -> list[str]:
    return [f"avro:{name}" for name in programs()] + ["batches"]


def seeds(target: str) -> list[bytes]:
    return batch_seeds() if target == "batches" else avro_seeds(target.partition(":")[2])


def main(argv: list[str]) -> None:
    build_dir, command = Path(argv[1]), argv[2]
    modules = load_sanitized(build_dir)
    if command == "--list":
        print("\n".join(targets()))
        return
    target, flags = command, argv[3:]
    if target == "batches":
        test_one = batches_target(modules["streams._batches"])
    elif target.startswith("avro:") and target[5:] in programs():
        test_one = avro_target(target[5:], modules["streams._avro"])
    else:
        raise SystemExit(f"unknown target {target!r}; targets: {', '.join(targets())}")
    if flags[:1] == ["--corpus"]:  # the seeds written into this corpus directory
        corpus = Path(flags[1])
        corpus.mkdir(parents=True, exist_ok=True)
        for index, seed in enumerate(seeds(target)):
            (corpus / f"seed-{index}").write_bytes(seed)
        flags = [*flags[2:], str(corpus)]
    for seed in seeds(target):  # the seeds themselves pass, else the harness is wrong
        test_one(seed)
    import atheris

    atheris.Setup([argv[0], *flags], test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
