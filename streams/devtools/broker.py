"""The brokers polymon starts itself: the embedded Kafka-protocol broker (noida-db, Kafka
service only: no Java needed, the demo's default) and Apache Kafka in KRaft mode
(streams.devtools.kafka_broker), chosen by engine. A deployment points
``POLYMON_KAFKA_BOOTSTRAP`` at its own cluster instead.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from confluent_kafka.admin import AdminClient

from streams.processes import OwnedProcess, free_port

if TYPE_CHECKING:
    from streams.devtools.kafka_broker import KafkaCluster

Engine = Literal["kafka", "embedded"]
ENGINES: tuple[Engine, ...] = ("kafka", "embedded")


class BrokerError(RuntimeError):
    """A broker did not come up, or cannot be started here (what to do is in the message)."""


def noida_binary() -> Path:
    """The noida-db executable shipped inside its wheel (we run it directly, not via its
    Python wrapper, so that our signals reach the broker itself)."""
    name = "noida-db.exe" if os.name == "nt" else "noida-db"
    try:
        package = files("noida_db")
    except ModuleNotFoundError:
        raise BrokerError("the embedded broker needs the `embedded` extra: "
                          "pip install 'polymon[embedded]' (./dev installs it)") from None
    path = Path(str(package.joinpath(name)))
    if not path.is_file():
        raise BrokerError(f"noida-db binary not found at {path}: is noida-db installed?")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def wait_for_kafka(bootstrap: str, timeout_s: float = 30.0,
                   process: subprocess.Popen[bytes] | None = None,
                   security: Mapping[str, str] | None = None) -> None:
    """Block until ``bootstrap`` answers a metadata request."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000,
                         "log_level": 0, **(security or {})})
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"broker exited with code {process.returncode} before it answered")
        try:
            admin.list_topics(timeout=1.0)
            return
        except Exception as exc:  # KafkaException while the port is not up yet
            last_error = exc
            time.sleep(0.1)
    raise BrokerError(f"no Kafka metadata answer from {bootstrap} in {timeout_s}s: {last_error}")


class EmbeddedBroker(OwnedProcess):
    """A noida-db Kafka broker as a child process on ``host:port`` (free port if 0)."""

    engine: Engine = "embedded"
    version = "noida-db"
    stop_timeout_s = 10.0

    def __init__(self, data_dir: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    def start(self, timeout_s: float = 30.0) -> EmbeddedBroker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(noida_binary()), "start", "--data-dir", str(self.data_dir), "--only", "kafka",
            "--host", self.host, "--kafka-port", str(self.port),
        ]
        self.spawn(command)
        try:
            wait_for_kafka(self.bootstrap, timeout_s, self.process)
        except BrokerError as exc:
            self.stop()
            raise BrokerError(f"{exc}\n--- {self.log_path} ---\n{self.log_tail(2000)}") from exc
        return self

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def make_broker(engine: Engine, data_dir: Path, port: int = 0, host: str = "127.0.0.1",
                jars_cache: Path | None = None, size: int = 1) -> EmbeddedBroker | KafkaCluster:
    """A broker of ``engine``, not started: ``size`` nodes for Apache Kafka (the embedded
    broker is one process)."""
    if engine == "embedded":
        if size != 1:
            raise BrokerError("the embedded broker runs one node; a cluster needs "
                              "--engine kafka")
        return EmbeddedBroker(data_dir, port=port, host=host)
    if engine == "kafka":
        from streams.devtools.kafka_broker import KafkaCluster

        return KafkaCluster(data_dir, size=size, port=port, host=host, jars_cache=jars_cache)
    raise BrokerError(f"unknown broker engine {engine!r}: expected one of {', '.join(ENGINES)}")
