from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.settings import Settings


def test_env_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYMON_KAFKA_BOOTSTRAP", "k1:9092,k2:9093")
    monkeypatch.setenv("POLYMON_TOPIC_PREFIX", "replay-1.")
    monkeypatch.setenv("POLYMON_STALENESS_THRESHOLDS_S", '{"book": 1.5}')
    settings = Settings()
    assert settings.kafka_bootstrap == "k1:9092,k2:9093"
    assert settings.topic("health.events") == "replay-1.health.events"
    assert settings.group_id == "replay-1.polymon"
    assert settings.staleness_thresholds_s == {"book": 1.5}


def test_bad_bootstrap_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYMON_KAFKA_BOOTSTRAP", "localhost")
    with pytest.raises(ValidationError, match="host:port"):
        Settings()


def test_config_version_changes_with_decisive_settings() -> None:
    assert Settings().config_version == Settings(worker_id="other").config_version
    changed = Settings(staleness_thresholds_s={"book": 3.0})
    assert changed.config_version != Settings().config_version


PEER_SECRET = "p" * 32


def test_embedded_broker_workarounds_are_off_on_kafka_by_default() -> None:
    kafka = Settings()
    assert kafka.broker_engine == "kafka"
    assert not kafka.evicts_dead_members and not kafka.embedded_broker_workarounds
    embedded = Settings(broker_engine="embedded", peer_secret=PEER_SECRET)
    assert embedded.evicts_dead_members and embedded.embedded_broker_workarounds


def test_eviction_set_explicitly_wins_over_the_engine() -> None:
    assert not Settings(broker_engine="embedded", evict_dead_members=False,
                        peer_secret=PEER_SECRET).evicts_dead_members
    assert Settings(broker_engine="kafka", evict_dead_members=True,
                    peer_secret=PEER_SECRET).evicts_dead_members


def test_no_eviction_and_no_read_tokens_without_a_peer_secret() -> None:
    # a member proves its id to signed probes only: unsigned, every peer would look dead
    assert not Settings(broker_engine="embedded").evicts_dead_members
    with pytest.raises(ValidationError, match="evict_dead_members needs peer_secret"):
        Settings(evict_dead_members=True)
    with pytest.raises(ValidationError, match="api_read_requires_token needs peer_secret"):
        Settings(api_read_requires_token=True)
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(peer_secret="short")


def test_unknown_broker_engine_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYMON_BROKER_ENGINE", "redpanda")
    with pytest.raises(ValidationError, match="broker_engine"):
        Settings()
