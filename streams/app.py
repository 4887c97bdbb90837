"""The Faust app and every topic declaration, in one place.

Topic names, partition counts and value schemas come from the topic spec
(ops/topics.toml); this module only binds them to the app. Input topics are read
as raw bytes so that a message that fails to decode is dead-lettered with its exact
bytes instead of killing the stream; output topics encode with the Avro codecs.
"""

from __future__ import annotations

import faust

from streams import compiled
from streams.metrics import Metrics
from streams.settings import get_settings
from streams.topics import load_topic_specs

compiled.install()  # before the hot path's modules below: a stale build of one never runs

from streams import framework, stores  # noqa: E402
from streams.clock import make_clock  # noqa: E402
from streams.codec import Codecs, SchemaCatalog  # noqa: E402
from streams.kafka_security import faust_credentials  # noqa: E402

settings = get_settings()
# Faust, mode, aiokafka and pydantic internals: checked against the exact versions they
# were written for and installed, or the libraries' own paths (framework_patches off)
framework.install(settings)
catalog = SchemaCatalog(registry_url=settings.schema_registry_url)
codecs = Codecs(catalog)
codecs.register_with_faust()
topic_specs = load_topic_specs(partitions=settings.partitions)
metrics = Metrics()
# The one "now" of this worker: wall clock live, the event-time watermark in replay.
clock = make_clock(settings.clock)
# Its reading, bound once: compiled agents read it several times per event, and a method
# looked up on every read (a bound method made and dropped) costs more than the reading.
clock_ms = clock.now_ms

INPUT_TOPICS = ("health.events", "exec.fills", "model.scores", "model.features",
                "model.profiles", "model.evaluations", "ops.commands", "control.pause-acks",
                "exec.trades")


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap.split(",")]


# with the framework patches its consumer delivers input topics in batches
app: faust.App = framework.app_class()(
    settings.group_id,
    broker=_broker_urls(settings.kafka_bootstrap),
    broker_credentials=faust_credentials(settings),
    datadir=str(settings.state_dir / "workers" / settings.group_id / settings.worker_id),
    autodiscover=False,
    key_serializer="raw",
    value_serializer="raw",
    topic_partitions=settings.partitions or 4,
    topic_replication_factor=settings.replication_factor,
    # Decisions count once the broker has them on every in-sync replica (acks=all; the
    # producer is idempotent with the framework patches: streams.framework.producer);
    # one not acknowledged within this is retried until then, and then stops the worker.
    producer_acks=-1,
    producer_request_timeout=settings.producer_delivery_timeout_s,
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
    broker_rebalance_timeout=settings.rebalance_timeout_s,
    # Static membership (KIP-345), opt-in: a worker restarted under the same stable id
    # takes its old place at once, but a static member does not leave the group when it
    # stops, so it suits stable ids (pod names), not the default host-pid.
    consumer_group_instance_id=settings.worker_id if settings.static_membership else None,
    # Batch outputs (alerts, audit, changelogs) instead of one request per message.
    producer_linger_ms=5,
    producer_max_batch_size=256 * 1024,
    consumer_auto_offset_reset="earliest",
    # Bounded fetch batches: big enough to amortise the per-batch work (changelog
    # writes, acks), small enough that a batch is done well within the staleness bounds.
    broker_max_poll_records=settings.max_poll_records,
    web_enabled=True,
    web_host=settings.web_host,
    web_port=settings.web_port,
    web_bind=settings.web_host,
    # announced to the group: where the other workers send fan-out requests
    canonical_url=settings.web_url or f"http://{settings.web_host}:{settings.web_port}",
    table_cleanup_interval=5.0,
    # In-memory tables rebuilt from their changelog topics: no local disk state to lose.
    store=stores.register(),
)


def _declare(name: str) -> faust.TopicT:
    spec = topic_specs[name]
    serializer = "raw" if name in INPUT_TOPICS else f"avro-{spec.schema}"
    return app.topic(
        settings.topic(name),
        partitions=spec.partitions,
        key_type=bytes,
        value_serializer=serializer,
        key_serializer="raw",
        internal=False,
        compacting=spec.compacted or None,
        replicas=settings.replication_factor,
    )


class Topics:
    """Every topic polymon reads or writes, declared once."""

    health_events = _declare("health.events")
    exec_fills = _declare("exec.fills")
    trades = _declare("exec.trades")
    model_scores = _declare("model.scores")
    model_features = _declare("model.features")
    model_profiles = _declare("model.profiles")
    model_evaluations = _declare("model.evaluations")
    ops_commands = _declare("ops.commands")
    alerts = _declare("monitor.alerts")
    incident_inputs = _declare("monitor.incident.inputs")
    incident_scopes = _declare("monitor.incident.scopes")
    pauses = _declare("control.pauses")
    pause_acks = _declare("control.pause-acks")
    incidents = _declare("monitor.incidents")
    rollout = _declare("control.rollout")
    audit = _declare("audit.log")
    heartbeat = _declare("monitor.heartbeat")
    dead_letters = _declare("monitor.deadletter")


topics = Topics
