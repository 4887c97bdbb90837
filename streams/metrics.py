"""Prometheus metrics of one worker, on their own CollectorRegistry (so tests and
several apps in one process never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events_processed = Counter(
            "polymon_events_processed_total", "Input events decoded, validated and processed",
            ["topic"], registry=self.registry,
        )
        self.dead_letters = Counter(
            "polymon_dead_letters_total", "Input messages sent to the dead-letter topic",
            ["topic", "stage"], registry=self.registry,
        )
        self.worker_up = Gauge(
            "polymon_worker_up", "1 while this worker runs", registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
