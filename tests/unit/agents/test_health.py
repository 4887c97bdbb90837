"""The health agent's per-event reads of settings give what the settings say."""

from __future__ import annotations

import pytest

from streams.agents import health
from streams.settings import Settings

SCOPES = ("market:m1", "bot:b1/market:m1", "bot:b2", "model:pricer")
FEEDS = ("book", "registry", "model", "other")


@pytest.mark.parametrize("overrides", [
    {},
    {"market": {"book": 0.5}, "bot:b2": {"registry": 7.0}},
])
def test_threshold_lookup_answers_as_the_settings_do(monkeypatch: pytest.MonkeyPatch,
                                                     overrides: dict) -> None:
    settings = Settings(staleness_thresholds_s={"book": 2.0, "registry": 30.0, "default": 9.0},
                        staleness_overrides_s=overrides)
    monkeypatch.setattr(health, "settings", settings)
    lookup = health.threshold_lookup()
    for _ in range(2):  # the second time from whatever it keeps
        for scope in SCOPES:
            for feed in FEEDS:
                assert lookup(scope, feed) == settings.staleness_threshold_s(scope, feed)
    if overrides:
        assert lookup("bot:b1/market:m1", "book") == 0.5
        assert lookup("bot:b2", "registry") == 7.0
    assert lookup("bot:b2", "other") == 9.0
