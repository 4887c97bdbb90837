"""The Kafka node's configuration and the errors that say what to install; starting real
nodes is the integration and fault suites' job (tests/conftest.py, tests/faults)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from streams.devtools.broker import BrokerError, EmbeddedBroker, make_broker
from streams.devtools.kafka_broker import (
    POM,
    KafkaCluster,
    KafkaNode,
    kafka_jars,
    kafka_version,
    random_cluster_id,
    require_java,
)


def test_the_pinned_version_comes_from_the_pom() -> None:
    version = kafka_version()
    assert version.split(".")[0] == "4"
    assert f"<kafka.version>{version}</kafka.version>" in POM.read_text()


def test_a_pom_without_a_version_is_a_clear_error(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project></project>")
    with pytest.raises(BrokerError, match=r"declares no <kafka\.version>"):
        kafka_version(pom)


def test_cluster_ids_are_16_random_bytes_in_url_safe_base64() -> None:
    ids = {random_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    for cluster_id in ids:
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    # one in 64 would start with '-', which the storage tool's parser takes for an option
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]


def _config(node: KafkaNode) -> dict[str, str]:
    lines = node.config_path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_a_three_node_cluster_replicates_three_ways_with_two_in_sync(tmp_path: Path) -> None:
    node = KafkaNode(2, "127.0.0.1", 19092, 19093, tmp_path / "n2", tmp_path / "libs")
    node.write_config("1@127.0.0.1:1,2@127.0.0.1:19093,3@127.0.0.1:3", replication=3)
    config = _config(node)
    assert config["node.id"] == "2" and config["process.roles"] == "broker,controller"
    assert config["listeners"] == ("PLAINTEXT://127.0.0.1:19092,"
                                   "CONTROLLER://127.0.0.1:19093")
    assert config["default.replication.factor"] == "3"
    assert config["min.insync.replicas"] == "2"
    assert config["offsets.topic.replication.factor"] == "3"
    assert config["unclean.leader.election.enable"] == "false"
    assert config["auto.create.topics.enable"] == "false"  # as docker-compose.yml


def test_a_single_node_replicates_once(tmp_path: Path) -> None:
    node = KafkaNode(1, "127.0.0.1", 19092, 19093, tmp_path / "n1", tmp_path / "libs")
    node.write_config("1@127.0.0.1:19093", replication=1)
    config = _config(node)
    assert config["min.insync.replicas"] == "1" and config["default.replication.factor"] == "1"


def test_missing_java_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BrokerError, match=r"java.*not on PATH.*OpenJDK 17.*--engine embedded"):
        require_java()


def test_missing_maven_without_cached_jars_names_what_to_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BrokerError, match=r"not cached.*`mvn` is not on PATH"):
        kafka_jars(tmp_path / "cache")


def test_cached_jars_need_no_maven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    libs = tmp_path / "cache" / f"kafka-{kafka_version()}" / "libs"
    libs.mkdir(parents=True)
    (libs / ".complete").write_text(kafka_version())
    monkeypatch.setenv("PATH", "/nonexistent")
    assert kafka_jars(tmp_path / "cache") == libs


def test_make_broker_by_engine(tmp_path: Path) -> None:
    assert isinstance(make_broker("embedded", tmp_path), EmbeddedBroker)
    cluster = make_broker("kafka", tmp_path, size=3)
    assert isinstance(cluster, KafkaCluster) and cluster.size == 3
    with pytest.raises(BrokerError, match="embedded broker runs one node"):
        make_broker("embedded", tmp_path, size=3)
    with pytest.raises(BrokerError, match="unknown broker engine"):
        make_broker("redpanda", tmp_path)  # type: ignore[arg-type]
