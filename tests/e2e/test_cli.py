"""The CLI as a user drives it: real subprocesses against the real broker."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Stack, start_test_broker
from tests.samples import SAMPLES

pytestmark = pytest.mark.e2e


def polymon(stack: Stack | None, *args: str, stdin: str = "", timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(stack.env() if stack else {}), **env}
    return subprocess.run([sys.executable, "-m", "streams", *args], input=stdin,
                          env=full_env, timeout=timeout, capture_output=True, text=True)


def test_broker_command_prints_bootstrap_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "streams", "broker", "--port", "0", "--data-dir",
         str(tmp_path / "b")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = ""
        deadline = time.monotonic() + 30
        while "export POLYMON_KAFKA_BOOTSTRAP=" not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
        bootstrap = line.strip().split("=", 1)[1]
        host, port = bootstrap.rsplit(":", 1)
        socket.create_connection((host, int(port)), timeout=5).close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        with pytest.raises(OSError):
            socket.create_connection((host, int(port)), timeout=2).close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_produce_then_consume_round_trips_records(stack: Stack) -> None:
    stack.create_topics()
    lines = "\n".join(r.model_dump_json() for r in SAMPLES["HealthEvent"]) + "\n"
    produced = polymon(stack, "produce", "health.events", stdin=lines)
    assert produced.returncode == 0, produced.stderr
    assert "sent 3 records" in produced.stderr

    consumed = polymon(stack, "consume", "health.events", "--from-beginning", "--max", "3",
                       "--timeout", "10")
    assert consumed.returncode == 0, consumed.stderr
    records = [json.loads(line) for line in consumed.stdout.splitlines()]
    expected = [r.model_dump(mode="json") for r in SAMPLES["HealthEvent"]]
    assert sorted(records, key=lambda r: r["event_id"]) == expected
    keys = {m.key for m in stack.read("health.events", idle_timeout_s=1)}
    assert keys == {b"market:m7", b"bot:b1", b"feed:ingest"}


def test_produce_rejects_invalid_input_naming_the_field_and_sends_nothing(stack: Stack) -> None:
    stack.create_topics()
    good = SAMPLES["HealthEvent"][0].model_dump(mode="json")
    lines = [json.dumps(good), json.dumps(good | {"scope": "planet:mars"}),
             json.dumps(good | {"event_time_ms": "yesterday"})]
    result = polymon(stack, "produce", "health.events", stdin="\n".join(lines))
    assert result.returncode == 2
    assert "line 2: scope:" in result.stderr and "unknown scope kind 'planet'" in result.stderr
    assert "line 3: event_time_ms:" in result.stderr
    assert stack.read("health.events", idle_timeout_s=1) == []


def test_unknown_topic_is_a_usage_error(stack: Stack) -> None:
    result = polymon(stack, "consume", "no.such.topic")
    assert result.returncode == 2
    assert "unknown topic 'no.such.topic'" in result.stderr


def test_bad_settings_are_reported(stack: Stack) -> None:
    result = polymon(stack, "topics", "check", POLYMON_KAFKA_BOOTSTRAP="nohostport")
    assert result.returncode == 2
    assert "host:port" in result.stderr


def test_consume_reports_undecodable_messages_and_goes_on(stack: Stack) -> None:
    stack.create_topics()
    record = SAMPLES["HealthEvent"][0]
    from tests.conftest import CODECS

    stack.send_raw("health.events", [(b"k", b"junk-bytes"),
                                     (b"k", CODECS["HealthEvent"].encode_record(record))])
    result = polymon(stack, "consume", "health.events", "--from-beginning", "--timeout", "3")
    assert result.returncode == 0
    assert [json.loads(line)["event_id"] for line in result.stdout.splitlines()] == ["e1"]
    assert "offset 0: magic byte is 106" in result.stderr and "1 undecodable" in result.stderr


def test_demo_detects_every_scripted_fault(tmp_path: Path) -> None:
    from streams.devtools.demo import scripted_faults

    # an empty PATH: no java, no mvn — the demo runs on the embedded broker alone
    (tmp_path / "bin").mkdir()
    result = polymon(None, "demo", "--duration", "60", "--seed", "1", timeout=300,
                     POLYMON_STATE_DIR=str(tmp_path), COLUMNS="200", PATH=str(tmp_path / "bin"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every scripted fault was detected" in result.stdout
    for fault in scripted_faults():  # each listed with its detection delay
        row = next(line for line in result.stdout.splitlines() if fault.name in line)
        assert fault.reason_code in row, row
        assert len(re.findall(r"-?\d+\.\d+s", row)) >= 3, f"injected/detected/delay: {row}"
    assert "stage CANARY" in result.stdout and "stage PAPER" in result.stdout
    # hysteresis: each fault one episode, so no (scope, reason) fired twice
    assert "no (scope, reason) fired more than once" in result.stdout
    assert "fired more than once:" not in result.stdout
    # the bots obey their pauses but for the scripted one: the only divergence is on m3
    divergent = [line for line in result.stdout.splitlines() if "RISK_STATE_DIVERGENCE" in line]
    assert divergent and all("market:m3" in line for line in divergent), divergent


def test_external_bootstrap_is_used_when_set(tmp_path: Path) -> None:
    other = start_test_broker(tmp_path / "other")
    try:
        result = polymon(None, "topics", "create", POLYMON_KAFKA_BOOTSTRAP=other.bootstrap,
                         POLYMON_TOPIC_PREFIX="ext.")
        assert result.returncode == 0, result.stderr
        check = polymon(None, "topics", "check", POLYMON_KAFKA_BOOTSTRAP=other.bootstrap,
                        POLYMON_TOPIC_PREFIX="ext.")
        assert check.returncode == 0 and "all topics match" in check.stdout
    finally:
        other.stop()
