from __future__ import annotations

import collections
import io
import json
import random
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer

import fastavro
import pytest

from streams import avrodecode, compiled
from streams.avro import SchemaRegistryError
from streams.codec import (
    AvroCodec,
    CodecError,
    Codecs,
    FaustAvroCodec,
    InputMessage,
    Rejection,
    SchemaCatalog,
    SchemaEntry,
    dead_letter,
    decode_or_reject,
    encode_dead_letter,
    rejecting_decoder,
)
from streams.records import DeadLetter, DeadLetterStage, HealthEvent
from tests.samples import SAMPLES

CODECS = Codecs(SchemaCatalog())
HEALTH = CODECS["HealthEvent"]


@dataclass(slots=True)
class ConsumedMessage:
    """An InputMessage as a consumer hands it over (the fields of its records)."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: bytes | None
    value: bytes | None


def _message(value: bytes | None) -> InputMessage:
    return ConsumedMessage("health.events", 3, 17, 1234, b"market:m7", value)


@pytest.mark.parametrize(("data", "reason"), [
    (None, "tombstone"),
    (b"", "shorter than the 5-byte frame header"),
    (b"\x01\x00\x00\x00\x01abc", "magic byte is 1"),
    (b"\x00\x00\x00\x03\xe7abc", "unknown schema id 999"),
    (b"\x00\x00\x00\x00\x07abc", "schema id 7 is ReportEnvelope, expected HealthEvent"),
    (b"\x00\x00\x00\x00\x01\xff\xff\xff", "corrupt Avro body"),
])
def test_decode_errors_say_what_is_wrong(data: bytes | None, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        HEALTH.decode(data)


def test_the_same_corrupt_bytes_always_get_the_same_reason() -> None:
    """fastavro names its buffer object in some errors (a double cut short); the reason
    carries no address."""
    codec = CODECS["FeatureSample"]
    truncated = codec.encode_record(SAMPLES["FeatureSample"][0])[:-3]
    reasons = set()
    for _ in range(3):
        rejection = decode_or_reject(codec, truncated)
        assert isinstance(rejection, Rejection) and "corrupt Avro body" in rejection.error
        reasons.add(rejection.error)
    assert len(reasons) == 1 and " at 0x" not in reasons.pop()


def test_trailing_bytes_are_an_error() -> None:
    data = HEALTH.encode_record(SAMPLES["HealthEvent"][0]) + b"\x00"
    with pytest.raises(CodecError, match="1 trailing bytes"):
        HEALTH.decode(data)


def test_valid_message_decodes_to_its_record() -> None:
    record = SAMPLES["HealthEvent"][0]
    assert decode_or_reject(HEALTH, HEALTH.encode_record(record)) == record


def test_garbage_is_rejected_at_the_decode_stage() -> None:
    rejection = decode_or_reject(HEALTH, b"garbage!")
    assert isinstance(rejection, Rejection)
    assert rejection.stage is DeadLetterStage.DECODE and "magic byte" in rejection.error


def test_a_dead_letter_carries_the_bytes_and_origin() -> None:
    letter = dead_letter(_message(b"garbage!"), DeadLetterStage.DECODE, "bad", "w9")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "health.events", 3, 17)
    assert letter.key == b"market:m7" and letter.value == b"garbage!"
    assert letter.error == "bad" and letter.worker_id == "w9"


def test_valid_avro_with_invalid_content_is_rejected_at_the_validate_stage() -> None:
    datum = SAMPLES["HealthEvent"][0].to_avro() | {"scope": "planet:mars", "sequence": -3}
    rejection = decode_or_reject(HEALTH, HEALTH.encode(datum))
    assert rejecting_decoder(HEALTH)(HEALTH.encode(datum)) == rejection
    assert isinstance(rejection, Rejection)
    assert rejection.stage is DeadLetterStage.VALIDATE
    assert "scope" in rejection.error and "unknown scope kind 'planet'" in rejection.error
    assert "sequence" in rejection.error


@pytest.mark.parametrize("message", [
    ConsumedMessage("health.events", 3, 17, 1234, b"market:m7", b"garbage!"),
    ConsumedMessage("exec.fills", 0, 0, None, None, None),
    ConsumedMessage("t\u00e9", 63, 64, 2**62, b"", b"\x00" * 300),
    ConsumedMessage("model.scores", 2**31 - 1, 2**63 - 1, -1, b"k" * 70, bytes(range(256))),
])
@pytest.mark.parametrize("stage", list(DeadLetterStage))
def test_a_dead_letter_is_encoded_from_the_message_as_its_record_is(
    message: InputMessage, stage: DeadLetterStage
) -> None:
    error = "magic byte is 1, expected 0 \u2014 " + "x" * (stage.value == "PROCESS") * 200
    letters = CODECS["DeadLetter"]
    encoded = encode_dead_letter(letters, message, stage, error, "worker-\u00f8",
                                 1_700_000_000_123)
    expected = dead_letter(message, stage, error, "worker-\u00f8", 1_700_000_000_123)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, letters.entry.parsed, expected.to_avro())
    assert encoded == letters._header + buffer.getvalue()  # fastavro's every byte
    assert letters.decode_record(encoded) == expected


def test_validate_names_the_field() -> None:
    datum = SAMPLES["HealthEvent"][0].to_avro() | {"event_time_ms": "soon"}
    with pytest.raises(CodecError, match="event_time_ms"):
        HEALTH.validate(datum)


def test_dead_letter_json_carries_bytes_as_base64() -> None:
    letter = SAMPLES["DeadLetter"][0]
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


class _FakeRegistry(BaseHTTPRequestHandler):
    """The Schema Registry's two endpoints polymon uses, in memory."""

    subjects: dict[str, int] = {}  # noqa: RUF012

    def do_POST(self) -> None:
        subject = self.path.split("/")[2]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        json.loads(body["schema"])
        schema_id = self.subjects.setdefault(subject, 100 + len(self.subjects))
        self._reply({"id": schema_id})

    def _reply(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_schema_registry_ids_are_used_for_framing() -> None:
    server = HTTPServer(("127.0.0.1", 0), _FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        catalog = SchemaCatalog(registry_url=f"http://127.0.0.1:{server.server_port}")
        codec = Codecs(catalog)["HealthEvent"]
        data = codec.encode_record(SAMPLES["HealthEvent"][0])
        assert int.from_bytes(data[1:5], "big") == _FakeRegistry.subjects[
            "polymon.v1.HealthEvent"]
        assert isinstance(codec.decode_record(data), HealthEvent)
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_schema_registry_is_a_clear_error() -> None:
    with pytest.raises(SchemaRegistryError, match=r"127\.0\.0\.1:9"):
        SchemaCatalog(registry_url="http://127.0.0.1:9")


def test_record_names_are_decoded_only_for_unions_of_several_records() -> None:
    catalog = SchemaCatalog()
    assert [name for name in catalog.names() if catalog[name].has_record_unions] == [
        "ReportEnvelope"]
    by_reference = SchemaEntry("X", 1, {"type": "record", "name": "X", "fields": [
        {"name": "payload", "type": ["null", "ns.A", "ns.B"]}]})
    inline_one = SchemaEntry("Y", 2, {"type": "record", "name": "Y", "fields": [
        {"name": "payload", "type": ["null", {"type": "record", "name": "A", "fields": []}]}]})
    assert by_reference.has_record_unions
    assert not inline_one.has_record_unions


def test_the_faust_codec_passes_a_tombstone_through() -> None:
    faust_codec = FaustAvroCodec(HEALTH)
    assert faust_codec.dumps(None) is None  # a null value: compaction drops the key
    record = SAMPLES["HealthEvent"][0]
    assert HEALTH.decode_record(faust_codec.dumps(record)) == record


# The C decoder must answer exactly as fastavro, its twin, does for any bytes: same
# record, or the same CodecError (it leaves to fastavro whatever it rejects).
_FAST_SCHEMAS = [name for name in SAMPLES if not CODECS[name].entry.has_record_unions]
_FAST_DECODERS = [pytest.param("c", marks=pytest.mark.skipif(
    not avrodecode.available(), reason=f"the C extension is {avrodecode.status}"))]


def _decoding_with(name: str, decoder: str | None) -> AvroCodec:
    """A codec of ``name`` whose fast path is ``decoder`` ("c"), or none (fastavro)."""
    codec = AvroCodec(CODECS[name].entry, CODECS.catalog)
    if decoder != "c":
        codec.__dict__["_program"] = None  # the cached C program: none
    else:
        assert codec._program is not None, f"the C decoder is not built: {avrodecode.status}"
    return codec


def _fastavro_only(name: str) -> AvroCodec:
    return _decoding_with(name, None)


def _decoded(codec: AvroCodec, data: bytes) -> tuple[str, object]:
    try:
        return ("record", codec.decode(data))
    except CodecError as exc:
        return ("error", str(exc))


def _mutated(frame: bytes, rng: random.Random) -> bytes:
    body = bytearray(frame)
    for _ in range(rng.randint(1, 3)):
        where = rng.randrange(5, len(body) + 1)
        operation = rng.random()
        if operation < 0.45 and where < len(body):
            body[where] = rng.randrange(256)
        elif operation < 0.65:
            del body[where:]
        elif operation < 0.85:
            body.insert(where, rng.randrange(256))
        else:
            body += bytes(rng.randrange(256) for _ in range(rng.randint(1, 9)))
    return bytes(body)


@pytest.mark.parametrize("decoder", _FAST_DECODERS)
@pytest.mark.parametrize("name", _FAST_SCHEMAS)
def test_fast_decoder_answers_as_fastavro_for_any_bytes(name: str, decoder: str) -> None:
    codec, reference = _decoding_with(name, decoder), _fastavro_only(name)
    decode = rejecting_decoder(codec)
    frames = [codec.encode_record(sample) for sample in SAMPLES[name]]
    rng = random.Random(name)
    outcomes = collections.Counter()
    for _ in range(4000):
        data = _mutated(rng.choice(frames), rng)
        outcome = _decoded(codec, data)
        assert outcome == _decoded(reference, data), data.hex()
        # the consume loop's way (fast path first, garbage told apart without raising)
        assert decode_or_reject(codec, data) == decode_or_reject(reference, data), data.hex()
        assert decode(data) == decode_or_reject(reference, data), data.hex()
        outcomes[outcome[0]] += 1
    assert outcomes["error"] > 0  # both ways were exercised
    for frame in frames:
        assert _decoded(codec, frame) == _decoded(reference, frame)


@pytest.mark.parametrize("decoder", _FAST_DECODERS)
@pytest.mark.parametrize("name", _FAST_SCHEMAS)
def test_own_schema_frames_take_the_fast_decoder(name: str, decoder: str, monkeypatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded by fastavro")

    monkeypatch.setattr(fastavro, "schemaless_reader", refuse)
    codec = _decoding_with(name, decoder)
    for sample in SAMPLES[name]:
        assert codec.decode_record(codec.encode_record(sample)) == sample


@pytest.mark.skipif(compiled.NO_EXTENSIONS, reason="POLYMON_NO_EXTENSIONS is set")
def test_input_records_are_decoded_in_c_when_it_is_built() -> None:
    assert avrodecode.available(), avrodecode.status
    for name in _FAST_SCHEMAS:
        assert CODECS[name]._program is not None, name


@pytest.mark.parametrize("decoder", _FAST_DECODERS)
@pytest.mark.parametrize("extra", [b"\x00", b"\x00" * 8, b"x" * 20])
def test_trailing_bytes_are_an_error_on_the_fast_path_too(extra: bytes, decoder: str) -> None:
    codec = _decoding_with("HealthEvent", decoder)
    frame = codec.encode_record(SAMPLES["HealthEvent"][0])
    with pytest.raises(CodecError, match=f"{len(extra)} trailing bytes"):
        codec.decode(frame + extra)


