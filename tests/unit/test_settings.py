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
