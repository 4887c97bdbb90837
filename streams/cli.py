"""`polymon`: the command line. Thin: each command parses, calls a module, reports."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from streams import compiled
from streams.settings import Settings

compiled.install()  # before a command imports the hot path: a stale build of it never runs

cli = typer.Typer(
    name="polymon", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Monitoring, incident response and rollout control for a prediction-market "
         "trading platform, on Kafka.",
)
topics_cli = typer.Typer(no_args_is_help=True, help="Create and check the topics of the spec.")
cli.add_typer(topics_cli, name="topics")

from streams.ctl import ctl_cli  # noqa: E402  (the operator's commands, over the API)

cli.add_typer(ctl_cli, name="ctl")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic ValidationError: a bad POLYMON_* variable
        err.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from exc


def _fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def _interrupt(signum: int, frame: object) -> None:
    # the command's own finally stops what it started, by PID and bounded; a second
    # signal must not cut that short
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP (a supervisor, `timeout`, a closed terminal) stop a command that
    starts processes as Ctrl-C does. Its children also get SIGKILL from the kernel if it
    dies without stopping them (streams.processes.die_with_parent)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)


@cli.command()
def broker(
    engine: Annotated[str, typer.Option(
        help="kafka: Apache Kafka in KRaft mode (needs Java 17+; Maven on first use to "
             "fetch its jars); embedded: the noida-db broker (no Java)")] = "embedded",
    port: Annotated[int, typer.Option(help="Kafka port; 0 picks a free one")] = 9092,
    data_dir: Annotated[Path | None, typer.Option(
        help="data dir (default: <state_dir>/broker or <state_dir>/kafka)")] = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    fetch_only: Annotated[bool, typer.Option(
        "--fetch-only", help="(kafka) resolve and cache Apache Kafka's jars, then exit")]
    = False,
) -> None:
    """Run a local broker until Ctrl-C, SIGTERM or SIGHUP; print its bootstrap address."""
    from streams.devtools.broker import ENGINES, BrokerError, make_broker

    if engine not in ENGINES:
        raise _fail(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}",
                    EXIT_BAD_INPUT)
    if not 0 <= port <= 65535:
        raise _fail(f"--port must be 0..65535, got {port}", EXIT_BAD_INPUT)
    settings = _settings()
    if fetch_only:
        if engine != "kafka":
            raise _fail("--fetch-only is for --engine kafka (the embedded broker ships in "
                        "its wheel)", EXIT_BAD_INPUT)
        from streams.devtools.kafka_broker import kafka_jars, kafka_version

        try:
            libs = kafka_jars(settings.jars_cache, quiet=False)
        except BrokerError as exc:
            raise _fail(str(exc)) from exc
        out.print(f"Apache Kafka {kafka_version()}: {len(list(libs.glob('*.jar')))} jars "
                  f"in {libs}", highlight=False)
        return
    default_dir = settings.state_dir / ("broker" if engine == "embedded" else "kafka")
    running = make_broker(engine, data_dir or default_dir, port=port,  # type: ignore[arg-type]
                          host=host, jars_cache=settings.jars_cache)
    _stop_on_signals()  # before anything starts: a signal then must still stop it
    try:
        if engine == "kafka":
            err.print("starting Apache Kafka (the first start fetches its jars with Maven)")
        running.start()
        what = "Apache Kafka " + running.version if engine == "kafka" else "embedded broker"
        out.print(f"{what} ready at [bold]{running.bootstrap}[/bold] "
                  f"(data: {running.data_dir})")
        out.print(f"export POLYMON_KAFKA_BOOTSTRAP={running.bootstrap}", highlight=False)
        out.print(f"export POLYMON_BROKER_ENGINE={engine}", highlight=False)
        sys.stdout.flush()
        while running.running:
            time.sleep(0.5)
        raise _fail("the broker exited unexpectedly (its log is in "
                    f"{running.data_dir})")
    except BrokerError as exc:
        raise _fail(str(exc)) from exc
    except KeyboardInterrupt:
        out.print("stopping broker")
    finally:
        running.stop()


@topics_cli.command("create")
def topics_create() -> None:
    """Create every topic of the spec that is missing (idempotent)."""
    from streams.topics import admin_client, create_topics, load_topic_specs

    settings = _settings()
    try:
        specs = load_topic_specs(partitions=settings.partitions)
        outcome = create_topics(admin_client(settings.kafka_bootstrap), specs,
                                settings.topic_prefix, settings.replication_factor)
    except Exception as exc:
        raise _fail(f"cannot create topics on {settings.kafka_bootstrap}: {exc}") from exc
    for name, what in outcome.items():
        out.print(f"{what:8} {name}", highlight=False)
    created = sum(1 for what in outcome.values() if what == "created")
    out.print(f"{created} created, {len(outcome) - created} already existed")


@topics_cli.command("check")
def topics_check() -> None:
    """Compare the broker's topics with the spec; exit 1 on any drift."""
    from streams.topics import admin_client, check_topics, load_topic_specs

    settings = _settings()
    try:
        specs = load_topic_specs(partitions=settings.partitions)
        drift = check_topics(admin_client(settings.kafka_bootstrap), specs,
                             settings.topic_prefix)
    except Exception as exc:
        raise _fail(f"cannot check topics on {settings.kafka_bootstrap}: {exc}") from exc
    if drift:
        for problem in drift:
            err.print(f"drift: {problem}", highlight=False)
        raise typer.Exit(EXIT_FAILED)
    out.print("all topics match the spec")


@topics_cli.command("list")
def topics_list() -> None:
    """Print the topic spec."""
    from streams.topics import load_topic_specs

    settings = _settings()
    for spec in load_topic_specs(partitions=settings.partitions).values():
        out.print(f"{settings.topic(spec.name):24} partitions={spec.partitions} "
                  f"cleanup={spec.cleanup:7} key={spec.key:12} schema={spec.schema}",
                  highlight=False)


@cli.command()
def acls(
    apply: Annotated[bool, typer.Option(
        "--apply", help="create them on the broker (the admin client of POLYMON_KAFKA_*: "
        "a principal allowed to alter ACLs)")] = False,
) -> None:
    """Print the deployment's Kafka ACLs, from POLYMON_ACL_PRINCIPALS (--apply: create
    them). Only the worker writes pauses, alerts, incidents, rollout, audit and heartbeat;
    runners only read pauses and heartbeats; producers write only their input topics."""
    from streams.acls import AclError, apply_acls, deployment_acls
    from streams.topics import admin_client, load_topic_specs

    settings = _settings()
    if settings.acl_principals is None:
        raise _fail("no principals: set POLYMON_ACL_PRINCIPALS, e.g. "
                    '\'{"worker": "User:polymon", "runners": ["User:runner"], '
                    '"producers": {"User:feeds": ["health.events"]}}\' '
                    "(docs/operator-guide.md, Security)", EXIT_BAD_INPUT)
    try:
        wanted = deployment_acls(load_topic_specs(), settings.topic_prefix,
                                 settings.group_id, settings.acl_principals)
    except AclError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from exc
    for acl in wanted:
        out.print(str(acl), highlight=False, markup=False)
    if not apply:
        out.print(f"{len(wanted)} ACLs (not applied: --apply creates them)", highlight=False)
        return
    try:
        apply_acls(admin_client(settings.kafka_bootstrap), wanted)
    except AclError as exc:
        raise _fail(f"on {settings.kafka_bootstrap}: {exc}") from exc
    out.print(f"{len(wanted)} ACLs applied on {settings.kafka_bootstrap}", highlight=False)


@cli.command()
def worker(
    web_port: Annotated[int | None, typer.Option(help="HTTP port (POLYMON_WEB_PORT)")] = None,
    worker_id: Annotated[str | None, typer.Option(help="worker id (POLYMON_WORKER_ID)")] = None,
) -> None:
    """Run a polymon Faust worker (refuses to start while topics drift from the spec)."""
    if web_port is not None:
        os.environ["POLYMON_WEB_PORT"] = str(web_port)
    if worker_id is not None:
        os.environ["POLYMON_WORKER_ID"] = worker_id
    from streams.framework.gate import FrameworkMismatch
    from streams.otel import OtelUnavailable
    from streams.worker import TopicsNotReady, run_worker

    settings = _settings()
    try:
        run_worker(settings)
    except TopicsNotReady as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from exc
    except (FrameworkMismatch, OtelUnavailable) as exc:
        raise _fail(str(exc)) from exc


def _topic_spec(topic: str):  # type: ignore[no-untyped-def]
    from streams.topics import load_topic_specs

    specs = load_topic_specs()
    if topic not in specs:
        raise _fail(f"unknown topic {topic!r}; topics: {', '.join(specs)}", EXIT_BAD_INPUT)
    return specs[topic]


@cli.command()
def produce(
    topic: Annotated[str, typer.Argument(help="topic name from the spec, e.g. health.events")],
) -> None:
    """Read JSON lines on stdin, validate each against the topic's schema, send them.

    All or nothing: if any line is invalid, nothing is sent and every problem is listed.
    """
    from streams.codec import Codecs, SchemaCatalog
    from streams.console import InputError, encode_json_lines, kafka_producer, send_all

    settings = _settings()
    spec = _topic_spec(topic)
    codec = Codecs(SchemaCatalog(registry_url=settings.schema_registry_url))[spec.schema]
    try:
        messages = encode_json_lines(sys.stdin, spec, codec)
    except InputError as exc:
        for problem in exc.problems:
            err.print(f"[red]invalid:[/red] {problem}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    try:
        sent = send_all(kafka_producer(settings.kafka_bootstrap), settings.topic(topic), messages)
    except Exception as exc:
        raise _fail(f"sending to {settings.topic(topic)}: {exc}") from exc
    err.print(f"sent {sent} records to {settings.topic(topic)}", highlight=False)


@cli.command()
def consume(
    topic: Annotated[str, typer.Argument(help="topic name from the spec")],
    from_beginning: Annotated[bool, typer.Option("--from-beginning")] = False,
    max_messages: Annotated[int | None, typer.Option("--max", min=1)] = None,
    timeout: Annotated[float, typer.Option(help="stop after this many idle seconds")] = 5.0,
) -> None:
    """Print the topic's records as JSON lines (undecodable ones are reported on stderr)."""
    from streams.codec import CodecError, Codecs, SchemaCatalog
    from streams.console import read_topic, to_json_line

    settings = _settings()
    spec = _topic_spec(topic)
    codec = Codecs(SchemaCatalog(registry_url=settings.schema_registry_url))[spec.schema]
    undecodable = 0
    try:
        for message in read_topic(settings.kafka_bootstrap, settings.topic(topic),
                                  from_beginning, max_messages, timeout):
            try:
                record = codec.decode_record(message.value)
            except (CodecError, ValueError) as exc:
                undecodable += 1
                err.print(f"partition {message.partition} offset {message.offset}: {exc}",
                          highlight=False)
                continue
            print(to_json_line(record), flush=True)
    except Exception as exc:
        raise _fail(f"reading {settings.topic(topic)}: {exc}") from exc
    if undecodable:
        err.print(f"{undecodable} undecodable messages skipped")


def _decisive_env() -> dict[str, str]:
    """This process's POLYMON_* settings that shape decisions, for a replay worker to
    decide as live did (connection, naming and clock settings are the replay's own)."""
    own = {"KAFKA_BOOTSTRAP", "TOPIC_PREFIX", "WORKER_ID", "WEB_PORT", "WEB_HOST", "STATE_DIR",
           "CLOCK", "PARTITIONS"}
    return {name.removeprefix("POLYMON_").lower(): value for name, value in os.environ.items()
            if name.startswith("POLYMON_") and name.removeprefix("POLYMON_") not in own}


@cli.command()
def replay(
    from_: Annotated[str, typer.Option("--from", help="start: offset or ISO-8601 time")],
    to: Annotated[str, typer.Option(help="end (exclusive): offset or ISO-8601 time")],
    topics: Annotated[list[str] | None, typer.Option(
        "--topics", help="input topics to replay (repeat; default: all inputs)")] = None,
    prefix: Annotated[str | None, typer.Option(
        help="replay namespace (default: replay-<UTC time>.)")] = None,
) -> None:
    """Re-run the pipeline over a recorded window in its own namespace and compare its
    alerts, pauses and incidents with the live ones (exit 1 on differences)."""
    from datetime import UTC, datetime

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from streams.replay import INPUT_TOPICS, ReplayError, parse_bound, run_replay

    settings = _settings()
    target = prefix or f"replay-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}."
    if target == settings.topic_prefix:
        raise _fail("the replay prefix must differ from the live prefix", EXIT_BAD_INPUT)
    _stop_on_signals()
    try:
        start, end = parse_bound(from_), parse_bound(to)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=err, transient=True) as progress:
            task = progress.add_task("replaying", total=None)
            run = run_replay(
                settings.kafka_bootstrap, settings.topic_prefix, target,
                list(topics or INPUT_TOPICS), start, end, settings.state_dir,
                on_stage=lambda text: progress.console.print(text, highlight=False),
                on_progress=lambda done, total: progress.update(task, completed=done,
                                                                total=total),
                worker_settings=_decisive_env(),
            )
    except ReplayError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from exc
    except KeyboardInterrupt as exc:
        raise _fail("replay interrupted; its worker was stopped", 130) from exc
    except Exception as exc:
        raise _fail(f"replay failed: {exc}") from exc
    comparison = run.comparison
    out.print(f"replayed {run.copied} messages into {run.prefix}*")
    for kind, matched in comparison.matched.items():
        live_only, replay_only = comparison.only_live[kind], comparison.only_replay[kind]
        out.print(f"{kind:18} matched {matched:5}  only live {len(live_only):4}  "
                  f"only replay {len(replay_only):4}", highlight=False)
        for ident, text in live_only.items():
            out.print(f"  - only live:   {ident}  {text}", highlight=False)
        for ident, text in replay_only.items():
            out.print(f"  + only replay: {ident}  {text}", highlight=False)
    if comparison.identical:
        out.print("replay reproduces the live decisions exactly")
        return
    out.print("[red]replay differs from live[/red] (listed above)")
    raise typer.Exit(EXIT_FAILED)


@cli.command()
def demo(
    duration: Annotated[float, typer.Option(min=20, help="seconds of synthetic trading")] = 60,
    seed: Annotated[int, typer.Option(help="random seed of the synthetic system")] = 1,
    workers: Annotated[int, typer.Option(min=1, max=2, help="polymon workers")] = 2,
    keep_running: Annotated[bool, typer.Option(help="leave the stack up until Ctrl-C")] = False,
) -> None:
    """Broker, topics, workers and a synthetic trading system with scripted faults; ends
    with a summary of every alert, pause, incident and rollout decision (exit 1 when a
    fault went undetected)."""
    from streams.devtools.demo import run_demo

    _stop_on_signals()
    raise typer.Exit(run_demo(duration, seed, workers, keep_running, out))


@cli.command()
def bench(
    events: Annotated[int, typer.Option(min=1000, help="events in the throughput phases")]
    = 200_000,
    scopes: Annotated[int, typer.Option(min=1, help="distinct market scopes")] = 5_000,
    report: Annotated[Path | None, typer.Option(help="write the JSON report here")] = None,
    latency_rate: Annotated[int, typer.Option(help="events/s during the latency phase")]
    = 10_000,
    latency_seconds: Annotated[float, typer.Option(help="length of the latency phase")] = 20.0,
    soak_seconds: Annotated[float, typer.Option(
        min=0, help="memory soak after the other phases (0: none; the issue's check is 600)")]
    = 0.0,
    soak_scopes: Annotated[int, typer.Option(min=1, help="distinct scopes in the soak")]
    = 100_000,
    soak_rate: Annotated[int, typer.Option(min=1, help="events/s during the soak")] = 5_000,
    engine: Annotated[str, typer.Option(
        help="the broker to start: kafka (Apache Kafka in KRaft mode; Java 17+, Maven on "
             "first use) or embedded (noida-db)")] = "embedded",
    quix_env: Annotated[Path | None, typer.Option(
        help="where the quixstreams peer's virtualenv is made on first use (pip) and kept "
             "(default: <state_dir>/bench-quix)")] = None,
    prepare_only: Annotated[bool, typer.Option(
        "--prepare-only", help="make the quixstreams peer's virtualenv (and with --engine "
        "kafka cache Kafka's jars), then exit: nothing is fetched during a run after")] = False,
) -> None:
    """Throughput of the pipeline vs a raw aiokafka loop, a bare Faust agent and a minimal
    quixstreams application on the same data, detection latency under load and peak RSS,
    on a fresh broker of --engine."""
    import json
    from dataclasses import asdict

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from streams.devtools.bench import BenchError, run_bench, write_report
    from streams.devtools.broker import ENGINES, BrokerError
    from streams.worker_process import WorkerError

    if engine not in ENGINES:
        raise _fail(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}",
                    EXIT_BAD_INPUT)
    settings = _settings()
    if prepare_only:
        from streams.devtools.bench import quix_python

        try:
            python = quix_python(quix_env or settings.state_dir / "bench-quix")
            if engine == "kafka":
                from streams.devtools.kafka_broker import kafka_jars
                kafka_jars(settings.jars_cache)
        except (BenchError, BrokerError) as exc:
            raise _fail(f"bench: {exc}") from exc
        out.print(f"the quixstreams peer runs with {python}", highlight=False)
        return
    _stop_on_signals()
    with Progress(TextColumn("{task.description:14}"), BarColumn(), MofNCompleteColumn(),
                  console=err, transient=True) as progress:
        tasks: dict[str, int] = {}

        def advance(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done, total=total)

        try:
            result = run_bench(events, scopes, settings.state_dir, advance, latency_rate,
                               latency_seconds, soak_s=soak_seconds, soak_scopes=soak_scopes,
                               soak_rate=soak_rate, engine=engine,  # type: ignore[arg-type]
                               jars_cache=settings.jars_cache, quix_env=quix_env)
        except (BenchError, BrokerError, WorkerError, TimeoutError) as exc:
            raise _fail(f"bench: {exc}") from exc
        except KeyboardInterrupt as exc:
            raise _fail("bench interrupted; what it started was stopped", 130) from exc
    figures = asdict(result)
    for name, value in figures.items():
        out.print(f"{name:22} {value}", highlight=False)
    if report is not None:
        write_report(result, report)
        out.print(f"report written to {report}")
    else:
        out.print(json.dumps(figures))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
