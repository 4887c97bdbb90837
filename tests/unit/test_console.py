from __future__ import annotations

import json

import pytest

from streams.codec import Codecs, SchemaCatalog
from streams.console import InputError, encode_json_lines
from streams.topics import load_topic_specs
from tests.samples import SAMPLES

CODECS = Codecs(SchemaCatalog())
SPECS = load_topic_specs()


def test_valid_lines_become_keyed_frames() -> None:
    lines = [r.model_dump_json() for r in SAMPLES["HealthEvent"]]
    messages = encode_json_lines([*lines, ""], SPECS["health.events"], CODECS["HealthEvent"])
    assert [key for key, _ in messages] == [b"market:m7", b"bot:b1", b"feed:ingest"]
    assert [CODECS["HealthEvent"].decode_record(v) for _, v in messages] == SAMPLES["HealthEvent"]


def test_envelope_key_comes_from_its_payload_when_needed() -> None:
    incident = SAMPLES["ReportEnvelope"][1]
    [(key, _)] = encode_json_lines([incident.model_dump_json()], SPECS["monitor.incidents"],
                                   CODECS["ReportEnvelope"])
    assert key == b"inc-1"


def test_every_bad_line_is_reported_and_nothing_is_returned() -> None:
    good = SAMPLES["HealthEvent"][0].model_dump(mode="json")
    lines = [
        json.dumps(good),
        json.dumps(good | {"sequence": -1}),
        "{not json",
        json.dumps({k: v for k, v in good.items() if k != "source"}),
    ]
    with pytest.raises(InputError) as caught:
        encode_json_lines(lines, SPECS["health.events"], CODECS["HealthEvent"])
    problems = caught.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("line 2: sequence:")
    assert problems[1].startswith("line 3:")
    assert problems[2] == "line 4: source: Field required"
