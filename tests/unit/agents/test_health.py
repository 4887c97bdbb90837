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


def test_a_page_burn_goes_to_every_endangered_scope_keyed_by_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-keyed by the endangered scope (its latch's partition), as the burn alert's
    envelope with that scope and the alert's id; a ticket burn and the probe's own scope
    are not sent."""
    from streams.app import codecs
    from streams.control.alerts import AlertTransition, Condition
    from streams.records import AlertStatus

    sent: list[tuple[object, bytes, bytes]] = []
    monkeypatch.setattr(health, "enqueue", lambda topic, key, value: sent.append(
        (topic, key, value)))

    def burn(code: str, alert_id: str) -> AlertTransition:
        condition = Condition(scope="feed:ingest", subject="ingest", reason_code=code,
                              firing=True, metric="burn_rate", value=1.12, threshold=1.1,
                              window_s=3600.0, cause="c", event_time_ms=1_000,
                              message="SLO ingest (owner data-eng)")
        return AlertTransition(alert_id, AlertStatus.FIRING, condition, alert_id)

    health._forward_burns([burn("GOV_SLO_BURN_TICKET", "t1"), burn("GOV_SLO_BURN", "p1")],
                          ("global", "market:m1", "feed:ingest"), "feed:ingest", 2_000)
    assert [(topic, key) for topic, key, _ in sent] == [
        (health.slo_endangered, b"global"), (health.slo_endangered, b"market:m1")]
    envelope = codecs["ReportEnvelope"].decode_record(sent[0][2])
    assert (envelope.scope, envelope.reason_code, envelope.envelope_id) == (
        "global", "GOV_SLO_BURN", "p1")
    assert envelope.payload.status is AlertStatus.FIRING and envelope.payload.value == 1.12
    assert "endangers global" in envelope.payload.message
