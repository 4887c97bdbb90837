"""`polymon demo`: the whole stack on this machine, fed a synthetic stream.

Brings up the embedded broker on a free port, creates the topics, starts a worker,
feeds synthetic health events (with a few garbage messages among them), and shows
what the worker made of them. Stops everything it started.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from streams.broker import EmbeddedBroker
from streams.codec import Codecs, SchemaCatalog
from streams.console import kafka_producer, read_topic, send_all
from streams.devstack import WorkerProcess
from streams.settings import Settings
from streams.synthetic import garbage, health_events
from streams.topics import admin_client, create_topics, load_topic_specs


def run_demo(events: int, keep_running: bool, console: Console) -> int:
    settings = Settings()
    state = Path(settings.state_dir) / "demo"
    shutil.rmtree(state, ignore_errors=True)
    codecs = Codecs(SchemaCatalog())
    broker = EmbeddedBroker(state / "broker")
    worker: WorkerProcess | None = None
    try:
        with console.status("starting the embedded Kafka broker"):
            broker.start()
        console.print(f"[green]✓[/green] broker at {broker.bootstrap}")
        outcome = create_topics(admin_client(broker.bootstrap), load_topic_specs())
        console.print(f"[green]✓[/green] {len(outcome)} topics created")
        worker = WorkerProcess(broker.bootstrap, state, worker_id="demo-worker-1")
        with console.status("starting a polymon worker"):
            worker.start().wait_ready()
        console.print(f"[green]✓[/green] worker ready: {worker.url}/api/scopes  "
                      f"metrics: {worker.url}/metrics")

        now_ms = int(time.time() * 1000)
        records = list(health_events(events, start_ms=now_ms - events * 50, seed=1))
        codec = codecs["HealthEvent"]
        bad = list(garbage(5))
        messages = [(r.scope.encode(), codec.encode_record(r)) for r in records]
        messages += [(b"market:m0", value) for value in bad]
        send_all(kafka_producer(broker.bootstrap), "health.events", messages)
        console.print(f"[green]✓[/green] sent {len(records)} health events "
                      f"and {len(bad)} garbage messages")

        with console.status("waiting for the worker to process them"):
            scopes = _wait_for_events(worker, len(records), timeout_s=30)
        table = Table(title="what the worker saw, per scope")
        for column in ("scope", "events", "last kind", "last sequence", "source"):
            table.add_column(column)
        for scope, summary in sorted(scopes.items()):
            table.add_row(scope, str(summary["events"]), summary["last_kind"],
                          str(summary["last_sequence"]), summary["source"])
        console.print(table)
        dead = list(read_topic(broker.bootstrap, "monitor.deadletter", max_messages=len(bad),
                               idle_timeout_s=5))
        console.print(f"dead-lettered: {len(dead)} of {len(bad)} garbage messages "
                      f"(topic monitor.deadletter)")
        processed = sum(s["events"] for s in scopes.values())
        ok = processed == len(records) and len(dead) == len(bad)
        console.print("[green]demo OK[/green]" if ok else "[red]demo found a problem[/red]")
        if keep_running:
            console.print(f"stack stays up (export POLYMON_KAFKA_BOOTSTRAP={broker.bootstrap});"
                          " Ctrl-C stops it")
            while worker.exit_code is None:
                time.sleep(0.5)
        return 0 if ok else 1
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    finally:
        with console.status("stopping what the demo started"):
            if worker is not None:
                worker.stop()
            broker.stop()


def _wait_for_events(worker: WorkerProcess, expected: int, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    scopes: dict = {}
    while time.monotonic() < deadline:
        scopes = worker.get("/api/scopes")["scopes"]
        if sum(s["events"] for s in scopes.values()) >= expected:
            break
        time.sleep(0.2)
    return scopes
