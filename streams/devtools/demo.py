"""`polymon demo`: the whole stack on this machine, fed a synthetic trading system that
injects scripted faults, with live progress and a summary of what was detected when.

Brings up the embedded broker on a free port, creates the topics, starts one or two
workers, then runs a synthetic trading system (bots, markets, order books, heartbeats,
fills, model features and scores for a baseline and a canary model) for ``duration``
seconds. Faults are injected at fixed fractions of the run; each must be detected
(its alert on monitor.alerts). Ctrl-C stops everything the demo started.
"""

from __future__ import annotations

import json
import random
import secrets
import shutil
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams.codec import Codecs, SchemaCatalog
from streams.console import kafka_producer, read_topic, send_all
from streams.devtools.broker import EmbeddedBroker
from streams.devtools.synthetic import garbage
from streams.records import (
    AlertPayload,
    AlertStatus,
    Cohort,
    FeatureHistogram,
    FeatureProfile,
    FeatureSample,
    FillEvent,
    FillKind,
    HealthEvent,
    HealthEventKind,
    ModelScore,
    OpsAction,
    OpsCommand,
    PauseState,
    Record,
    ReportEnvelope,
    RolloutState,
)
from streams.runner import PauseGuard
from streams.settings import Settings
from streams.topics import admin_client, create_topics, load_topic_specs
from streams.worker_process import WorkerProcess

MARKETS = ("m1", "m2", "m3", "m4")
BOTS = {"b1": ("m1", "m2"), "b2": ("m3", "m4")}
MODEL = "pricer"
FEATURE_EDGES = [-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0]
TICK_S = 0.2

# Settings the demo's workers run with: thresholds scaled to a one-minute run.
DEMO_WORKER_SETTINGS: dict[str, Any] = {
    "evaluation_interval_s": 0.1,
    "stale_hold_down_s": 2.0,
    "exec_evaluation_interval_s": 1.0,
    "exec_tumbling_window_s": 5,
    "exec_hopping_window_s": 10,
    "exec_hop_s": 2,
    "exec_min_fills": 10,
    "exec_slippage_rmse_bound_bps": 10.0,
    "drift_window_s": 10,
    "drift_hop_s": 2,
    "drift_min_samples": 30,
    # one verdict per 5 s window, decided at its end
    "canary_window_s": 5,
    "canary_min_samples": 30,
    "canary_evaluation_interval_s": 0.5,
    # hysteresis scaled to the demo's windows: an episode resolves after 2 s (one hop)
    # within 0.8 × its bound (production: 60 s, and one drift hop)
    # fills past a pause by more than this are trading on a paused scope
    "divergence_grace_s": 2.0,
    # each bot's PauseGuard acknowledges its pauses (runner id: the bot's id)
    "runners": {bot: {"required": True} for bot in ("b1", "b2")},
    "alert_rules": {"default": {},
                    "EXEC_SLIPPAGE_BREACH": {"keep_firing_for_s": 2.0, "resolve_ratio": 0.8},
                    "EXEC_FILL_RATIO_LOW": {"keep_firing_for_s": 2.0, "resolve_ratio": 0.8},
                    "RISK_MODEL_DRIFT": {"keep_firing_for_s": 2.0, "resolve_ratio": 0.8}},
}


@dataclass
class Fault:
    """A scripted fault: injected during [start, end) of the run (fractions of it)."""

    name: str
    start: float
    end: float
    scope: str
    reason_code: str
    injected_s: float | None = None
    detected_s: float | None = None
    resolved_s: float | None = None

    def active(self, fraction: float) -> bool:
        return self.start <= fraction < self.end


def scripted_faults() -> list[Fault]:
    return [
        Fault("order book goes stale", 0.12, 0.25, "market:m3", "RISK_STALE_BOOK"),
        # bot b2 goes on trading market m3 while the stale book has it paused
        Fault("bot ignores a pause", 0.12, 0.25, "market:m3", "RISK_STATE_DIVERGENCE"),
        Fault("bot stops heartbeating", 0.28, 0.40, "bot:b2", "GOV_HEARTBEAT_MISSED"),
        Fault("slippage spike", 0.44, 0.58, "market:m1", "EXEC_SLIPPAGE_BREACH"),
        # over by 0.72 and 0.78: their windows (10 s of drift, 5 s canary windows decided
        # at their end) are clean again, and their alerts resolved, within the run
        Fault("feature drift", 0.52, 0.72, f"model:{MODEL}", "RISK_MODEL_DRIFT"),
        Fault("canary regression", 0.60, 0.78, f"model:{MODEL}", "RISK_CANARY_REGRESSION"),
    ]


@dataclass
class SyntheticTradingSystem:
    """Produces the event stream of a small trading system, with faults switched in."""

    codecs: Codecs
    producer: Any
    seed: int
    faults: list[Fault]
    started: float = 0.0
    sent: int = 0
    _sequence: dict[str, int] = field(default_factory=dict)
    # the scopes paused now, per bot (its PauseGuard's): the bots obey them as a runner
    # does, but for the scripted fault that ignores one
    paused: Callable[[str], Collection[str]] = lambda bot: frozenset()
    _rng: random.Random = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def run(self, duration_s: float) -> None:
        """Tick every TICK_S on this thread until stopped (it outlives ``duration_s`` so
        that feeds stay fresh while the demo collects the final decisions)."""
        self.started = time.monotonic()
        index = 0
        while not self._stop.is_set():
            elapsed = time.monotonic() - self.started
            fraction = elapsed / duration_s
            for fault in self.faults:
                if fault.injected_s is None and fault.active(fraction):
                    fault.injected_s = elapsed
            self.tick(index, fraction)
            index += 1
            self._stop.wait(max(0.0, self.started + index * TICK_S - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()

    def fault(self, name: str, fraction: float) -> bool:
        return any(f.name == name and f.active(fraction) for f in self.faults)

    def _send(self, topic: str, key_field: str, records: list[Record]) -> None:
        if not records:
            return
        codec = self.codecs[type(records[0]).__name__]
        send_all(self.producer, topic, [
            (str(getattr(r, key_field)).encode(), codec.encode_record(r)) for r in records
        ])
        self.sent += len(records)

    def profile(self) -> FeatureProfile:
        """The training-time distribution the live features are compared with."""
        samples = [self._rng.gauss(0, 1) for _ in range(20_000)]
        counts = [0] * (len(FEATURE_EDGES) + 1)
        for value in samples:
            index = sum(1 for edge in FEATURE_EDGES if value >= edge)
            counts[index] += 1
        probabilities = [c / len(samples) for c in counts]
        return FeatureProfile(
            model=MODEL, model_version="v2", created_time_ms=_now_ms(),
            features=[FeatureHistogram(name=name, bin_edges=FEATURE_EDGES,
                                       probabilities=probabilities)
                      for name in ("spread_z", "momentum_z")],
        )

    def tick(self, index: int, fraction: float) -> None:
        now = _now_ms()
        rng = self._rng
        health: list[Record] = []
        for market in MARKETS:
            if market == "m3" and self.fault("order book goes stale", fraction):
                continue
            scope = f"market:{market}"
            self._sequence[scope] = self._sequence.get(scope, 0) + 1
            health.append(HealthEvent(
                event_id=uuid.uuid4().hex, scope=scope, kind=HealthEventKind.DATA_UPDATE,
                source="book-feed", event_time_ms=now, feed="book",
                sequence=self._sequence[scope]))
        if index % 2 == 0:  # every 0.4 s, within the promised 500 ms
            for bot in BOTS:
                if bot == "b2" and self.fault("bot stops heartbeating", fraction):
                    continue
                health.append(HealthEvent(
                    event_id=uuid.uuid4().hex, scope=f"bot:{bot}",
                    kind=HealthEventKind.HEARTBEAT, source=f"bot-{bot}", event_time_ms=now,
                    heartbeat_interval_ms=500))
        self._send("health.events", "scope", health)

        fills: list[Record] = []
        for bot, markets in BOTS.items():
            paused = self.paused(bot)
            for market in markets:
                if self.halted(bot, market, fraction, paused):
                    continue
                predicted = rng.uniform(2, 6)
                spike = market == "m1" and self.fault("slippage spike", fraction)
                realized = predicted + rng.gauss(0, 0.5) + (25.0 if spike else 0.0)
                requested = rng.choice((5.0, 10.0, 20.0))
                cohort = Cohort.CANARY if rng.random() < 0.3 else Cohort.BASELINE
                fills.append(FillEvent(
                    event_id=uuid.uuid4().hex, market=market, bot=bot, kind=FillKind.FILL,
                    order_id=uuid.uuid4().hex[:12], event_time_ms=now,
                    requested_size=requested, filled_size=requested * rng.uniform(0.8, 1.0),
                    predicted_slippage_bps=predicted, realized_slippage_bps=realized,
                    cohort=cohort, model=MODEL,
                    model_version="v2" if cohort is Cohort.CANARY else "v1"))
        self._send("exec.fills", "scope", fills)

        shift = 1.5 if self.fault("feature drift", fraction) else 0.0
        features: list[Record] = [FeatureSample(
            event_id=uuid.uuid4().hex, model=MODEL, model_version="v2", event_time_ms=now,
            features={"spread_z": rng.gauss(shift, 1), "momentum_z": rng.gauss(0, 1)})
            for _ in range(3)]
        self._send("model.features", "scope", features)

        worse = 0.12 if self.fault("canary regression", fraction) else 0.0
        scores: list[Record] = []
        for _ in range(2):
            scores.append(ModelScore(
                event_id=uuid.uuid4().hex, model=MODEL, model_version="v1",
                cohort=Cohort.BASELINE, metric="brier", value=_brier(rng, 0.181),
                prediction_id=uuid.uuid4().hex[:12], event_time_ms=now))
            scores.append(ModelScore(
                event_id=uuid.uuid4().hex, model=MODEL, model_version="v2",
                cohort=Cohort.CANARY, metric="brier", value=_brier(rng, 0.179 + worse),
                prediction_id=uuid.uuid4().hex[:12], event_time_ms=now))
        self._send("model.scores", "scope", scores)


    def halted(self, bot: str, market: str, fraction: float,
               paused: Collection[str]) -> bool:
        """Whether a pause covers the bot's trading on the market (global, the bot, the
        market, or the pair), unless this is the bot that ignores its pause."""
        if bot == "b2" and market == "m3" and self.fault("bot ignores a pause", fraction):
            return False
        covering = ("global", f"bot:{bot}", f"market:{market}", f"bot:{bot}/market:{market}")
        return any(scope in paused for scope in covering)


def paused_now(pauses: list[PauseState]) -> frozenset[str]:
    """The scopes whose newest pause state (by update time) is paused."""
    newest: dict[str, PauseState] = {}
    for state in pauses:
        if state.scope not in newest or state.updated_ms >= newest[state.scope].updated_ms:
            newest[state.scope] = state
    return frozenset(scope for scope, state in newest.items() if state.paused)


def _brier(rng: random.Random, mean: float) -> float:
    return min(1.0, max(0.0, rng.gauss(mean, 0.05)))


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Observed:
    """What polymon published, as the demo saw it."""

    alerts: list[ReportEnvelope] = field(default_factory=list)
    pauses: list[PauseState] = field(default_factory=list)
    incidents: list[ReportEnvelope] = field(default_factory=list)
    rollout: list[RolloutState] = field(default_factory=list)


def collect(bootstrap: str, codecs: Codecs, until_ms: int | None = None) -> Observed:
    """Everything published so far (with ``until_ms``: decided up to then)."""
    observed = Observed()
    for topic, schema, bucket in (("monitor.alerts", "ReportEnvelope", observed.alerts),
                                  ("control.pauses", "PauseState", observed.pauses),
                                  ("monitor.incidents", "ReportEnvelope", observed.incidents),
                                  ("control.rollout", "RolloutState", observed.rollout)):
        for message in read_topic(bootstrap, topic, True, None, idle_timeout_s=0.5):
            try:
                record = codecs[schema].decode_record(message.value)
            except ValueError:
                continue
            decided = getattr(record, "observed_time_ms", None) or getattr(
                record, "updated_ms", 0)
            if until_ms is None or decided <= until_ms:
                bucket.append(record)
    return observed


def match_faults(faults: list[Fault], observed: Observed, started_ms: int) -> None:
    for fault in faults:
        fault.detected_s = fault.resolved_s = None
        for alert in observed.alerts:
            payload = alert.payload
            if alert.scope != fault.scope or alert.reason_code != fault.reason_code:
                continue
            if not isinstance(payload, AlertPayload):
                continue
            at_s = (alert.observed_time_ms - started_ms) / 1000
            if fault.injected_s is None or at_s < fault.injected_s - 0.5:
                continue  # before the fault: not its detection
            if payload.status is AlertStatus.FIRING and fault.detected_s is None:
                fault.detected_s = at_s
            elif payload.status is AlertStatus.RESOLVED and fault.detected_s is not None:
                fault.resolved_s = at_s


def _fault_table(faults: list[Fault], elapsed_s: float) -> Table:
    table = Table(title=f"polymon demo: {elapsed_s:5.1f}s")
    for column in ("fault", "scope", "expected", "injected", "detected", "delay", "resolved"):
        table.add_column(column)
    for fault in faults:
        injected = f"{fault.injected_s:.1f}s" if fault.injected_s is not None else "-"
        detected = f"{fault.detected_s:.1f}s" if fault.detected_s is not None else "-"
        delay = (f"{fault.detected_s - fault.injected_s:.2f}s"
                 if fault.detected_s is not None and fault.injected_s is not None else "-")
        resolved = f"{fault.resolved_s:.1f}s" if fault.resolved_s is not None else "-"
        style = "green" if fault.detected_s is not None else (
            "yellow" if fault.injected_s is not None else "dim")
        table.add_row(fault.name, fault.scope, fault.reason_code, injected, detected, delay,
                      resolved, style=style)
    return table


def run_demo(duration_s: float, seed: int, workers: int, keep_running: bool,
             console: Console, extra_settings: dict[str, Any] | None = None) -> int:
    settings = Settings()
    state = Path(settings.state_dir) / "demo"
    shutil.rmtree(state, ignore_errors=True)
    codecs = Codecs(SchemaCatalog())
    broker = EmbeddedBroker(state / "broker")
    started_workers: list[WorkerProcess] = []
    faults = scripted_faults()
    try:
        with console.status("starting the embedded Kafka broker"):
            broker.start()
        console.print(f"[green]✓[/green] broker at {broker.bootstrap}")
        outcome = create_topics(admin_client(broker.bootstrap), load_topic_specs())
        console.print(f"[green]✓[/green] {len(outcome)} topics created")
        # the demo's workers sign the requests they send each other with a secret of
        # this run's (streams.peer_auth)
        worker_settings = {"peer_secret": secrets.token_hex(32), **DEMO_WORKER_SETTINGS,
                           **(extra_settings or {})}
        with console.status(f"starting {workers} polymon worker(s)"):
            for number in range(1, workers + 1):
                worker = WorkerProcess(broker.bootstrap, state, worker_id=f"demo-worker-{number}",
                                       broker_engine=broker.engine, **worker_settings)
                started_workers.append(worker.start())
            for worker in started_workers:
                worker.wait_ready(timeout_s=90)
        first = started_workers[0]
        console.print(f"[green]✓[/green] {workers} worker(s) ready — console: {first.url}/  "
                      f"metrics: {first.url}/metrics")

        producer = kafka_producer(broker.bootstrap, **{"log.connection.close": False})
        system = SyntheticTradingSystem(codecs, producer, seed, faults)
        runners = {bot: RunnerWatch(bot) for bot in BOTS}
        guards = {bot: PauseGuard(broker.bootstrap, runner_id=bot, runner_version="demo-bot",
                                  on_change=runners[bot].on_change).start() for bot in BOTS}
        system.paused = lambda bot: guards[bot].paused_scopes().keys()
        system._send("model.profiles", "scope", [system.profile()])
        with console.status("registering the canary model on the rollout ladder"):
            _walk_ladder_to_canary(broker.bootstrap, codecs, system)
        console.print(f"[green]✓[/green] model:{MODEL} v2 promoted replay → shadow → paper → "
                      "canary")
        bad = list(garbage(5, seed=seed))
        send_all(system.producer, "health.events", [(b"market:m1", value) for value in bad])

        started_ms = _now_ms()
        generator = threading.Thread(target=system.run, args=(duration_s,), daemon=True)
        generator.start()
        try:
            with Live(_fault_table(faults, 0.0), console=console,
                      refresh_per_second=4) as live:
                resumed: set[str] = set()
                while (elapsed := (_now_ms() - started_ms) / 1000) < duration_s:
                    seen = collect(broker.bootstrap, codecs)
                    resume_latched(system, paused_now(seen.pauses), elapsed / duration_s,
                                   resumed)
                    match_faults(faults, seen, started_ms)
                    watch_runners(first.url, runners)
                    live.update(_fault_table(faults, elapsed))
                    time.sleep(0.5)
                observed = collect(broker.bootstrap, codecs, until_ms=_now_ms())
                match_faults(faults, observed, started_ms)
                live.update(_fault_table(faults, (_now_ms() - started_ms) / 1000))
        finally:
            system.stop()
            generator.join(timeout=10)
            watch_runners(first.url, runners)
            for bot, guard in guards.items():
                guard.stop()
                runners[bot].acks, runners[bot].ack_failures = (guard.acks_sent,
                                                                guard.ack_failures)

        _print_summary(console, observed, started_ms, system.sent, len(bad))
        episodes = alert_episodes(observed, started_ms)
        console.print(_episode_table(episodes))
        console.print(_runner_table(runners))
        undetected = [f.name for f in faults if f.detected_s is None]
        if undetected:
            console.print(f"[red]not detected:[/red] {', '.join(undetected)}")
        else:
            console.print(f"[green]every scripted fault was detected[/green] "
                          f"({len(faults)} faults, {system.sent} events)")
        flapped = [f"{scope} {reason}" for (scope, reason), times in episodes.items()
                   if len(times["FIRING"]) > 1]
        if flapped:
            console.print(f"[red]fired more than once:[/red] {', '.join(flapped)}")
        else:
            console.print("[green]no (scope, reason) fired more than once[/green]")
        if keep_running:
            console.print(f"stack stays up (export POLYMON_KAFKA_BOOTSTRAP={broker.bootstrap});"
                          " Ctrl-C stops it")
            while all(w.exit_code is None for w in started_workers):
                time.sleep(0.5)
        return 1 if undetected or flapped else 0
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    finally:
        with console.status("stopping what the demo started"):
            for worker in started_workers:
                worker.stop()
            broker.stop()


@dataclass
class RunnerWatch:
    """A demo bot as a runner: what its PauseGuard applied and acknowledged, and its lag
    as polymon saw it (GET /api/runners)."""

    runner_id: str
    pauses_applied: int = 0
    max_apply_delay_ms: int = 0  # from a pause state's update to its guard applying it
    acks: int = 0
    ack_failures: int = 0
    max_lag_ms: int = 0
    max_lag_records: int = 0
    alerts: set[str] = field(default_factory=set)
    seen: bool = False

    def on_change(self, _scope: str, state: PauseState | None) -> None:
        if state is not None and state.paused:
            self.pauses_applied += 1
            self.max_apply_delay_ms = max(self.max_apply_delay_ms,
                                          _now_ms() - state.updated_ms)


def watch_runners(url: str, runners: dict[str, RunnerWatch]) -> None:
    """Each runner's lag and alerts as the worker at ``url`` shows them now."""
    try:
        with urllib.request.urlopen(f"{url}/api/runners", timeout=2) as response:
            rows = json.loads(response.read())["runners"]
    except (OSError, ValueError, KeyError):
        return  # a rebalance or a busy worker: the next poll will do
    for runner_id, row in rows.items():
        watch = runners.get(runner_id)
        if watch is None or row.get("never_acknowledged"):
            continue
        watch.seen = True
        watch.max_lag_ms = max(watch.max_lag_ms, int((row.get("lag_s") or 0) * 1000))
        watch.max_lag_records = max(watch.max_lag_records, row.get("lag_records") or 0)
        watch.alerts.update(row.get("alerts") or {})


def _runner_table(runners: dict[str, RunnerWatch]) -> Table:
    table = Table(title="runners: pause acknowledgements (each bot's PauseGuard)")
    for column in ("runner", "acks", "pauses applied", "max apply delay", "max lag (polymon)",
                   "max lag records", "alerts"):
        table.add_column(column)
    for runner_id, watch in sorted(runners.items()):
        table.add_row(runner_id, f"{watch.acks}" + (f" ({watch.ack_failures} failed)"
                                                    if watch.ack_failures else ""),
                      str(watch.pauses_applied), f"{watch.max_apply_delay_ms} ms",
                      f"{watch.max_lag_ms} ms" if watch.seen else "not listed",
                      str(watch.max_lag_records), ", ".join(sorted(watch.alerts)) or "-")
    return table


def _rollout_stage(bootstrap: str, codecs: Codecs) -> str | None:
    stage = None
    for message in read_topic(bootstrap, "control.rollout", True, None, idle_timeout_s=0.3):
        record = codecs["RolloutState"].decode_record(message.value)
        if isinstance(record, RolloutState) and record.scope == f"model:{MODEL}":
            stage = record.stage.value
    return stage


def _walk_ladder_to_canary(bootstrap: str, codecs: Codecs,
                           system: SyntheticTradingSystem) -> None:
    """The model enters at REPLAY when its profile arrives; promote it step by step."""
    for wanted, target in (("REPLAY", None), ("SHADOW", "SHADOW"), ("PAPER", "PAPER"),
                           ("CANARY", "CANARY")):
        if target is not None:
            _send_command(system, f"model:{MODEL}", OpsAction.PROMOTE, target)
        deadline = time.monotonic() + 30
        while _rollout_stage(bootstrap, codecs) != wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"model:{MODEL} did not reach {wanted} on control.rollout")
            time.sleep(0.2)


def _send_command(system: SyntheticTradingSystem, scope: str, action: OpsAction,
                  target: str | None, reason: str = "demo rollout") -> None:
    system._send("ops.commands", "scope", [OpsCommand(
        command_id=uuid.uuid4().hex, scope=scope, action=action, actor="demo",
        reason=reason, target=target, issued_time_ms=_now_ms())])


# the slippage spike's pauses latch: the demo's operator resumes them once it is over
LATCHED_BY = {"slippage spike": ("market:m1", "bot:b1")}
RESUME_AFTER = 0.02  # of the run, after the fault's end


def resume_latched(system: SyntheticTradingSystem, paused: Collection[str], fraction: float,
                   resumed: set[str]) -> None:
    """As an operator would: resume the latched scopes of a fault that is over."""
    for fault in system.faults:
        if fault.name not in LATCHED_BY or fraction < fault.end + RESUME_AFTER:
            continue
        for scope in LATCHED_BY[fault.name]:
            if scope in paused and scope not in resumed:
                _send_command(system, scope, OpsAction.RESUME, None,
                              reason=f"demo operator: the {fault.name} is over")
                resumed.add(scope)


def alert_episodes(observed: Observed,
                   started_ms: int) -> dict[tuple[str, str], dict[str, list[float]]]:
    """Per (scope, reason code): the times of its FIRING and RESOLVED alerts (seconds
    from the start of the run), in order."""
    episodes: dict[tuple[str, str], dict[str, list[float]]] = {}
    seen: set[str] = set()
    for alert in sorted(observed.alerts, key=lambda a: a.observed_time_ms):
        payload = alert.payload
        # the same decision published twice (by two workers, or again after a restart)
        # has the same envelope id: it is one alert
        if not isinstance(payload, AlertPayload) or alert.envelope_id in seen:
            continue
        seen.add(alert.envelope_id)
        times = episodes.setdefault((alert.scope, alert.reason_code),
                                    {"FIRING": [], "RESOLVED": []})
        times[payload.status.value].append((alert.observed_time_ms - started_ms) / 1000)
    return episodes


def _episode_table(episodes: dict[tuple[str, str], dict[str, list[float]]]) -> Table:
    table = Table(title="alerts per (scope, reason): one FIRING and one RESOLVED per episode")
    for column in ("scope", "reason", "FIRING", "RESOLVED"):
        table.add_column(column)
    for (scope, reason), times in sorted(episodes.items()):
        table.add_row(scope, reason, *(", ".join(f"{t:.2f}s" for t in times[status]) or "-"
                                       for status in ("FIRING", "RESOLVED")))
    return table


def _print_summary(console: Console, observed: Observed, started_ms: int, sent: int,
                   garbage_count: int) -> None:
    def at(ms: int) -> str:
        return f"{(ms - started_ms) / 1000:7.2f}s"

    table = Table(title="every decision, relative to the start of the run")
    for column in ("at", "kind", "scope", "what"):
        table.add_column(column)
    rows: list[tuple[int, str, str, str]] = []
    for alert in observed.alerts:
        payload = alert.payload
        status = payload.status.value if isinstance(payload, AlertPayload) else "?"
        rows.append((alert.observed_time_ms, "alert", alert.scope,
                     f"{alert.reason_code} {status}"))
    for pause in observed.pauses:
        rows.append((pause.updated_ms, "pause", pause.scope,
                     f"{'PAUSED' if pause.paused else 'resumed'} {pause.reason_code or ''}"))
    for incident in observed.incidents:
        state = getattr(incident.payload, "state", None)
        rows.append((incident.observed_time_ms, "incident", incident.scope,
                     f"{incident.reason_code} {getattr(state, 'value', state)}"))
    for rollout in observed.rollout:
        event = rollout.history[-1].event if rollout.history else "transition"
        what = f"stage {rollout.stage.value}"
        if event == "reevaluation_required" and rollout.reevaluation is not None:
            what += f", {rollout.reevaluation.model_version} REEVALUATION_REQUIRED"
        elif event != "transition":
            what += f", {event}"
        rows.append((rollout.updated_ms, "rollout", rollout.scope, what))
    for stamp, kind, scope, what in sorted(rows):
        table.add_row(at(stamp), kind, scope, what)
    console.print(table)
    console.print(f"{sent} events sent, {garbage_count} garbage messages (dead-lettered)")


__all__ = ["DEMO_WORKER_SETTINGS", "Fault", "alert_episodes", "run_demo", "scripted_faults"]
