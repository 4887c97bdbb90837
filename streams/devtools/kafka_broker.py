"""Apache Kafka in KRaft mode as child JVMs: one node, or a cluster of three on this machine.

The jars come from Maven Central through ``ops/kafka/pom.xml`` (one pinned version) and are
cached under the state dir, so only the first start needs the network. Every node is a
combined broker and controller; a cluster's nodes form one controller quorum. A node is
stopped by PID: SIGTERM (a controlled shutdown), then SIGKILL after a bounded wait.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from streams.devtools.broker import BrokerError, wait_for_kafka
from streams.processes import OwnedProcess, die_with_parent, free_port

POM = Path(__file__).resolve().parents[2] / "ops" / "kafka" / "pom.xml"

# Sized for a 2-core machine that also runs the workers under test: a small heap, one GC
# thread and few compiler threads per JVM; three nodes fit in well under 2 GiB.
JVM_OPTIONS = ("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:ParallelGCThreads=1",
               "-XX:ConcGCThreads=1", "-XX:CICompilerCount=2", "-XX:+ExitOnOutOfMemoryError",
               "-Djava.awt.headless=true")
SINGLE_NODE_HEAP = ("-Xms256m", "-Xmx1g")
CLUSTER_NODE_HEAP = ("-Xms128m", "-Xmx512m")

LOG4J2 = """\
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.kafkaorg.name = org.apache.kafka
logger.kafkaorg.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def kafka_version(pom: Path = POM) -> str:
    """The pinned Kafka version: ``kafka.version`` in the pom."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text())
    if match is None:
        raise BrokerError(f"{pom} declares no <kafka.version>")
    return match.group(1).strip()


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BrokerError("Apache Kafka needs a Java runtime (17 or newer) and `java` is not "
                          "on PATH: install OpenJDK 17 (apt-get install openjdk-17-jre-headless)"
                          ", or use the embedded broker (--engine embedded)")
    return java


def kafka_jars(cache_dir: Path, pom: Path = POM, quiet: bool = True) -> Path:
    """The directory holding the pinned Kafka's jars, resolved by Maven on first use and
    reused after (no network). Raises BrokerError with what to do when it cannot."""
    version = kafka_version(pom)
    libs = cache_dir.resolve() / f"kafka-{version}" / "libs"
    complete = libs / ".complete"
    if complete.is_file():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(f"Kafka {version}'s jars are not cached in {libs} and `mvn` is not "
                          "on PATH to fetch them: install Maven (apt-get install maven) once")
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = [mvn, "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={partial}", "-DincludeScope=runtime"]
    if quiet:
        command.insert(2, "-q")
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=quiet, text=True,
                            preexec_fn=die_with_parent, check=False)
    if result.returncode != 0:
        detail = (result.stdout or "")[-3000:] if quiet else ""
        raise BrokerError(f"Maven could not resolve Kafka {version} from {pom} "
                          f"(exit {result.returncode}):\n{detail}")
    if not any(partial.glob("kafka_2.13-*.jar")):
        raise BrokerError(f"Maven resolved no kafka_2.13 jar into {partial}")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    complete.write_text(version + "\n")
    return libs


SCRAM_MECHANISM = "SCRAM-SHA-512"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@dataclass(frozen=True)
class SaslUsers:
    """A secured cluster: clients authenticate with SASL/SCRAM-SHA-512 on the client
    listener and the StandardAuthorizer allows only what ACLs grant. ``admin`` is the super
    user (inter-broker traffic and the harness's own admin client); every user's SCRAM
    credential is written into the metadata when the storage is formatted."""

    passwords: dict[str, str]  # user name -> password
    admin: str = "admin"

    def __post_init__(self) -> None:
        if self.admin not in self.passwords:
            raise BrokerError(f"the admin user {self.admin!r} needs a password")
        for name, password in self.passwords.items():
            # the storage tool's --add-scram syntax and the JAAS line quote neither
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or not re.fullmatch(
                    r"[A-Za-z0-9_.-]{8,128}", password):
                raise BrokerError(f"SASL user {name!r}: names and passwords are letters, "
                                  "digits, '_', '.', '-' (passwords of 8 or more)")

    def client_config(self, user: str) -> dict[str, str]:
        """librdkafka's security keys for ``user``."""
        return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": SCRAM_MECHANISM,
                "sasl.username": user, "sasl.password": self.passwords[user]}

    def env(self, user: str) -> dict[str, str]:
        """polymon's settings for ``user`` (POLYMON_KAFKA_*)."""
        return {"POLYMON_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "POLYMON_KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
                "POLYMON_KAFKA_SASL_USERNAME": user,
                "POLYMON_KAFKA_SASL_PASSWORD": self.passwords[user]}


def random_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 (``kafka-storage random-uuid``),
    never starting with '-', which the storage tool would read as an option (Kafka's own
    Uuid.randomUuid draws again for the same reason)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class KafkaNode(OwnedProcess):
    """One KRaft node (broker and controller in one JVM) of a cluster."""

    node_id: int
    host: str
    port: int
    controller_port: int
    data_dir: Path
    libs: Path
    heap: Sequence[str] = SINGLE_NODE_HEAP
    sasl: SaslUsers | None = field(default=None, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # Kafka's controlled shutdown moves leadership away first: give it time
    stop_timeout_s: float = 20.0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    def write_config(self, voters: str, replication: int) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        min_isr = min(2, replication)
        properties = {
            "process.roles": "broker,controller",
            "node.id": self.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{self.host}:{self.port},"
                         f"CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": self.data_dir / "logs",
            "num.partitions": 1,
            "default.replication.factor": replication,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replication,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_isr,
            "unclean.leader.election.enable": "false",
            # as docker-compose.yml: topics come from the spec, never from a typo'd name
            "auto.create.topics.enable": "false",
            # a local broker for development and tests: groups form at once, and tests may
            # use session timeouts shorter than production's 6 s floor
            "group.initial.rebalance.delay.ms": 0,
            "group.min.session.timeout.ms": 2000,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "background.threads": 4,
            "log.cleaner.threads": 1,
            "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
        }
        if self.sasl is not None:
            properties.update(self._sasl_properties(self.sasl))
        self.config_path.write_text(
            "".join(f"{key}={value}\n" for key, value in properties.items()))
        (self.data_dir / "log4j2.properties").write_text(LOG4J2)

    def _sasl_properties(self, sasl: SaslUsers) -> dict[str, str]:
        """Clients and brokers on SASL_PLAINTEXT with SCRAM; the controller listener stays
        PLAINTEXT on loopback (KRaft controllers cannot use SCRAM, whose credentials live
        in the metadata they serve), its ANONYMOUS principal a super user as Kafka's KRaft
        docs show. A production cluster puts the controllers on SASL_SSL with PLAIN or
        mTLS instead (docs/operator-guide.md, Security)."""
        jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
                f'username="{sasl.admin}" password="{sasl.passwords[sasl.admin]}";')
        return {
            "listeners": f"SASL_PLAINTEXT://{self.host}:{self.port},"
                         f"CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://{self.host}:{self.port}",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map":
                "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": jaas,
            "authorizer.class.name": AUTHORIZER,
            "super.users": f"User:{sasl.admin};User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
        }

    def _java(self, main: str, *args: str) -> list[str]:
        return [require_java(), *self.heap, *JVM_OPTIONS,
                f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.data_dir}", "-cp", f"{self.libs}/*", main, *args]

    def format(self, cluster_id: str) -> None:
        """Format the node's storage once (a restart keeps its data)."""
        if (self.data_dir / "logs" / "meta.properties").is_file():
            return
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id,
                       "-c", str(self.config_path), "--ignore-formatted", *self._scram_args()),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
            preexec_fn=die_with_parent)
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-2000:]
            raise BrokerError(f"formatting Kafka node {self.node_id}'s storage failed "
                              f"(exit {result.returncode}):\n{output}")

    def _scram_args(self) -> list[str]:
        if self.sasl is None:
            return []
        return [argument for name, password in self.sasl.passwords.items() for argument in
                ("--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]")]

    def start(self) -> KafkaNode:
        self.spawn(self._java("kafka.Kafka", str(self.config_path)))
        return self


class KafkaCluster:
    """``size`` KRaft nodes on this machine, on free ports (or ``port`` for the first
    node's client listener), with replication factor ``size`` and min.insync.replicas 2
    when there are at least three."""

    engine = "kafka"

    def __init__(self, data_dir: Path, size: int = 1, port: int = 0, host: str = "127.0.0.1",
                 jars_cache: Path | None = None, sasl: SaslUsers | None = None) -> None:
        if size < 1:
            raise BrokerError(f"a cluster needs at least one node, got {size}")
        self.data_dir = Path(data_dir)
        self.host = host
        self.size = size
        self.version = kafka_version()
        self.jars_cache = Path(jars_cache) if jars_cache else self.data_dir / "jars"
        self._first_port = port
        self.nodes: list[KafkaNode] = []
        self.cluster_id_path = self.data_dir / "cluster.id"
        self.sasl = sasl

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def running(self) -> bool:
        return bool(self.nodes) and all(node.running for node in self.nodes)

    def _layout(self) -> None:
        require_java()
        libs = kafka_jars(self.jars_cache)
        heap = SINGLE_NODE_HEAP if self.size == 1 else CLUSTER_NODE_HEAP
        self.nodes = [
            KafkaNode(node_id=index + 1, host=self.host,
                      port=(self._first_port if index == 0 and self._first_port
                            else free_port(self.host)),
                      controller_port=free_port(self.host),
                      data_dir=self.data_dir / f"node-{index + 1}", libs=libs, heap=heap,
                      sasl=self.sasl)
            for index in range(self.size)
        ]
        voters = ",".join(f"{node.node_id}@{node.host}:{node.controller_port}"
                          for node in self.nodes)
        for node in self.nodes:
            node.write_config(voters, replication=min(self.size, 3))

    def start(self, timeout_s: float = 90.0) -> KafkaCluster:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.nodes:
            self._layout()
        if not self.cluster_id_path.is_file():
            self.cluster_id_path.write_text(random_cluster_id())
        cluster_id = self.cluster_id_path.read_text().strip()
        try:
            for node in self.nodes:
                node.format(cluster_id)
            for node in self.nodes:
                if not node.running:
                    node.start()
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until every running node answers and the metadata lists every one of them."""
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                wait_for_kafka(node.bootstrap, max(1.0, deadline - time.monotonic()),
                               node.process, self.security(self.sasl.admin)
                               if self.sasl else None)
            except BrokerError as exc:
                raise BrokerError(f"Kafka node {node.node_id}: {exc}\n--- {node.log_path} "
                                  f"---\n{node.log_tail()}") from exc
        wanted = {node.node_id for node in self.nodes if node.running}
        admin = self.admin()
        seen: set[int] = set()
        while time.monotonic() < deadline:
            try:
                seen = set(admin.list_topics(timeout=2).brokers)
            except Exception:  # KafkaException while the quorum forms
                seen = set()
            if wanted <= seen:
                return
            time.sleep(0.2)
        raise BrokerError(f"Kafka cluster: nodes {sorted(wanted - seen)} not registered "
                          f"after {timeout_s}s")

    def admin(self) -> AdminClient:
        security = self.security(self.sasl.admin) if self.sasl else {}
        return AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 3000,
                            "log_level": 0, **security})

    def security(self, user: str) -> dict[str, str]:
        """librdkafka's security keys for ``user`` of a secured cluster."""
        if self.sasl is None:
            raise BrokerError("this cluster has no SASL users")
        return self.sasl.client_config(user)

    def node(self, node_id: int) -> KafkaNode:
        return next(node for node in self.nodes if node.node_id == node_id)

    def leader_of(self, topic: str, partition: int = 0) -> int:
        """The node id leading ``topic``'s ``partition`` now (-1: none)."""
        metadata = self.admin().list_topics(topic, timeout=5)
        return int(metadata.topics[topic].partitions[partition].leader)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Every node, by PID: SIGTERM to all at once (a node waiting on a quorum that is
        going away must not hold the others up), then SIGKILL to any still running."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            if node.process is not None:
                node.stop(max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

