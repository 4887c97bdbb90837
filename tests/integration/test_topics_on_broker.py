"""Topic bootstrap against the real broker: create is idempotent, check finds drift,
and a worker refuses to start on drift."""

from __future__ import annotations

import subprocess
import sys

import pytest
from confluent_kafka.admin import NewTopic

from streams.topics import admin_client, check_topics, load_topic_specs
from tests.conftest import Stack

pytestmark = pytest.mark.integration
SPECS = load_topic_specs()


def _polymon(stack: Stack, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, **stack.env()}
    return subprocess.run([sys.executable, "-m", "streams", *args], env=env, timeout=timeout,
                          capture_output=True, text=True)


def test_create_twice_is_a_no_op_the_second_time(stack: Stack) -> None:
    first = _polymon(stack, "topics", "create")
    assert first.returncode == 0, first.stderr
    assert f"{len(SPECS)} created, 0 already existed" in first.stdout
    second = _polymon(stack, "topics", "create")
    assert second.returncode == 0, second.stderr
    assert f"0 created, {len(SPECS)} already existed" in second.stdout
    assert check_topics(admin_client(stack.bootstrap), SPECS, stack.prefix) == []
    assert _polymon(stack, "topics", "check").returncode == 0


def test_compacted_topics_are_created_compacted(stack: Stack) -> None:
    from confluent_kafka.admin import ConfigResource

    stack.create_topics()
    admin = admin_client(stack.bootstrap)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, stack.topic(s.name))
                 for s in SPECS.values()]
    for resource, future in admin.describe_configs(resources).items():
        policy = future.result()["cleanup.policy"].value
        assert policy == SPECS[resource.name.removeprefix(stack.prefix)].cleanup, resource.name


def test_check_names_a_missing_topic_and_a_wrong_partition_count(stack: Stack) -> None:
    admin = admin_client(stack.bootstrap)
    wrong = stack.topic("exec.fills")
    admin.create_topics([NewTopic(wrong, num_partitions=1, replication_factor=1)])[wrong].result()
    stack.create_topics()  # exec.fills exists already, so it keeps its 1 partition
    admin.delete_topics([stack.topic("model.scores")])[stack.topic("model.scores")].result()

    result = _polymon(stack, "topics", "check")
    assert result.returncode == 1
    assert f"{stack.topic('exec.fills')}: has 1 partitions, spec says 4" in result.stderr
    assert f"{stack.topic('model.scores')}: missing" in result.stderr


def test_worker_refuses_to_start_when_topics_are_missing(stack: Stack) -> None:
    result = _polymon(stack, "worker", timeout=60)
    assert result.returncode == 2
    assert "do not match the spec" in result.stderr
    assert f"{stack.topic('health.events')}: missing" in result.stderr
