"""Running a Faust worker with a hard stop: a worker whose broker is gone can hang in
shutdown, so after ``shutdown_timeout_s`` it is force-exited."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from typing import Any

import faust

from streams import compiled, framework
from streams.settings import Settings
from streams.topics import admin_client, check_topics, load_topic_specs

log = logging.getLogger(__name__)


class TopicsNotReady(RuntimeError):
    """The broker's topics do not match the spec."""


def ensure_topics_match(settings: Settings) -> None:
    try:
        specs = load_topic_specs(partitions=settings.partitions)
        drift = check_topics(admin_client(settings.kafka_bootstrap), specs,
                             settings.topic_prefix, timeout_s=10.0)
    except Exception as exc:
        hint = (" (the broker refused this principal: see `polymon acls`)"
                if "AUTHORIZATION_FAILED" in str(exc) else "")
        raise TopicsNotReady(f"cannot check the topics on {settings.kafka_bootstrap} as "
                             f"{settings.kafka_sasl_username or 'an anonymous client'}: "
                             f"{exc}{hint}") from exc
    if drift:
        lines = "\n".join(f"  - {d}" for d in drift)
        raise TopicsNotReady(
            f"topics on {settings.kafka_bootstrap} do not match the spec:\n{lines}\n"
            "run `polymon topics create` (or fix the topics) and start the worker again"
        )


class BoundedStopWorker(faust.Worker):
    """A faust.Worker whose stop, once begun, finishes within a deadline (through mode's
    public hooks only: no private method of the worker is overridden)."""

    def __init__(self, *args: Any, shutdown_timeout_s: float, **kwargs: Any) -> None:
        self.shutdown_timeout_s = shutdown_timeout_s
        self._watchdog: threading.Timer | None = None
        super().__init__(*args, **kwargs)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # Faust's terminal spinner sets the root logger to DEBUG so that it can spin on
        # every record: every debug call of aiokafka then builds a LogRecord, a large
        # share of the per-event cost. polymon logs at the level it was given instead.
        self.spinner = None

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        # a supervisor's hang-up (a closed terminal, `systemctl reload` misused, a CI
        # runner) stops the worker as SIGTERM does, not by the default abrupt exit
        self.loop.add_signal_handler(signal.SIGHUP, os.kill, os.getpid(), signal.SIGTERM)

    async def stop(self) -> None:
        # whatever stops the worker (a signal, a crash), the process ends within the bound
        self._arm_watchdog()
        await super().stop()

    def _arm_watchdog(self) -> None:
        if self._watchdog is not None:
            return

        def force_exit() -> None:
            sys.stderr.write(
                f"polymon worker: shutdown took over {self.shutdown_timeout_s}s, forcing exit\n"
            )
            sys.stderr.flush()
            os._exit(3)

        self._watchdog = threading.Timer(self.shutdown_timeout_s, force_exit)
        self._watchdog.daemon = True
        self._watchdog.start()


def tune_gc(thresholds: tuple[int, int, int]) -> None:
    """Collect once, freeze what start-up made (modules, the app: never scanned again),
    and collect the young generations less often (``gc_thresholds``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


def run_worker(settings: Settings) -> None:
    """Check the framework's libraries and the topics, then run the worker until it is
    signalled. Raises FrameworkMismatch (streams.framework.gate) or TopicsNotReady."""
    framework.install(settings)  # before anything connects: the libraries are the right ones
    ensure_topics_match(settings)
    from streams import agents, otel, web  # noqa: F401  (registers agents, timers and views)
    from streams.app import app, topics

    otel.start(settings.otel_exporter_endpoint, settings.worker_id,
               [topic.get_topic_name() for topic in
                (topics.alerts, topics.pauses, topics.incidents, topics.audit)])

    app.conf.datadir.mkdir(parents=True, exist_ok=True)
    tune_gc(settings.gc_thresholds)

    @app.task
    async def say_how_compiled() -> None:
        running = compiled.status()
        log.log(logging.INFO if all(running.values()) else logging.WARNING, "%s",
                compiled.describe())

    worker = BoundedStopWorker(
        app,
        loglevel=settings.log_level,
        shutdown_timeout_s=settings.shutdown_timeout_s,
    )
    worker.execute_from_commandline()
