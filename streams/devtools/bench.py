"""`polymon bench`: throughput, detection latency and memory, measured in one run on a
fresh broker of either engine (the embedded one or Apache Kafka) against baselines on the
same data (a raw aiokafka loop, a bare Faust agent and a minimal quixstreams application),
with a JSON report.

Phases: load N events (a realistic mix: book updates and heartbeats for thousands of
scopes, fills, feature samples, model scores) → raw aiokafka loop → bare Faust agent →
quixstreams peer → raw loop → the full polymon pipeline (time until every event is
processed) → raw loop (the baseline is the median of its three runs) → detection latency
under a steady load with markets that go stale at known times.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import random
import shutil
import site
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.codec import Codecs, SchemaCatalog
from streams.console import kafka_producer, read_topic, send_all
from streams.devtools.broker import Engine, make_broker
from streams.framework import record_unpacking
from streams.processes import die_with_parent, free_port, stop_process
from streams.records import (
    Cohort,
    FeatureSample,
    FillEvent,
    FillKind,
    HealthEvent,
    HealthEventKind,
    ModelScore,
)
from streams.topics import admin_client, create_topics, load_topic_specs
from streams.worker_process import WorkerProcess, http_json

INPUTS = ("health.events", "exec.fills", "model.scores", "model.features")
THROUGHPUT_SETTINGS = {
    "staleness_thresholds_s": {"book": 86400, "registry": 86400, "model": 86400,
                               "default": 86400},
    "heartbeat_miss_factor": 10_000,
}
Progress = Callable[[str, int, int], None]
# The quixstreams peer's pin. Not a dependency of polymon: quixstreams caps confluent-kafka
# below polymon's (3.28.1, the newest: <2.13), and its orjson, once importable, becomes
# Faust's json serializer, which then reads no NaN back from the changelogs; so the peer
# runs in an env of its own (quix_python).
QUIXSTREAMS = "quixstreams==3.28.1"


@dataclass
class BenchReport:
    events: int
    scopes: int
    nproc: int
    engine: str  # the broker's: embedded or kafka
    kafka_version: str | None  # Apache Kafka's, on engine kafka
    load_eps: float
    raw_eps: float  # the median of raw_eps_runs
    faust_bare_eps: float
    quix_eps: float
    pipeline_eps: float
    # events per CPU second of the worker: what the pipeline costs, whatever the
    # neighbours on a shared machine take from its wall clock
    pipeline_eps_per_cpu: float
    ratio_to_raw: float
    ratio_to_faust_bare: float
    ratio_to_quix: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_samples: int
    latency_load_eps: float
    peak_rss_mb: float
    soak_seconds: float = 0.0
    soak_scopes: int = 0
    soak_load_eps: float = 0.0
    soak_rss_start_mb: float | None = None  # after the first tenth of the soak (warm-up)
    soak_rss_end_mb: float | None = None
    soak_rss_growth: float | None = None  # end / start - 1; "flat" is within 0.10
    # the raw loop's runs: after loading, right before the pipeline and right after it
    raw_eps_runs: list[int] = field(default_factory=list)


def synthetic_mix(count: int, scopes: int, seed: int, start_ms: int) -> list[tuple[str, bytes,
                                                                                 bytes]]:
    """(topic, key, value) for a realistic mix, pre-encoded."""
    rng = random.Random(seed)
    codecs = Codecs(SchemaCatalog())
    out: list[tuple[str, bytes, bytes]] = []
    sequences: dict[int, int] = {}
    for index in range(count):
        now = start_ms + index // 10
        roll = rng.random()
        if roll < 0.6:
            market = rng.randrange(scopes)
            sequences[market] = sequences.get(market, 0) + 1
            record = HealthEvent(
                event_id=f"b{index}", scope=f"market:m{market}", kind=HealthEventKind.DATA_UPDATE,
                source="bench", event_time_ms=now, feed="book", sequence=sequences[market])
            out.append(("health.events", record.scope.encode(),
                        codecs["HealthEvent"].encode_record(record)))
        elif roll < 0.7:
            record = HealthEvent(
                event_id=f"h{index}", scope=f"bot:b{rng.randrange(max(1, scopes // 20))}",
                kind=HealthEventKind.HEARTBEAT, source="bench", event_time_ms=now,
                heartbeat_interval_ms=60_000)
            out.append(("health.events", record.scope.encode(),
                        codecs["HealthEvent"].encode_record(record)))
        elif roll < 0.85:
            fill = FillEvent(
                event_id=f"f{index}", market=f"m{rng.randrange(scopes)}", bot="b1",
                kind=FillKind.FILL, order_id=f"o{index}", event_time_ms=now,
                requested_size=10.0, filled_size=9.0, predicted_slippage_bps=3.0,
                realized_slippage_bps=3.0 + rng.gauss(0, 1), cohort=Cohort.BASELINE,
                model="pricer", model_version="v1")
            out.append(("exec.fills", fill.scope.encode(), codecs["FillEvent"].encode_record(fill)))
        elif roll < 0.95:
            sample = FeatureSample(event_id=f"x{index}", model=f"model{index % 5}",
                                   model_version="v1", event_time_ms=now,
                                   features={"spread_z": rng.gauss(0, 1)})
            out.append(("model.features", sample.scope.encode(),
                        codecs["FeatureSample"].encode_record(sample)))
        else:
            score = ModelScore(event_id=f"s{index}", model=f"model{index % 5}",
                               model_version="v1", cohort=Cohort.BASELINE, metric="brier",
                               value=rng.random() * 0.3, prediction_id=f"p{index}",
                               event_time_ms=now)
            out.append(("model.scores", score.scope.encode(),
                        codecs["ModelScore"].encode_record(score)))
    return out


def load(bootstrap: str, prefix: str, messages: list[tuple[str, bytes, bytes]],
         progress: Progress) -> float:
    producer = kafka_producer(bootstrap, **{"linger.ms": 20, "batch.num.messages": 10000})
    started = time.perf_counter()
    by_topic: dict[str, list[tuple[bytes, bytes]]] = {}
    for topic, key, value in messages:
        by_topic.setdefault(topic, []).append((key, value))
    done = 0
    for topic, batch in by_topic.items():
        for first in range(0, len(batch), 20_000):
            chunk = batch[first:first + 20_000]
            send_all(producer, prefix + topic, chunk)
            done += len(chunk)
            progress("load", done, len(messages))
    return len(messages) / (time.perf_counter() - started)


def _input_partitions(bootstrap: str, prefix: str) -> list[TopicPartition]:
    """Every partition of the input topics under ``prefix``, from the cluster's metadata
    (an unsubscribed aiokafka consumer's own metadata need not hold them: on Apache Kafka
    it does not)."""
    metadata = admin_client(bootstrap).list_topics(timeout=10)
    return [TopicPartition(prefix + topic, number) for topic in INPUTS
            for number in sorted(metadata.topics[prefix + topic].partitions)]


async def _raw_loop(bootstrap: str, partitions: list[TopicPartition], expected: int) -> float:
    """A plain getmany loop over every partition, assigned (no group join), timed from
    the first fetch to the last record."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=10_000)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started = time.perf_counter()
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(records) for records in batches.values())
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def measure_raw(bootstrap: str, prefix: str, expected: int) -> float:
    if record_unpacking.installed():  # the baseline is aiokafka as shipped, not polymon's unpacking
        raise BenchError("the raw loop would run with polymon's record unpacking "
                         "(streams.framework.record_unpacking) installed in this process")
    return asyncio.run(_raw_loop(bootstrap, _input_partitions(bootstrap, prefix), expected))


class BenchError(RuntimeError):
    """A phase that could not be measured."""


@dataclass(frozen=True)
class Span:
    """How long processing took: wall seconds and, when measured, the CPU seconds the
    process spent in them (on a shared machine the wall clock includes waiting for the
    neighbours; the CPU time is what the work itself costs), and how many events were
    processed in them: those counted after the first reading that saw any (a backlog's
    first events may be processed before that reading; they are not in the span)."""

    seconds: float
    cpu_seconds: float | None = None
    events: int = 0

    def timed(self, phase: str) -> Span:
        """This span, when it holds events to time."""
        if self.events <= 0:
            raise BenchError(f"{phase}: every event was processed before the first reading "
                             "of the counters: too few to time (run more --events)")
        return self

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def events_per_cpu_second(self) -> float:
        return self.events / (self.cpu_seconds or float("nan"))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (nan once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _time_until_done(read: Callable[[], tuple[int, int]], expected: int, progress: Progress,
                     phase: str, timeout_s: float, quiet_s: float, poll_s: float = 0.5,
                     cpu: Callable[[], float] | None = None) -> Span:
    """From the first processed event until the last change of the total.
    ``read`` gives (expected events counted, everything processed); done when every
    expected event is counted and the total stayed still for ``quiet_s``. Each read is a
    scrape of two counters: fast until the first event (to time the start), then every
    ``poll_s`` (the resolution of the end). ``cpu``: the process's CPU seconds so far,
    read at the same moments."""
    deadline = time.monotonic() + timeout_s
    first_at = last_change_at = None
    first_cpu = last_change_cpu = None
    first_counted = last_total = 0
    while time.monotonic() < deadline:
        counted, total = read()
        now = time.perf_counter()
        cpu_now = cpu() if cpu is not None else None
        if total and first_at is None:
            first_at, first_cpu, first_counted = now, cpu_now, counted
        if total != last_total:
            last_total, last_change_at, last_change_cpu = total, now, cpu_now
        progress(phase, counted, expected)
        if counted >= expected and last_change_at is not None and now - last_change_at >= quiet_s:
            assert first_at is not None
            cpu_spent = (None if first_cpu is None or last_change_cpu is None
                         else max(last_change_cpu - first_cpu, 1e-3))
            return Span(max(last_change_at - first_at, 1e-3), cpu_spent,
                        counted - first_counted)
        time.sleep(poll_s if first_at is not None else 0.02)
    raise TimeoutError(f"{phase}: only {read()[0]} of {expected} events in {timeout_s}s")


def measure_faust_bare(bootstrap: str, prefix: str, expected: int, progress: Progress,
                       timeout_s: float) -> float:
    port = free_port()
    command = [sys.executable, "-m", "streams.devtools.bench_bare", bootstrap, prefix, str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=die_with_parent)
    return _time_counting_process(process, port, "faust bare", expected, progress, timeout_s)


def _time_counting_process(process: subprocess.Popen[bytes], port: int, phase: str,
                           expected: int, progress: Progress, timeout_s: float,
                           log_path: Path | None = None) -> float:
    """Events/s of a baseline process that serves its count at ``/count`` on ``port``;
    stops it after. With ``log_path``, its exit fails the run at once, with its log."""
    try:
        def read() -> tuple[int, int]:
            if log_path is not None and process.poll() is not None:
                raise BenchError(f"{phase} exited ({process.returncode}):\n"
                                 f"{log_path.read_text(errors='replace')[-3000:]}")
            try:
                count = int(http_json(f"http://127.0.0.1:{port}/count")[1]["count"])
            except (OSError, TypeError, KeyError, ValueError):
                count = 0
            return count, count
        return _time_until_done(read, expected, progress, phase, timeout_s,
                                quiet_s=0).timed(phase).events_per_second
    finally:
        stop_process(process, 15)


def quix_python(cache_dir: Path) -> Path:
    """The interpreter of the quixstreams peer: a virtualenv with QUIXSTREAMS and its own
    dependencies, which sees this interpreter's packages (polymon, for the codec) after its
    own. Made by pip on first use (the network, once), reused after."""
    env = cache_dir.resolve() / QUIXSTREAMS.replace("==", "-")
    python = env / "bin" / "python"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker at a time; the others wait, then reuse
        if (env / ".complete").is_file():
            return python
        shutil.rmtree(env, ignore_errors=True)  # a half-made env from an interrupted run
        log = cache_dir / "make.log"
        steps = [
            [sys.executable, "-m", "venv", str(env)],
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", QUIXSTREAMS],
        ]
        for step in steps:
            with log.open("w") as output:
                done = subprocess.run(step, stdout=output, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, timeout=900, check=False)
            if done.returncode != 0:
                raise BenchError(f"could not make the quixstreams env in {env} "
                                 f"({' '.join(step[2:])} exited {done.returncode}; pip needs "
                                 f"the package index once):\n{log.read_text()[-2000:]}")
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True).stdout.strip()
        # addsitedir appends (the env's own packages win) and runs their .pth files (the
        # editable install of polymon)
        Path(purelib, "polymon.pth").write_text("".join(
            f"import site; site.addsitedir({path!r})\n" for path in site.getsitepackages()))
        (env / ".complete").write_text(QUIXSTREAMS + "\n")
    return python


def measure_quix(python: Path, bootstrap: str, prefix: str, expected: int, state_dir: Path,
                 threshold_s: float, progress: Progress, timeout_s: float) -> float:
    """Events/s of the quixstreams peer (streams.devtools.bench_quix) over the backlog of the input
    topics under ``prefix``, timed as the bare Faust agent is."""
    port = free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "quix.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(python), "-m", "streams.devtools.bench_quix", bootstrap, prefix, str(port),
             str(state_dir / "state"), str(threshold_s)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent)
    return _time_counting_process(process, port, "quixstreams", expected, progress, timeout_s,
                                  log_path)


# the two counters only: a full scrape also computes the operator views from the tables
COUNTERS_SCRAPE = ("/metrics?name%5B%5D=polymon_events_processed_total"
                   "&name%5B%5D=polymon_dead_letters_total")


def _processed(worker: WorkerProcess, prefix: str) -> tuple[int, int]:
    """(events of the loaded input topics processed or dead-lettered, everything the
    worker processed: inputs plus the fills it re-keys onto its own internal topic)."""
    try:
        text = worker.get_text(COUNTERS_SCRAPE)
    except OSError:
        return 0, 0
    inputs = {f'topic="{prefix}{name}"' for name in INPUTS}
    loaded = everything = 0.0
    for line in text.splitlines():
        if line.startswith(("polymon_events_processed_total{", "polymon_dead_letters_total{")):
            labels, value = line.rsplit(" ", 1)
            everything += float(value)
            if any(label in labels for label in inputs):
                loaded += float(value)
    return int(loaded), int(everything)


def processing_span(worker: WorkerProcess, prefix: str, expected: int, progress: Progress,
                    timeout_s: float, quiet_s: float = 1.0, poll_s: float = 0.5) -> Span:
    """From the first reading that saw processed input events until the worker is done
    with the ``expected`` events of the input topics (processed or dead-lettered) and
    with the work they caused (re-keyed fills): wall seconds, the worker's CPU seconds,
    and the input events processed in them. Reads from the moment the worker starts (a
    backlog is consumed at once), and stops with its log when it exits."""
    process = worker.process
    assert process is not None, "the worker is not running"

    def read() -> tuple[int, int]:
        if process.poll() is not None:
            raise BenchError(f"the worker exited ({process.returncode}) while processing:\n"
                             f"{worker.log_tail()}")
        return _processed(worker, prefix)

    return _time_until_done(read, expected, progress, "pipeline", timeout_s, quiet_s, poll_s,
                            cpu=lambda: _cpu_seconds(process.pid))


def measure_pipeline(worker: WorkerProcess, prefix: str, expected: int, progress: Progress,
                     timeout_s: float, quiet_s: float = 1.0) -> tuple[float, float]:
    """Input events/s through the pipeline (see processing_span), and input events per
    CPU second of the worker."""
    span = processing_span(worker, prefix, expected, progress, timeout_s, quiet_s,
                           poll_s=0.1).timed("pipeline")
    return span.events_per_second, span.events_per_cpu_second


def _rss_mb(pid: int, field: str = "VmRSS:") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _owed(rate_eps: int, elapsed_s: float, sent: int, most: int) -> int:
    """Messages the offered rate owes by now (at most ``most``): a late tick catches up,
    so the rate is met on average."""
    return max(0, min(int(rate_eps * elapsed_s) - sent, most))


def measure_soak(bootstrap: str, prefix: str, pid: int, scopes: int, rate_eps: int,
                 duration_s: float, progress: Progress) -> tuple[float, float, float]:
    """Steady book updates round-robin over ``scopes`` markets (every scope stays fresh
    and keeps its state) for ``duration_s``; RSS of the worker after the warm-up tenth
    and at the end. Returns (load events/s, start MB, end MB)."""
    # the model feed (24 h threshold): a scope revisited every scopes/rate seconds stays
    # fresh, so the soak measures state, not an alert storm
    update = _book_updates(Codecs(SchemaCatalog()), "model")
    producer = kafka_producer(bootstrap, **{"linger.ms": 20})
    started = time.monotonic()
    tick_s = 0.1
    per_tick = max(1, int(rate_eps * tick_s))
    sent, index, start_mb = 0, 0, float("nan")
    while (now := time.monotonic()) - started < duration_s:
        now_ms = int(time.time() * 1000)
        batch = []
        for _ in range(_owed(rate_eps, now - started, sent, 4 * per_tick)):
            scope = f"market:soak{index % scopes}"
            batch.append((scope.encode(), update(f"s{index}", scope, now_ms,
                                                 index // scopes + 1)))
            index += 1
        send_all(producer, prefix + "health.events", batch)
        sent += len(batch)
        if start_mb != start_mb and now - started >= duration_s / 10:  # nan: not yet taken
            start_mb = _rss_mb(pid)
        progress("soak", int(now - started), int(duration_s))
        time.sleep(max(0.0, tick_s - (time.monotonic() - now)))
    return sent / (time.monotonic() - started), start_mb, _rss_mb(pid)


def _peak_rss_mb(pid: int) -> float:
    return _rss_mb(pid, "VmHWM:")


def _book_updates(codecs: Codecs, feed: str) -> Callable[[str, str, int, int], bytes]:
    """Encoder of DATA_UPDATE events for load generation: the validated record once, then
    only the fields that change (fast enough to offer 10k+ events/s from one thread)."""
    template = HealthEvent(event_id="template", scope="market:template",
                           kind=HealthEventKind.DATA_UPDATE, source="bench", event_time_ms=0,
                           feed=feed, sequence=1).to_avro()
    encode = codecs["HealthEvent"].encode

    def update(event_id: str, scope: str, event_time_ms: int, sequence: int) -> bytes:
        return encode({**template, "event_id": event_id, "scope": scope,
                       "event_time_ms": event_time_ms, "sequence": sequence})

    return update


def measure_latency(bootstrap: str, prefix: str, rate_eps: int, duration_s: float,
                    stale_markets: int, progress: Progress) -> tuple[list[float], float]:
    """Steady load at ``rate_eps``; ``stale_markets`` markets stop at known times.
    Latency = pause publication − (last update + threshold), per stale market."""
    codecs = Codecs(SchemaCatalog())
    book_update = _book_updates(codecs, "book")
    producer = kafka_producer(bootstrap, **{"linger.ms": 5})
    stop_at: dict[str, float] = {}
    last_sent: dict[str, int] = {}
    sequences: dict[str, int] = {}
    sent = 0
    started = time.monotonic()
    tick_s = 0.05
    per_tick = max(1, int(rate_eps * tick_s))
    markets = [f"market:lat{i}" for i in range(200)]
    victims = markets[:stale_markets]
    for number, scope in enumerate(victims):
        stop_at[scope] = started + duration_s * 0.3 + number * (duration_s * 0.4 / stale_markets)
    index = 0
    while (now := time.monotonic()) - started < duration_s:
        batch = []
        now_ms = int(time.time() * 1000)
        owed = _owed(rate_eps, now - started, sent, 4 * per_tick)
        while len(batch) < owed:  # the offered rate is what is sent
            scope = markets[index % len(markets)]
            index += 1
            if scope in stop_at and now >= stop_at[scope]:
                continue
            sequences[scope] = sequences.get(scope, 0) + 1  # per feed, no gaps
            batch.append((scope.encode(), book_update(f"l{index}", scope, now_ms,
                                                      sequences[scope])))
            last_sent[scope] = now_ms
        send_all(producer, prefix + "health.events", batch)
        sent += len(batch)
        progress("latency", int(now - started), int(duration_s))
        time.sleep(max(0.0, tick_s - (time.monotonic() - now)))
    load_eps = sent / (time.monotonic() - started)
    time.sleep(3.0)
    latencies = []
    for message in read_topic(bootstrap, prefix + "control.pauses", True, None, 2.0):
        record = codecs["PauseState"].decode_record(message.value)
        if record.paused and record.scope in stop_at and message.timestamp_ms:
            latencies.append(message.timestamp_ms - (last_sent[record.scope] + 2000))
    return latencies, load_eps


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_bench(events: int, scopes: int, state_dir: Path, progress: Progress,
              latency_rate: int = 10_000, latency_s: float = 20.0, seed: int = 1,
              timeout_s: float = 600.0, soak_s: float = 0.0, soak_scopes: int = 100_000,
              soak_rate: int = 5_000, engine: Engine = "embedded",
              jars_cache: Path | None = None, quix_env: Path | None = None) -> BenchReport:
    """``jars_cache``: Apache Kafka's jars (engine kafka); ``quix_env``: where the
    quixstreams peer's env is made and kept (default: <state_dir>/bench-quix)."""
    # before the broker: a missing env fails at once, and its first making is not timed
    quix = quix_python(quix_env or state_dir / "bench-quix")
    # The run's scratch (broker log segments: gigabytes after a soak) starts empty, so
    # the broker starts fast and no earlier run is measured, and is deleted at the end.
    scratch = state_dir / "bench"
    shutil.rmtree(scratch, ignore_errors=True)
    broker = make_broker(engine, scratch / "broker", jars_cache=jars_cache)
    worker: WorkerProcess | None = None
    try:
        broker.start()
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        create_topics(admin_client(broker.bootstrap), load_topic_specs(), prefix)
        messages = synthetic_mix(events, scopes, seed, int(time.time() * 1000) - 60_000)
        load_eps = load(broker.bootstrap, prefix, messages, progress)
        # The raw loop reads the backlog in well under a second, and the machine's speed
        # moves by tens of per cent within minutes: it runs three times, the last two
        # around the pipeline, and the baseline is their median.
        raw_runs = [measure_raw(broker.bootstrap, prefix, events)]
        progress("raw aiokafka", 1, 3)
        bare_eps = measure_faust_bare(broker.bootstrap, prefix, events, progress, timeout_s)
        # the same backlog again, in its own consumer group, with the threshold the
        # pipeline's throughput worker gets
        quix_eps = measure_quix(quix, broker.bootstrap, prefix, events, scratch / "quix",
                                THROUGHPUT_SETTINGS["staleness_thresholds_s"]["book"],
                                progress, timeout_s)

        # The pipeline gets the same events in its own namespace, as a backlog like the
        # two baselines: a fresh worker consumes it, timed from the first reading of its
        # counters that saw events processed (start-up and recovery are not throughput).
        pipeline_prefix = prefix.replace("bench", "benchp", 1)
        create_topics(admin_client(broker.bootstrap), load_topic_specs(), pipeline_prefix)
        load(broker.bootstrap, pipeline_prefix, messages, lambda *_: None)
        raw_runs.append(measure_raw(broker.bootstrap, pipeline_prefix, events))
        progress("raw aiokafka", 2, 3)
        # Throughput is the steady state: a backlog processed late must not turn into
        # thousands of stale-data alerts, so this worker's thresholds are out of reach.
        worker = WorkerProcess(broker.bootstrap, scratch / "worker", "bench-worker",
                               topic_prefix=pipeline_prefix, log_level="warning",
                               broker_engine=broker.engine, **THROUGHPUT_SETTINGS)
        worker.start()
        pipeline_eps, pipeline_eps_per_cpu = measure_pipeline(
            worker, pipeline_prefix, events, progress, timeout_s)
        assert worker.process is not None
        rss = _peak_rss_mb(worker.process.pid)
        worker.stop()
        raw_runs.append(measure_raw(broker.bootstrap, pipeline_prefix, events))
        progress("raw aiokafka", 3, 3)
        raw_eps = statistics.median(raw_runs)

        # Detection latency and the soak: a fresh worker with the default thresholds.
        live_prefix = prefix.replace("bench", "benchl", 1)
        create_topics(admin_client(broker.bootstrap), load_topic_specs(), live_prefix)
        worker = WorkerProcess(broker.bootstrap, scratch / "live", "bench-live",
                               topic_prefix=live_prefix, log_level="warning",
                               broker_engine=broker.engine)
        worker.start().wait_ready(timeout_s=120)
        time.sleep(6.0)  # past the start-up grace in which silence proves nothing
        latencies, latency_load = measure_latency(broker.bootstrap, live_prefix, latency_rate,
                                                  latency_s, 20, progress)
        assert worker.process is not None
        rss = max(rss, _peak_rss_mb(worker.process.pid))
        soak: dict[str, float | int | None] = {}
        if soak_s > 0:
            soak_eps, start_mb, end_mb = measure_soak(
                broker.bootstrap, live_prefix, worker.process.pid, soak_scopes, soak_rate, soak_s,
                progress)
            soak = {"soak_seconds": soak_s, "soak_scopes": soak_scopes,
                    "soak_load_eps": round(soak_eps), "soak_rss_start_mb": round(start_mb, 1),
                    "soak_rss_end_mb": round(end_mb, 1),
                    "soak_rss_growth": round(end_mb / start_mb - 1, 4)}
        return BenchReport(
            events=events, scopes=scopes, nproc=os.cpu_count() or 0, engine=broker.engine,
            kafka_version=broker.version if broker.engine == "kafka" else None,
            load_eps=round(load_eps), raw_eps=round(raw_eps), faust_bare_eps=round(bare_eps),
            quix_eps=round(quix_eps), pipeline_eps=round(pipeline_eps),
            pipeline_eps_per_cpu=round(pipeline_eps_per_cpu),
            ratio_to_raw=round(pipeline_eps / raw_eps, 4),
            ratio_to_faust_bare=round(pipeline_eps / bare_eps, 3),
            ratio_to_quix=round(pipeline_eps / quix_eps, 3),
            latency_p50_ms=_percentile(latencies, 0.5),
            latency_p99_ms=_percentile(latencies, 0.99), latency_samples=len(latencies),
            latency_load_eps=round(latency_load), peak_rss_mb=round(rss, 1),
            **soak,  # type: ignore[arg-type]
            raw_eps_runs=[round(eps) for eps in raw_runs],
        )
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def write_report(report: BenchReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(report), indent=2) + "\n")

