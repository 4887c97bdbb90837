"""Shared fixtures. The broker is real, started once per session on free ports and torn
down after: Apache Kafka (KRaft, one node) or the embedded noida-db broker, as
``POLYMON_TEST_BROKER`` says (``kafka`` by default: the engine users deploy). Each test
gets its own topic prefix (and so its own topics and consumer group) on it."""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from streams.codec import Codecs, SchemaCatalog
from streams.console import Consumed, kafka_producer, read_topic, send_all
from streams.devtools.broker import ENGINES, EmbeddedBroker, Engine, make_broker
from streams.devtools.kafka_broker import KafkaCluster
from streams.records import Record
from streams.settings import Settings
from streams.topics import create_topics, load_topic_specs
from streams.worker_process import WorkerError, WorkerProcess

CODECS = Codecs(SchemaCatalog())
SPECS = load_topic_specs()
_prefixes = itertools.count(1)
Broker = EmbeddedBroker | KafkaCluster


def engine_under_test() -> Engine:
    """The broker engine of the integration, e2e and fault tests."""
    engine = os.environ.get("POLYMON_TEST_BROKER", "kafka")
    if engine not in ENGINES:
        raise pytest.UsageError(f"POLYMON_TEST_BROKER must be one of {', '.join(ENGINES)}, "
                                f"got {engine!r}")
    return engine  # type: ignore[return-value]


_BROKERS_STARTED: Counter[str] = Counter()


def describe_broker(broker: Broker) -> str:
    if broker.engine == "kafka":
        nodes = len(broker.nodes)  # type: ignore[union-attr]
        return f"Apache Kafka {broker.version}, {nodes} node{'s' if nodes > 1 else ''}"
    return "embedded noida-db"


def start_test_broker(data_dir: Path, size: int = 1, port: int = 0,
                      engine: Engine | None = None) -> Broker:
    """A started broker of the test engine; Kafka's jars from the repository's cache."""
    started = make_broker(engine or engine_under_test(), data_dir, port=port, size=size,
                          jars_cache=Settings().jars_cache)
    started.start()
    _BROKERS_STARTED[describe_broker(started)] += 1
    return started


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _BROKERS_STARTED:
        started = ", ".join(f"{what} ×{count}" for what, count in _BROKERS_STARTED.items())
        terminalreporter.write_line(
            f"brokers the integration, e2e and fault tests started: {started} (the demo's "
            "end-to-end tests run their own embedded broker)")


def pytest_report_header(config: pytest.Config) -> str:
    engine = engine_under_test()
    if engine == "kafka":
        from streams.devtools.kafka_broker import kafka_version
        return f"broker under test: Apache Kafka {kafka_version()} (POLYMON_TEST_BROKER=kafka)"
    return "broker under test: embedded noida-db (POLYMON_TEST_BROKER=embedded)"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    started = start_test_broker(tmp_path_factory.mktemp("broker"))
    try:
        yield started
    finally:
        started.stop()


@dataclass
class Stack:
    """One test's namespace on the shared broker, and the workers it started."""

    bootstrap: str
    prefix: str
    state_dir: Path
    engine: Engine = "kafka"
    replication: int | None = None  # topics' replication factor; None: the spec's
    security: dict[str, str] = field(default_factory=dict)  # librdkafka's, for a secured broker
    # the workers of one test share it (streams.peer_auth), as a deployment's do
    peer_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    workers: list[WorkerProcess] = field(default_factory=list)
    _producer: Producer | None = None

    def topic(self, name: str) -> str:
        return self.prefix + name

    def create_topics(self) -> dict[str, str]:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, **self.security})
        return create_topics(admin, SPECS, self.prefix, self.replication)

    def env(self) -> dict[str, str]:
        return {"POLYMON_KAFKA_BOOTSTRAP": self.bootstrap, "POLYMON_TOPIC_PREFIX": self.prefix,
                "POLYMON_STATE_DIR": str(self.state_dir), "POLYMON_BROKER_ENGINE": self.engine}

    def send_records(self, topic: str, records: Iterable[Record]) -> int:
        codec = CODECS[SPECS[topic].schema]
        key_field = SPECS[topic].key
        return self.send_raw(topic, [
            (str(getattr(r, key_field)).encode(), codec.encode_record(r)) for r in records
        ])

    def send_raw(self, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
        if self._producer is None:  # one producer per test: creating one costs ~100 ms
            self._producer = kafka_producer(self.bootstrap, **self.security)
        return send_all(self._producer, self.topic(topic), messages)

    def read(self, topic: str, max_messages: int | None = None,
             idle_timeout_s: float = 3.0) -> list[Consumed]:
        return list(read_topic(self.bootstrap, self.topic(topic), True, max_messages,
                               idle_timeout_s, self.security))

    def read_records(self, topic: str, **kwargs: Any) -> list[Any]:
        codec = CODECS[SPECS[topic].schema]
        return [codec.decode_record(m.value) for m in self.read(topic, **kwargs)]

    def start_worker(self, worker_id: str = "worker-1", wait: bool = True,
                     **settings: Any) -> WorkerProcess:
        if self.replication is not None:
            settings.setdefault("replication_factor", self.replication)
        settings.setdefault("peer_secret", self.peer_secret)
        worker = WorkerProcess(self.bootstrap, self.state_dir, worker_id=worker_id,
                               topic_prefix=self.prefix, broker_engine=self.engine,
                               **settings)
        self.workers.append(worker)
        worker.start()
        if wait:
            worker.wait_ready(timeout_s=60)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None  # its threads end with it, not reconnecting to a gone broker


@pytest.fixture
def stack(broker: Broker, tmp_path: Path) -> Iterator[Stack]:
    namespace = Stack(broker.bootstrap, f"t{next(_prefixes)}-{int(time.time())}.", tmp_path,
                      broker.engine)
    try:
        yield namespace
    finally:
        namespace.stop()


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.2,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after timeout.
    A worker answering an error status meanwhile (503 while its group rebalances) counts
    as not yet; the last such answer is in the failure."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except WorkerError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")
