"""polymon on an Apache Kafka that authenticates (SASL/SCRAM-SHA-512) and authorizes
(StandardAuthorizer, nothing allowed unless an ACL says so), with the ACLs that
`polymon acls --apply` creates: the worker works with exactly its own, a runner's
PauseGuard is READY on its read-only ACLs, and the writes the ACLs exist to stop are
refused by the broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer

from streams.devtools.kafka_broker import KafkaCluster, SaslUsers
from streams.records import HealthEvent, HealthEventKind, OpsAction, OpsCommand
from streams.runner import PauseGuard
from streams.settings import Settings
from tests.conftest import CODECS, Stack, engine_under_test, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(engine_under_test() != "kafka",
                       reason="the embedded broker has no SASL nor ACLs: Apache Kafka only"),
]

USERS = SaslUsers({"admin": "admin-secret-1", "polymon": "worker-secret-1",
                   "runner": "runner-secret-1", "feeds": "feeds-secret-1",
                   "intruder": "intruder-secret"})
PRINCIPALS = {"worker": "User:polymon", "runners": ["User:runner"],
              "producers": {"User:feeds": ["health.events"]}}
PREFIX = "sec."


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("secured-kafka"),
                           jars_cache=Settings().jars_cache, sasl=USERS)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def polymon(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("POLYMON_") or k == "POLYMON_NO_EXTENSIONS"}
    return subprocess.run([sys.executable, "-m", "streams", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=False)


def produce(cluster: KafkaCluster, user: str, topic: str, value: bytes) -> Exception | None:
    """One message as ``user``: None once the broker has it, else the delivery error."""
    producer = Producer({"bootstrap.servers": cluster.bootstrap, **cluster.security(user),
                         "acks": "all", "message.timeout.ms": 10000, "log_level": 0})
    outcome: list[Exception | None] = []
    producer.produce(topic, value, key=b"market:m1",
                     on_delivery=lambda err, _msg: outcome.append(
                         KafkaException(err) if err is not None else None))
    producer.flush(15)
    assert outcome, f"no delivery report for {user}'s write to {topic}"
    return outcome[0]


def command(scope: str) -> OpsCommand:
    return OpsCommand(command_id=uuid.uuid4().hex, scope=scope, action=OpsAction.PAUSE,
                      actor="mallory", reason="forged", issued_time_ms=int(time.time() * 1000))


@pytest.fixture(scope="module")
def deployment(secured: KafkaCluster, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Stack]:
    """Topics made by the admin, the ACLs applied by `polymon acls --apply`, and one
    worker that authenticates as User:polymon."""
    stack = Stack(secured.bootstrap, PREFIX, tmp_path_factory.mktemp("secured-stack"),
                  security=secured.security("admin"))
    stack.create_topics()
    applied = polymon("acls", "--apply", env={
        "POLYMON_KAFKA_BOOTSTRAP": secured.bootstrap, "POLYMON_TOPIC_PREFIX": PREFIX,
        "POLYMON_ACL_PRINCIPALS": json.dumps(PRINCIPALS), **USERS.env("admin")})
    assert applied.returncode == 0, applied.stderr
    assert "ACLs applied" in applied.stdout
    # a worker with the worker's credentials (and nothing else) starts and serves
    stack.start_worker(monitor_heartbeat_interval_s=0.2, evaluation_interval_s=0.1,
                       stale_hold_down_s=1.0, **{k.removeprefix("POLYMON_").lower(): v
                                                 for k, v in USERS.env("polymon").items()})
    try:
        yield stack
    finally:
        stack.stop()


def test_acls_are_printed_from_the_principals_without_a_broker() -> None:
    printed = polymon("acls", env={"POLYMON_ACL_PRINCIPALS": json.dumps(PRINCIPALS),
                                   "POLYMON_TOPIC_PREFIX": PREFIX})
    assert printed.returncode == 0, printed.stderr
    lines = set(printed.stdout.splitlines())
    assert "ALLOW User:polymon WRITE TOPIC sec.control.pauses" in lines
    assert "ALLOW User:runner READ TOPIC sec.control.pauses" in lines
    assert "ALLOW User:feeds WRITE TOPIC sec.health.events" in lines
    assert "ALLOW User:runner WRITE TOPIC sec.control.pause-acks" in lines
    assert "ALLOW User:runner WRITE TOPIC sec.exec.trades" in lines
    assert not any(("User:runner WRITE" in line and "pause-acks" not in line
                    and "exec.trades" not in line)
                   or "User:feeds WRITE TOPIC sec.ops" in line for line in lines)


def test_the_worker_works_end_to_end_with_exactly_its_acls(
        deployment: Stack, secured: KafkaCluster) -> None:
    # the feed writes its input; the book then stops, and the worker pauses the market
    now = int(time.time() * 1000)
    deployment.security = secured.security("feeds")
    deployment.send_records("health.events", [HealthEvent(
        event_id=uuid.uuid4().hex, scope="market:sec1", kind=HealthEventKind.DATA_UPDATE,
        source="feed", event_time_ms=now, feed="book", sequence=1)])
    deployment._producer = None
    deployment.security = secured.security("admin")  # to read what the worker published

    def paused() -> list[object]:
        return [record for record in deployment.read_records("control.pauses",
                                                             idle_timeout_s=0.5)
                if record.scope == "market:sec1" and record.paused]

    pauses = wait_until(paused, 30, what="the worker's pause of market:sec1")
    assert pauses[0].reason_code == "RISK_STALE_BOOK"


def test_a_runner_guard_is_ready_on_read_only_acls_and_sees_the_pause(
        deployment: Stack, secured: KafkaCluster) -> None:
    with PauseGuard(secured.bootstrap, topic_prefix=PREFIX, heartbeat_max_age_s=3.0,
                    consumer_config=secured.security("runner"), runner_id="sec-r1") as guard:
        assert guard.wait_ready(30), guard.status()
        # its acknowledgements go out with the consumer's credentials, on its ACLs
        wait_until(lambda: guard.acks_sent, 15, what="the runner's pause acknowledgements")
        assert guard.ack_failures == 0
        refused = wait_until(lambda: [d for d in [guard.allowed("market:sec1")]
                                      if not d.allowed],
                             30, what="market:sec1 refused by the runner's guard")
        assert refused[0].covering_scope == "market:sec1"
        assert "RISK_STALE_BOOK" in refused[0].reason
        assert guard.allowed("market:other").allowed


def test_a_runner_cannot_write_pauses(deployment: Stack, secured: KafkaCluster) -> None:
    tombstone_of_a_pause = b""
    error = produce(secured, "runner", PREFIX + "control.pauses", tombstone_of_a_pause)
    assert error is not None and "TOPIC_AUTHORIZATION_FAILED" in str(error), error
    # nor audit.log: its trades go to exec.trades, which the worker checks and copies
    error = produce(secured, "runner", PREFIX + "audit.log", b"forged")
    assert error is not None and "TOPIC_AUTHORIZATION_FAILED" in str(error), error


def test_an_unlisted_principal_cannot_write_commands_or_heartbeats(
        deployment: Stack, secured: KafkaCluster) -> None:
    forged = CODECS["OpsCommand"].encode_record(command("global"))
    for user, topic in (("intruder", "ops.commands"), ("feeds", "ops.commands"),
                        ("intruder", "monitor.heartbeat"), ("feeds", "control.pauses")):
        error = produce(secured, user, PREFIX + topic, forged)
        assert error is not None and "TOPIC_AUTHORIZATION_FAILED" in str(error), (
            user, topic, error)


def test_a_wrong_password_is_refused(secured: KafkaCluster) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": secured.bootstrap,
                         **{**secured.security("runner"), "sasl.password": "wrong-password"},
                         "log_level": 0})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)


def test_no_secret_reaches_the_workers_log_or_config_version(deployment: Stack) -> None:
    log = Path(deployment.workers[0].log_path).read_text(errors="replace")
    assert "worker-secret-1" not in log
    worker = {k.removeprefix("POLYMON_").lower(): v for k, v in USERS.env("polymon").items()}
    settings = Settings(**worker)
    assert "worker-secret-1" not in repr(settings)
    other = Settings(**{**worker, "kafka_sasl_password": "another-secret"})
    assert other.config_version == settings.config_version
