"""Runtime settings, from the environment (``POLYMON_*``) with sane defaults.

Everything a deployment changes lives here; nothing else reads os.environ.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.acls import AclPrincipals
from streams.control.slos import MAX_ENDANGERED, pause_scope_of
from streams.scopes import ScopeError, validate_scope


class BurnRuleSetting(BaseModel):
    name: str
    long_window_s: int = Field(gt=0)
    short_window_s: int = Field(gt=0)
    burn_rate_threshold: float = Field(gt=0)
    # page: GOV_SLO_BURN, CRITICAL, pauses; ticket: GOV_SLO_BURN_TICKET, WARNING, no pause
    severity: Literal["page", "ticket"] = "page"


class SloSetting(BaseModel):
    """One SLO's declaration (see docs/operator-guide.md, "SLOs")."""

    model_config = {"extra": "forbid"}
    target: float | None = Field(None, gt=0, lt=1, description="unset: slo_default_target")
    owner: str | None = Field(None, min_length=1, max_length=64,
                              pattern=r"^[A-Za-z0-9_.@\-]+$")
    endangers: list[str] = Field(default_factory=list, max_length=MAX_ENDANGERED)

    @field_validator("endangers")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                pause_scope_of(pattern)
            except ScopeError as exc:
                raise ValueError(str(exc)) from None
        return value


class AlertRuleSetting(BaseModel):
    """Hysteresis of one alert rule (see docs/operator-guide.md, "Alert hysteresis")."""

    model_config = {"extra": "forbid"}
    for_s: float = Field(0.0, ge=0, description="pending period before a breach fires")
    keep_firing_for_s: float = Field(
        0.0, ge=0, description="how long within the resolve threshold before it resolves")
    resolve_ratio: float = Field(
        1.0, gt=0, le=1, description="resolve threshold as a ratio of the fire threshold")


def _default_alert_rules() -> dict[str, AlertRuleSetting]:
    execution = AlertRuleSetting(for_s=0.0, keep_firing_for_s=60.0, resolve_ratio=0.8)
    # KL estimated on a window's samples is noisy around the threshold: resolve below
    # 0.8 × it, held for one hop of the default drift window (drift_hop_s)
    drift = AlertRuleSetting(for_s=0.0, keep_firing_for_s=3600.0, resolve_ratio=0.8)
    return {"default": AlertRuleSetting(), "EXEC_SLIPPAGE_BREACH": execution,
            "EXEC_FILL_RATIO_LOW": execution, "RISK_MODEL_DRIFT": drift}


ApiRight = Literal["read", "pause", "resume", "rollback", "promote", "ack", "resolve"]


class ApiTokenSetting(BaseModel):
    """Who a bearer token of the operator API is, and what it may do."""

    model_config = {"extra": "forbid"}
    actor: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@\-]+$")
    rights: list[ApiRight] = Field(default_factory=list)


class RunnerSetting(BaseModel):
    """One trading runner polymon expects acknowledgements from."""

    model_config = {"extra": "forbid"}
    required: bool = Field(False, description="alert (GOV_RUNNER_SILENT) if it never "
                           "acknowledged, not only once its acknowledgements stop")


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


# Credentials: never in config_version (which every envelope carries), logs or answers.
SECRET_SETTINGS = frozenset({
    "api_tokens", "ctl_token", "kafka_sasl_password", "kafka_ssl_key_password", "peer_secret",
})


class Settings(BaseSettings):
    """polymon's settings. Each field is read from ``POLYMON_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="POLYMON_", extra="ignore")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how every polymon client (worker, producer, read model, "
        "admin, replay, produce/consume, PauseGuard) talks to Kafka. PLAINTEXT is for a "
        "local broker only: a deployment sets SASL_SSL (docs/operator-guide.md, Security)",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="the SASL mechanism with SASL_PLAINTEXT or SASL_SSL",
    )
    kafka_sasl_username: str | None = Field(
        None, max_length=256, description="the SASL user (the principal User:<name> that "
        "`polymon acls` grants to)",
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, description="the SASL password; never logged, hashed or answered",
    )
    kafka_ssl_ca_file: Path | None = Field(
        None, description="PEM file of the CA that signed the brokers' certificates (SSL, "
        "SASL_SSL); unset: the system's trust store",
    )
    kafka_ssl_cert_file: Path | None = Field(
        None, description="PEM client certificate for mutual TLS (with kafka_ssl_key_file)",
    )
    kafka_ssl_key_file: Path | None = Field(
        None, description="PEM private key of kafka_ssl_cert_file",
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="password of kafka_ssl_key_file, when it is encrypted",
    )
    broker_engine: Literal["kafka", "embedded"] = Field(
        "kafka", description="the broker behind kafka_bootstrap: kafka (Apache Kafka, or any "
        "broker that expires sessions and long-polls fetches) or embedded (the noida-db "
        "broker of `polymon demo` and `polymon broker --engine embedded`, which turns on "
        "the workarounds for it)",
    )
    framework_patches: bool = Field(
        True, description="the worker's patches of Faust, mode, aiokafka and pydantic "
        "internals (streams.framework: batch delivery, C record unpacking, the embedded "
        "broker's workarounds, records assembled without validation); a worker refuses to "
        "start when the installed versions differ from those they were written for. false: "
        "the libraries' own paths run instead (Faust's per-message delivery), slower",
    )
    no_extensions: bool = Field(
        False, description="true: no native part is used (streams.compiled, read from the "
        "environment as a process starts): the C Avro and record-batch extensions and the "
        "Cython-compiled hot path give way to their pure twins (fastavro, aiokafka, the "
        ".py sources), slower; set at install, nothing native is built",
    )
    acl_principals: AclPrincipals | None = Field(
        None, description="the deployment's Kafka principals, JSON: {\"worker\": "
        "\"User:polymon\", \"runners\": [...], \"producers\": {\"User:feeds\": "
        "[\"health.events\"]}, \"command_writers\": [...]}; `polymon acls` prints (and "
        "with --apply creates) the ACLs they get",
    )
    kafka_jars_dir: Path | None = Field(
        None, description="where `polymon broker --engine kafka` caches Apache Kafka's jars "
        "(resolved once by Maven from ops/kafka/pom.xml); unset: <state_dir>/kafka-jars",
    )
    topic_prefix: str = Field(
        "", description="put in front of every topic name and the consumer group (replay uses one)"
    )
    app_id: str = Field("polymon", description="Faust app id: the consumer group")
    worker_id: str = Field(
        default_factory=_default_worker_id, description="this worker's id: in its heartbeats, "
        "dead letters and logs (and its instance id with static_membership)",
    )
    web_host: str = Field("127.0.0.1", description="address the worker's HTTP server binds")
    web_port: int = Field(6066, ge=0, le=65535, description="worker HTTP port (API, /metrics)")
    web_url: str | None = Field(
        None, description="the URL at which the other workers reach this one (fan-out of "
        "list requests, member checks); unset: http://web_host:web_port, which is wrong "
        "when web_host is 0.0.0.0",
    )
    state_dir: Path = Field(Path(".state"), description="local state: broker data, worker dirs")
    replication_factor: int = Field(1, ge=1, description="replication factor for created topics")
    partitions: int | None = Field(
        None, ge=1, description="override every topic's partition count (replays use 1, so "
        "that the event-time order is total)",
    )
    schema_registry_url: str | None = Field(
        None, description="Confluent Schema Registry URL; unset: ids from schemas/registry.json"
    )
    session_timeout_s: float = Field(
        10.0, gt=0, description="a worker that stops heartbeating to its group for this long "
        "(e.g. killed) loses its partitions to the others",
    )
    static_membership: bool = Field(
        False, description="join the group as a static member with worker_id as instance id "
        "(set with stable worker ids and a stable web URL: a restart then reclaims its "
        "partitions at once; Kafka hands the restarted member its previous assignment, "
        "which names the URL it had, and Faust refuses one naming another URL)",
    )
    evict_dead_members: bool | None = Field(
        None, description="[embedded broker] make a group member that has not answered at "
        "its URL for session_timeout_s leave the group, so the others take its partitions "
        "(the embedded broker never expires a dead member's session); unset: on for the "
        "embedded broker, off for Apache Kafka, whose coordinator expires sessions itself. "
        "On Kafka it would let any worker evict a live peer whose HTTP port it cannot reach. "
        "Needs peer_secret (members prove their id to a signed probe only)",
    )
    member_check_interval_s: float = Field(
        2.0, gt=0, description="[embedded broker] how often a worker checks that the group's "
        "members answer (for evict_dead_members)",
    )
    rebalance_timeout_s: float = Field(
        20.0, gt=0, description="how long a rebalance waits for members to rejoin (a dead "
        "member holds a rebalance up to this long)",
    )
    shutdown_timeout_s: float = Field(
        10.0, gt=0, description="a stopping worker is force-exited after this long"
    )
    monitor_heartbeat_interval_s: float = Field(
        1.0, gt=0, description="how often a worker publishes its own liveness"
    )
    input_stall_s: float = Field(
        10.0, gt=0, description="a worker whose input partition has records waiting and "
        "no progress for this long announces itself unhealthy in its heartbeat (runners' "
        "guards then fail closed)",
    )
    fault_stall_input_file: Path | None = Field(
        None, description="FAULT INJECTION, for tests only (unset in production): while "
        "this file exists the worker stops fetching its input topics, its timers and "
        "heartbeat running on",
    )
    log_level: str = Field(
        "info", description="the worker's log level (debug, info, warning, error)")
    otel_exporter_endpoint: str | None = Field(
        None, pattern=r"^https?://\S+$",
        description="OTLP/HTTP (protobuf) traces endpoint, e.g. http://collector:4318/v1/traces: "
        "a span per decision (alert, pause, incident, audit entry) linked to its cause's "
        "traceparent, exported in the background; unset: off. Needs the otel extra "
        "(pip install 'polymon[otel]'); a worker with it set and the extra missing does not "
        "start",
    )
    clock: Literal["wall", "event"] = Field(
        "wall", description="wall: decide on wall-clock time; event: on the event-time "
        "watermark (replay), so a replay reproduces the same decisions",
    )
    evaluation_interval_s: float = Field(
        0.1, gt=0, description="how often timers look for stale feeds and missed heartbeats"
    )
    staleness_thresholds_s: dict[str, float] = Field(
        default_factory=lambda: {"book": 2.0, "registry": 10.0, "model": 86400.0,
                                 "default": 10.0},
        description="staleness threshold per feed kind, seconds ('default' for other feeds)",
    )
    staleness_overrides_s: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="per scope kind or exact scope: {feed: threshold_s}, e.g. "
        '{"market:m7": {"book": 5}, "market": {"book": 3}}; exact scope wins',
    )
    expected_feeds: dict[str, list[str]] = Field(
        default_factory=dict,
        description='scopes and the feeds that must report, e.g. {"market:m1": ["book"], '
        '"bot:b1": ["heartbeat"]} ("heartbeat": its heartbeats, at '
        "heartbeat_default_interval_s): one that has not reported within its threshold after "
        "the worker took the scope's partition (plus catch_up_grace_s) is stale, so a feed "
        "that never starts is caught",
    )
    catch_up_tolerance_s: float = Field(
        1.0, gt=0, description="a partition whose unprocessed backlog is older than this is "
        "catching up: its scopes are not judged stale until it has caught up",
    )
    catch_up_grace_s: float = Field(
        5.0, ge=0, description="a partition this worker has processed nothing on yet (it "
        "just started, or took the partition over) is not judged stale for this long after "
        "it is first judged here (its backlog comes first)",
    )
    # Each fetch is a round trip to Faust's consumer thread plus the per-fetch bookkeeping
    # (acks, active partitions), so fewer, larger fetches carry more events per second
    # (docs/benchmarks.md). A backlog's batch is
    # still handed over in chunks of delivery.YIELD_EVERY, with the loop turning between.
    max_poll_records: int = Field(
        10_000, ge=1, description="records per fetch from the broker handed to the input "
        "agents (in chunks of 500, the event loop turning between them)",
    )
    idle_fetch_backoff_s: float = Field(
        0.01, ge=0, description="[embedded broker] a consumer whose fetch came back empty "
        "waits this long before the next (the embedded broker does not long-poll); ignored "
        "on Apache Kafka, which holds an empty fetch for fetch.max.wait.ms; 0: off",
    )
    # CPython's default (700, 10, 10) runs a full collection every few seconds once the
    # tables hold 100k scopes: ~9 % of the worker's CPU and pauses of up to 0.5 s, which
    # delay detection. The state is acyclic JSON-like dicts freed by reference counting.
    gc_thresholds: tuple[int, int, int] = Field(
        (10_000, 10, 1_000), description="the worker's gc.set_threshold (objects frozen at "
        "start-up are never scanned again); [700, 10, 10] is CPython's default",
    )
    # A key changed many times within the interval costs one changelog record: at 0.2 s
    # the changelogs cost the worker and the broker a third of the pipeline's time. A
    # crash replays at most this much more input (offsets wait for the flush).
    changelog_flush_interval_s: float = Field(
        1.0, gt=0, description="table changes reach their changelogs, and handled offsets "
        "are acknowledged, at most this often",
    )
    outbox_linger_s: float = Field(
        0.05, ge=0, description="queued re-keyed fills and dead letters are handed to the "
        "producer once this long has passed since the last hand-over (0: after every batch)",
    )
    # Readers of control.pauses keep the newest state per scope: a state re-published
    # unchanged (same state id and times) changes nothing, and heals a publish lost in
    # a crash between the latch's changelog write and the publish.
    pause_republish_interval_s: float = Field(
        30.0, ge=0, description="a worker re-publishes the current state of every pause "
        "latch it owns on partition assignment and this often (0: on assignment only)",
    )
    producer_delivery_timeout_s: float = Field(
        120.0, gt=0, description="the producer retries a message the broker does not "
        "acknowledge (acks=all) for this long; meanwhile the offsets of its cause are not "
        "committed, then the worker stops with an error naming the topic",
    )
    producer_idempotence: bool | None = Field(
        None, description="idempotent producer (no duplicates from the producer's own "
        "retries); unset: on with Apache Kafka, off with the embedded broker (which lacks "
        "InitProducerId). Needs the framework patches",
    )
    # Fault injection for the fault tests only; never set in a deployment.
    fault_crash_before_pause_publish: bool = Field(
        False, description="FAULT INJECTION, tests only: the worker exits (os._exit) right "
        "after a pause latch's change reached its changelog, before the pause is published",
    )
    stale_hold_down_s: float = Field(
        5.0, ge=0, description="a stale-data or heartbeat pause clears after the scope is "
        "healthy again for this long",
    )
    heartbeat_default_interval_s: float = Field(
        5.0, gt=0, description="heartbeat interval assumed when an event does not carry one"
    )
    heartbeat_miss_factor: float = Field(
        3.0, gt=1, description="a heartbeat is missed after interval x this factor"
    )
    max_event_skew_s: float = Field(
        300.0, gt=0, description="events stamped further than this in the future are invalid"
    )
    max_event_age_s: float = Field(
        7 * 86400.0, gt=0, description="events older than this (against the clock) are invalid"
    )
    slo_default_target: float = Field(
        0.995, gt=0, lt=1, description="SLO target of an SLO not named in slo_targets")
    slo_targets: dict[str, float] = Field(
        default_factory=dict, description="target per SLO name, e.g. {\"book-latency\": 0.999}"
    )
    slos: dict[str, SloSetting] = Field(
        default_factory=dict, max_length=256,
        description='SLO declarations: {"ingest": {"target": 0.995, "owner": "data-eng", '
        '"endangers": ["market:*"]}}; a page-level burn pauses the endangered scopes (a '
        "scope, or kind:* as the last segment: market:* pauses global, bot:b1/market:* "
        "pauses bot:b1); the owner wins over the probes' own; a target here wins over "
        "slo_targets",
    )
    slo_burn_rules: list[BurnRuleSetting] | None = Field(
        None, description="multiwindow burn rules; unset: 14.4x 1h/5m, 6x 6h/30m, 1x 3d/6h"
    )
    slo_min_events: int = Field(10, ge=1, description="low-traffic guard per burn window")
    slo_bucket_s: int = Field(
        60, ge=1, description="resolution of SLO counts (windows are sums of buckets)"
    )
    alert_rules: dict[str, AlertRuleSetting] = Field(
        default_factory=_default_alert_rules,
        description="hysteresis per reason code ('default' for the others): "
        '{"EXEC_SLIPPAGE_BREACH": {"for_s": 0, "keep_firing_for_s": 60, "resolve_ratio": '
        "0.8}}: a breach fires after for_s, resolves after keep_firing_for_s within "
        "resolve_ratio × the fire threshold; a re-breach meanwhile is the same episode",
    )
    pause_policies: dict[str, Literal["AUTO_CLEAR", "LATCH"]] = Field(
        default_factory=lambda: {"GOV_SLO_BURN": "LATCH", "EXEC_SLIPPAGE_BREACH": "LATCH"},
        description="pause policy per reason code; pausing reasons not listed: AUTO_CLEAR",
    )
    # --- incidents, operator API, auth ---
    api_tokens: dict[str, ApiTokenSetting] = Field(
        default_factory=dict,
        description='bearer tokens of the operator API: {"<token>": {"actor": "alice", '
        '"rights": ["pause","resume","rollback","promote","ack","resolve"]}}; '
        "no tokens: every mutation is refused (401)",
    )
    api_read_requires_token: bool = Field(
        False, description="GET /api/* needs a token with the 'read' right (default: open)"
    )
    peer_secret: SecretStr | None = Field(
        None, min_length=32, description="shared by every worker of the deployment: signs "
        "the requests workers send each other (list fan-out, member checks), so no caller's "
        "token is ever forwarded; needed with api_read_requires_token and for the member "
        "check. Unset: fan-out requests go unsigned and /healthz names no member id",
    )
    peer_urls: list[str] | None = Field(
        None, description="the workers' URLs (their web_url): fan-out and member checks go "
        "only to announced URLs in this list; unset: to any http(s) URL announced in the group",
    )
    api_command_wait_s: float = Field(
        3.0, ge=0, le=30, description="how long a mutation waits for its outcome in audit.log "
        "before answering 202 with the outcome still pending",
    )
    api_fanout_timeout_s: float = Field(
        2.0, gt=0, description="timeout of a request to another worker when merging views"
    )
    audit_tail: int = Field(
        1000, ge=0, description="recent audit.log entries each worker keeps for the API"
    )
    incident_timeline_limit: int = Field(
        200, ge=10, description="timeline entries kept per incident (the opening one stays)"
    )
    incident_retention_s: float = Field(
        7 * 24 * 3600, ge=0, description="a resolved incident with no alert still firing is "
        "kept this long after its last change, then tombstoned on the compacted "
        "monitor.incidents (compaction drops it) and forgotten; 0: kept forever",
    )
    ctl_url: str = Field(
        "http://127.0.0.1:6066", description="the worker `polymon ctl` talks to"
    )
    ctl_token: str | None = Field(None, description="the bearer token `polymon ctl` sends")

    @field_validator("gc_thresholds")
    @classmethod
    def _gc_thresholds_are_positive(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(v < 1 for v in value):
            raise ValueError("every generation's threshold must be >= 1 (0 would switch the "
                             f"collector off), got {list(value)}")
        return value

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Settings:
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_") and not (
                self.kafka_sasl_username and self.kafka_sasl_password
                and self.kafka_sasl_password.get_secret_value()):
            raise ValueError(f"kafka_security_protocol {protocol} needs kafka_sasl_username "
                             "and kafka_sasl_password")
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError("kafka_ssl_cert_file and kafka_ssl_key_file go together "
                             "(mutual TLS needs both)")
        if self.evict_dead_members and self.peer_secret is None:
            raise ValueError("evict_dead_members needs peer_secret: the member check reads "
                             "each member's id from a signed request")
        if self.api_read_requires_token and self.peer_secret is None:
            raise ValueError("api_read_requires_token needs peer_secret: workers answer "
                             "each other's list requests on it, never on a caller's token")
        uses_tls = protocol in ("SSL", "SASL_SSL")
        for name in ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file"):
            path = getattr(self, name)
            if path is not None and not uses_tls:
                raise ValueError(f"{name} is set but kafka_security_protocol is {protocol}: "
                                 "use SSL or SASL_SSL")
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self

    @field_validator("expected_feeds")
    @classmethod
    def _expected_scopes_are_scopes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for scope, feeds in value.items():
            try:
                validate_scope(scope)
            except ScopeError as exc:
                raise ValueError(f"expected_feeds: {exc}") from None
            if not feeds or any(not feed for feed in feeds):
                raise ValueError(f"expected_feeds: {scope} needs a list of feed names")
        return value

    @field_validator("runners")
    @classmethod
    def _runner_ids_are_scope_ids(cls, value: dict[str, RunnerSetting]
                                  ) -> dict[str, RunnerSetting]:
        for runner in value:
            try:
                validate_scope(f"runner:{runner}")
            except ScopeError as exc:
                raise ValueError(f"runners: runner id {runner[:80]!r} is not a scope id: "
                                 f"{exc}") from None
        return value

    @field_validator("api_tokens")
    @classmethod
    def _tokens_are_long_enough(cls, value: dict[str, ApiTokenSetting]
                                ) -> dict[str, ApiTokenSetting]:
        short = [grant.actor for token, grant in value.items() if len(token) < 16]
        if short:
            raise ValueError(f"tokens must be at least 16 characters (actors: {short})")
        return value

    # --- execution, drift, canary, rollout ---
    input_partitioner: Literal["consistent", "murmur2"] = Field(
        "murmur2", description="how producers of the input topics map keys to partitions: "
        "murmur2 = the Java client's, aiokafka's and polymon's own (librdkafka with "
        "partitioner=murmur2_random); consistent = librdkafka's default (CRC-32). Re-keyed "
        "streams (fills by bot and by model) follow it",
    )
    exec_evaluation_interval_s: float = Field(
        5.0, gt=0, description="how often execution windows are re-evaluated without fills "
        "(breaches resolve as bad fills age out)",
    )
    exec_tumbling_window_s: int = Field(
        300, gt=0, description="tumbling window of fill ratio and slippage error"
    )
    exec_hopping_window_s: int = Field(
        900, gt=0, description="hopping window of fill ratio and slippage error"
    )
    exec_hop_s: int = Field(60, gt=0, description="how far the hopping window advances")
    exec_min_fills: int = Field(
        20, ge=1, description="a window with fewer fills is unknown: it keeps the execution "
        "alert's state"
    )
    exec_slippage_rmse_bound_bps: float | None = Field(
        25.0, gt=0, description="EXEC_SLIPPAGE_BREACH when the slippage error RMSE exceeds "
        "this (bps); null: off",
    )
    exec_slippage_mean_bound_bps: float | None = Field(
        None, gt=0, description="EXEC_SLIPPAGE_BREACH when |mean slippage error| exceeds this "
        "(bps); null: off",
    )
    exec_fill_ratio_min: float | None = Field(
        0.5, ge=0, le=1, description="EXEC_FILL_RATIO_LOW below this fill ratio; null: off"
    )
    exec_pause_scope_kinds: list[str] = Field(
        default_factory=lambda: ["market", "bot"],
        description="scope kinds an execution breach pauses (through their pause latch, "
        "policy from pause_policies); other kinds only alert",
    )
    divergence_grace_s: float = Field(
        5.0, ge=0, description="RISK_STATE_DIVERGENCE when a fill or order intent on "
        "exec.fills comes this long (its event time) after a pause covering its bot and "
        "market: the time a pause may take to reach the runners",
    )
    runners: dict[str, RunnerSetting] = Field(
        default_factory=dict, description="the trading runners polymon knows of, by runner "
        "id (a PauseGuard's runner_id), e.g. {\"r1\": {\"required\": true}}: a required one "
        "that never acknowledged is GOV_RUNNER_SILENT; a listed one that never did is shown "
        "as never acknowledged; unlisted ones appear once they acknowledge",
    )
    pause_ack_bound_s: float = Field(
        3.0, gt=0, description="GOV_PAUSE_NOT_APPLIED when a runner's acknowledgements have "
        "not passed a control.pauses state published this long ago",
    )
    runner_ack_timeout_s: float = Field(
        10.0, gt=0, description="GOV_RUNNER_SILENT when a runner that acknowledged before (or "
        "a required one) sent no acknowledgement for this long (runners ack every second)",
    )
    drift_threshold: float = Field(
        0.20, ge=0, description="RISK_MODEL_DRIFT when max KL(recent ‖ training) reaches this"
    )
    drift_window_s: int = Field(86400, gt=0, description="hopping window of recent features")
    drift_hop_s: int = Field(3600, gt=0, description="how far the drift window advances")
    drift_min_samples: int = Field(
        200, ge=1, description="feature samples a drift evaluation needs in its window"
    )
    canary_window_s: int = Field(3600, gt=0, description="the fixed canary comparison window")
    canary_alpha: float = Field(
        0.05, gt=0, le=0.5, description="one-sided significance level per leading metric "
        "(one test per metric and window, at the window's end)"
    )
    canary_margins: dict[str, float] = Field(
        default_factory=lambda: {"brier": 0.01, "slippage_abs_error_bps": 0.5,
                                 "fill_ratio": 0.02},
        description="non-inferiority margin per leading metric, in its unit: a canary "
        "worse than the baseline by less than this is 'not worse' (eligible when shown); "
        "worse by more, shown, is a regression; metrics not listed: 0",
    )
    canary_min_samples: int = Field(30, ge=1, description="samples per cohort for a verdict")
    canary_max_samples: int = Field(
        2000, ge=8, description="samples kept per window, metric and cohort (uniform "
        "bottom-k sample by id hash)",
    )
    canary_test: Literal["mannwhitney", "welch"] = Field(
        "mannwhitney", description="the one-sided two-sample test"
    )
    canary_leading_metrics: dict[str, Literal["lower_is_better", "higher_is_better"]] = Field(
        default_factory=lambda: {"brier": "lower_is_better",
                                 "slippage_abs_error_bps": "lower_is_better"},
        description="metric → direction; canary shown worse than the baseline by more than "
        "the metric's margin on any of them = regressed, promotion to LIVE needs each "
        "shown not worse (promote_eligible). From model.scores by metric name; from fills: "
        "slippage_abs_error_bps, fill_ratio",
    )
    canary_evaluation_interval_s: float = Field(
        1.0, gt=0, description="how often canary verdicts are recomputed"
    )
    rollout_safe_stage: Literal["REPLAY", "SHADOW", "PAPER", "CANARY"] | None = Field(
        None, description="where an automatic rollback goes; unset: one stage down"
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {value!r}")
        return value

    @property
    def evicts_dead_members(self) -> bool:
        """Whether this worker makes silent group members leave (embedded broker only,
        unless set explicitly). Never without peer_secret: a member that cannot prove who
        it is to an unsigned probe would look dead."""
        if self.peer_secret is None:
            return False
        if self.evict_dead_members is None:
            return self.broker_engine == "embedded"
        return self.evict_dead_members

    @property
    def idempotent_producer(self) -> bool:
        """Whether the worker's producer is idempotent (``producer_idempotence``)."""
        if self.producer_idempotence is None:
            return self.broker_engine == "kafka"
        return self.producer_idempotence

    @property
    def embedded_broker_workarounds(self) -> bool:
        """The fetcher's idle backoff and the rejoin on an empty assignment: for the
        embedded broker only."""
        return self.broker_engine == "embedded"

    @property
    def jars_cache(self) -> Path:
        return self.kafka_jars_dir or self.state_dir / "kafka-jars"

    def staleness_threshold_s(self, scope: str, feed: str) -> float:
        """Exact scope override, then the scope's own kind, then the feed default."""
        leaf_kind = scope.rsplit("/", 1)[-1].split(":", 1)[0]
        for override in (self.staleness_overrides_s.get(scope),
                         self.staleness_overrides_s.get(leaf_kind)):
            if override and feed in override:
                return override[feed]
        return self.staleness_thresholds_s.get(feed, self.staleness_default_s)

    @property
    def staleness_default_s(self) -> float:
        """The threshold of a feed that has none of its own."""
        return self.staleness_thresholds_s.get("default", 10.0)

    def slo_target(self, slo: str) -> float:
        declared = self.slos.get(slo)
        if declared is not None and declared.target is not None:
            return declared.target
        return self.slo_targets.get(slo, self.slo_default_target)

    def slo_owner(self, slo: str) -> str | None:
        """The declared owner of ``slo`` (None: the probes' own)."""
        declared = self.slos.get(slo)
        return declared.owner if declared is not None else None

    def alert_rule(self, reason_code: str) -> AlertRuleSetting:
        """The hysteresis of ``reason_code``'s alerts."""
        rule = self.alert_rules.get(reason_code) or self.alert_rules.get("default")
        return rule or AlertRuleSetting()

    def pause_policy(self, reason_code: str) -> str:
        return self.pause_policies.get(reason_code, "AUTO_CLEAR")

    @property
    def group_id(self) -> str:
        return f"{self.topic_prefix}{self.app_id}"

    def topic(self, name: str) -> str:
        """The topic name as it exists on the broker (prefix applied)."""
        return f"{self.topic_prefix}{name}"

    @cached_property
    def config_version(self) -> str:
        """Short hash of the settings that shape decisions, stamped on every envelope."""
        decisive = self.model_dump(mode="json", exclude={
            "worker_id", "web_host", "web_port", *SECRET_SETTINGS})
        digest = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()
        return digest[:12]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
