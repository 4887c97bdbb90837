"""The topic spec (ops/topics.toml) and the admin operations on it: create, check.

Nothing relies on broker auto-create: `polymon topics create` makes every topic from
the spec, and a worker refuses to start while `check` finds drift.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streams.kafka_security import librdkafka_config

if TYPE_CHECKING:
    from streams.settings import Settings

SPEC_PATH = Path(__file__).resolve().parent / "topics.toml"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    schema: str
    cleanup: str
    partitions: int
    replication_factor: int
    about: str
    # polymon's own plumbing (not a contract with other services): not in the
    # ARCHITECTURE topic table, documented in the README instead
    internal: bool = False
    # consumed from other services (bots, feeds, the operator API), never written by
    # the workers' own decisions
    input: bool = False

    @property
    def compacted(self) -> bool:
        return self.cleanup == "compact"


def load_topic_specs(path: Path = SPEC_PATH,
                     partitions: int | None = None) -> dict[str, TopicSpec]:
    """The spec by default topic name, in declaration order. ``partitions`` overrides
    every count (POLYMON_PARTITIONS; replay uses 1 for a total event-time order)."""
    raw = tomllib.loads(path.read_text())
    defaults = raw.get("defaults", {})
    specs: dict[str, TopicSpec] = {}
    for entry in raw["topic"]:
        spec = TopicSpec(
            name=entry["name"],
            key=entry["key"],
            schema=entry["schema"],
            cleanup=entry["cleanup"],
            partitions=partitions or int(entry.get("partitions", defaults["partitions"])),
            replication_factor=int(
                entry.get("replication_factor", defaults["replication_factor"])
            ),
            about=entry.get("about", ""),
            internal=bool(entry.get("internal", False)),
            input=bool(entry.get("input", False)),
        )
        if spec.cleanup not in {"delete", "compact"}:
            raise ValueError(f"{path}: topic {spec.name}: cleanup must be delete or compact")
        specs[spec.name] = spec
    return specs


@dataclass(frozen=True)
class TopicDrift:
    topic: str
    problem: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.problem}"


def admin_client(bootstrap: str, settings: Settings | None = None) -> AdminClient:
    return AdminClient({**librdkafka_config(bootstrap, settings), "socket.timeout.ms": 10000})


def create_topics(
    admin: AdminClient,
    specs: dict[str, TopicSpec],
    prefix: str = "",
    replication_factor: int | None = None,
    timeout_s: float = 15.0,
) -> dict[str, str]:
    """Create every missing topic; returns {topic: 'created' | 'exists'}. Idempotent."""
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    outcome: dict[str, str] = {}
    to_create = []
    for spec in specs.values():
        name = prefix + spec.name
        if name in existing:
            outcome[name] = "exists"
            continue
        to_create.append(
            NewTopic(
                name,
                num_partitions=spec.partitions,
                replication_factor=replication_factor or spec.replication_factor,
                config={"cleanup.policy": spec.cleanup},
            )
        )
    if to_create:
        for name, future in admin.create_topics(to_create, request_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
                outcome[name] = "created"
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                outcome[name] = "exists"  # another process created it meanwhile
    return outcome


def check_topics(
    admin: AdminClient, specs: dict[str, TopicSpec], prefix: str = "", timeout_s: float = 15.0
) -> list[TopicDrift]:
    """Every difference between the broker and the spec: missing, partitions, cleanup."""
    metadata = admin.list_topics(timeout=timeout_s).topics
    drift: list[TopicDrift] = []
    present = []
    for spec in specs.values():
        name = prefix + spec.name
        topic = metadata.get(name)
        if topic is None or topic.error is not None:
            drift.append(TopicDrift(name, "missing (run `polymon topics create`)"))
            continue
        present.append((name, spec))
        if len(topic.partitions) != spec.partitions:
            drift.append(TopicDrift(
                name, f"has {len(topic.partitions)} partitions, spec says {spec.partitions}"
            ))
    if present:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name, _ in present]
        futures = admin.describe_configs(resources, request_timeout=timeout_s)
        wanted = dict(present)
        for resource, future in futures.items():
            configs = future.result(timeout=timeout_s)
            cleanup = configs.get("cleanup.policy")
            spec = wanted[resource.name]
            if cleanup is not None and cleanup.value != spec.cleanup:
                drift.append(TopicDrift(
                    resource.name,
                    f"cleanup.policy is {cleanup.value}, spec says {spec.cleanup}",
                ))
    return drift
