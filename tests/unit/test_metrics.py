"""The worker's metrics: its own registry per instance; a scrape can name the series."""

from __future__ import annotations

from streams.metrics import Metrics


def test_a_scrape_by_name_returns_only_those_series() -> None:
    metrics = Metrics()  # its own CollectorRegistry: nothing shared between tests
    metrics.events_processed.labels("health.events").inc(3)
    metrics.dead_letters.labels("health.events", "DECODE").inc()
    metrics.feed_staleness.labels("market", "book").set(1.5)

    everything = metrics.render().decode()
    named = metrics.render(["polymon_events_processed_total"]).decode()

    assert 'polymon_events_processed_total{topic="health.events"} 3.0' in named
    assert "polymon_dead_letters_total" not in named
    assert "polymon_feed_staleness_seconds" not in named
    assert 'polymon_feed_staleness_seconds{feed="book",scope_kind="market"} 1.5' in everything


def test_the_live_series_are_registered_names() -> None:
    metrics = Metrics()
    text = metrics.render(sorted(Metrics.LIVE_SERIES)).decode()
    assert "polymon_worker_up" in text
