"""Runtime settings, from the environment (``POLYMON_*``) with sane defaults.

Everything a deployment changes lives here; nothing else reads os.environ.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """polymon's settings. Each field is read from ``POLYMON_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="POLYMON_", extra="ignore")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    topic_prefix: str = Field(
        "", description="put in front of every topic name and the consumer group (replay uses one)"
    )
    app_id: str = Field("polymon", description="Faust app id: the consumer group")
    worker_id: str = Field(default_factory=_default_worker_id)
    web_host: str = Field("127.0.0.1", description="address the worker's HTTP server binds")
    web_port: int = Field(6066, ge=0, le=65535, description="worker HTTP port (API, /metrics)")
    state_dir: Path = Field(Path(".state"), description="local state: broker data, worker dirs")
    replication_factor: int = Field(1, ge=1, description="replication factor for created topics")
    schema_registry_url: str | None = Field(
        None, description="Confluent Schema Registry URL; unset: ids from schemas/registry.json"
    )
    shutdown_timeout_s: float = Field(
        10.0, gt=0, description="a stopping worker is force-exited after this long"
    )
    monitor_heartbeat_interval_s: float = Field(
        1.0, gt=0, description="how often a worker publishes its own liveness"
    )
    log_level: str = Field("info")
    staleness_thresholds_s: dict[str, float] = Field(
        default_factory=lambda: {"book": 2.0, "registry": 10.0, "model": 86400.0},
        description="staleness threshold per feed kind, seconds",
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {value!r}")
        return value

    @property
    def group_id(self) -> str:
        return f"{self.topic_prefix}{self.app_id}"

    def topic(self, name: str) -> str:
        """The topic name as it exists on the broker (prefix applied)."""
        return f"{self.topic_prefix}{name}"

    @property
    def config_version(self) -> str:
        """Short hash of the settings that shape decisions, stamped on every envelope."""
        decisive = self.model_dump(mode="json", exclude={"worker_id", "web_host", "web_port"})
        digest = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()
        return digest[:12]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
