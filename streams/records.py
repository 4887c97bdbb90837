"""Python-side records mirroring the Avro schemas in schemas/ (the contract).

Avro checks types; these models add what Avro cannot say (scope grammar, sizes
that must not be negative, ...). tests/unit/test_records.py proves that every model
has exactly its schema's fields and that every record round-trips.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from streams import compiled
from streams.framework import pydantic_fields
from streams.reason_codes import Severity
from streams.scopes import SCOPE_ID, validate_scope

Scope = Annotated[str, AfterValidator(validate_scope)]
# Every string from outside (the input topics, operator commands) has a bound: ids are
# message keys, labels and log fields everywhere. A record over a bound is dead-lettered
# with its bytes and the reason, never processed.
MAX_ID = 128
MAX_TEXT = 500
MAX_ENTRIES = 512  # attributes of an event, features of a sample or a profile
MAX_FOLLOW_UPS = 20  # of an incident's review
# the characters no free text carries: controls, and the bidi controls that make text read
# otherwise than it is (the operator API refuses the same)
UNPRINTABLE = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID)]
Name = Annotated[str, Field(max_length=MAX_ID)]
# the id part of a scope (market:<id>, bot:<id>, model:<id>), which keys and scopes are made of
ScopeId = Annotated[str, Field(pattern=f"^{SCOPE_ID}$")]
Text = Annotated[str, Field(max_length=MAX_TEXT, pattern=f"^[^{UNPRINTABLE}]*$")]
Actor = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@\-]{1,64}$")]
MAX_LONG = 2**63 - 1  # Avro long
NonNegativeLong = Annotated[int, Field(ge=0, le=MAX_LONG)]
EpochMillis = Annotated[int, Field(ge=0, le=MAX_LONG)]
# W3C trace context (https://www.w3.org/TR/trace-context/): ids as lowercase hex
TraceId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
SpanId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
MAX_CAUSE_EVENTS = 16
# <topic>/<partition>@<offset> of an input record
CauseEvent = Annotated[str, Field(min_length=1, max_length=300)]


class Record(BaseModel):
    """A record of one Avro schema. ``AVRO_NAME`` is the schema's record name."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)
    AVRO_NAME: ClassVar[str]

    def to_avro(self) -> dict[str, Any]:
        """The dict fastavro writes (enums as their symbols)."""
        return self.model_dump(mode="json")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Attribute reads of a record with neither private attributes nor extras skip
        pydantic's __getattr__ hook (streams.framework.pydantic_fields)."""
        super().__pydantic_init_subclass__(**kwargs)
        pydantic_fields.plain_attribute_reads(cls)

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Record:
        """The record of a datum decoded with this record's own schema. The datum is the
        caller's no more: it may become the record's fields."""
        return cls.model_validate(datum)


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class HealthEventKind(StrEnum):
    HEARTBEAT = "HEARTBEAT"
    DATA_UPDATE = "DATA_UPDATE"
    SLO_PROBE = "SLO_PROBE"


class HealthEvent(Record):
    """Input records (this one, FillEvent, ModelScore, FeatureSample) check a decoded
    datum against their constraints in plain code and assemble the model
    (streams/assembly.py); anything that fails a check goes through pydantic, which
    accepts it or says precisely why not. tests/unit/test_records.py checks that both
    ways agree."""

    AVRO_NAME = "HealthEvent"
    event_id: Id
    scope: Scope
    kind: HealthEventKind
    source: Name
    event_time_ms: EpochMillis
    feed: Name | None = None
    sequence: NonNegativeLong | None = None
    slo: Name | None = None
    owner: Name | None = None
    healthy: bool | None = None
    heartbeat_interval_ms: Annotated[int, Field(gt=0)] | None = None
    attributes: dict[Name, Annotated[str, Field(max_length=MAX_TEXT)]] = Field(
        default_factory=dict, max_length=MAX_ENTRIES)

    @model_validator(mode="after")
    def _kind_fields(self) -> HealthEvent:
        if self.kind is HealthEventKind.DATA_UPDATE and not self.feed:
            raise ValueError("feed: required for a DATA_UPDATE event")
        if self.kind is HealthEventKind.SLO_PROBE and (not self.slo or self.healthy is None):
            raise ValueError("slo and healthy: required for an SLO_PROBE event")
        return self

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> HealthEvent:
        return assembly.health_event(datum)


class FillKind(StrEnum):
    INTENT = "INTENT"
    FILL = "FILL"


class Cohort(StrEnum):
    BASELINE = "BASELINE"
    CANARY = "CANARY"


class FillEvent(Record):
    AVRO_NAME = "FillEvent"

    @property
    def scope(self) -> str:
        """The message key: the market's scope, so this topic co-partitions with the rest."""
        return f"market:{self.market}"

    event_id: Id
    market: ScopeId
    bot: ScopeId
    kind: FillKind
    order_id: Name
    event_time_ms: EpochMillis
    requested_size: float = Field(ge=0, allow_inf_nan=False)
    filled_size: float = Field(ge=0, allow_inf_nan=False)
    predicted_slippage_bps: float | None = None
    realized_slippage_bps: float | None = None
    cohort: Cohort = Cohort.BASELINE
    model: ScopeId | None = None
    model_version: Name | None = None

    @field_validator("predicted_slippage_bps", "realized_slippage_bps")
    @classmethod
    def _finite_slippage(cls, value: float | None) -> float | None:
        return _finite(value)

    @model_validator(mode="after")
    def _not_overfilled(self) -> FillEvent:
        if self.filled_size > self.requested_size:
            raise ValueError(
                f"filled_size: {self.filled_size} exceeds requested_size {self.requested_size}"
            )
        return self

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> FillEvent:
        return assembly.fill_event(datum)


class FillBucket(BaseModel):
    """The fills of one time bucket (and a model's cohort), summed as
    streams.control.execution counts them into a scope's bucket cell."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start_ms: EpochMillis
    cohort: Cohort | None = None
    last_event_ms: EpochMillis
    intents: NonNegativeLong
    fills: NonNegativeLong
    requested: float = Field(ge=0, allow_inf_nan=False)
    filled: float = Field(ge=0, allow_inf_nan=False)
    slipped: NonNegativeLong
    error_sum: float = Field(allow_inf_nan=False)
    error_sq_sum: float = Field(ge=0, allow_inf_nan=False)


class FillSamples(BaseModel):
    """A model's canary samples from the FILLs of one cohort and model version, one per
    FILL, column by column; NaN marks a value the FILL does not carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    cohort: Cohort
    model_version: str | None = None
    event_ids: list[str]
    event_times_ms: list[EpochMillis]
    slippage_abs_error_bps: list[float]
    fill_ratios: list[float]

    @model_validator(mode="after")
    def _columns_align(self) -> FillSamples:
        lengths = {len(self.event_ids), len(self.event_times_ms),
                   len(self.slippage_abs_error_bps), len(self.fill_ratios)}
        if len(lengths) != 1:
            raise ValueError(f"sample columns differ in length: {sorted(lengths)}")
        return self


class ScopedFills(Record):
    """What one batch of exec.fills brings one bot or model (the internal re-keyed topic):
    one message per scope and batch instead of the fill re-keyed once per fill."""

    AVRO_NAME = "ScopedFills"
    scope: Scope
    buckets: list[FillBucket]
    samples: list[FillSamples]


class ModelScore(Record):
    AVRO_NAME = "ModelScore"

    @property
    def scope(self) -> str:
        """The message key: the model's scope, so this topic co-partitions with the rest."""
        return f"model:{self.model}"

    event_id: Id
    model: ScopeId
    model_version: Name
    cohort: Cohort
    metric: Id
    value: float = Field(allow_inf_nan=False)
    prediction_id: Name
    event_time_ms: EpochMillis

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> ModelScore:
        return assembly.model_score(datum)


class FeatureSample(Record):
    AVRO_NAME = "FeatureSample"

    @property
    def scope(self) -> str:
        """The message key: the model's scope, so this topic co-partitions with the rest."""
        return f"model:{self.model}"

    event_id: Id
    model: ScopeId
    model_version: Name
    event_time_ms: EpochMillis
    features: dict[Id, float] = Field(max_length=MAX_ENTRIES)

    @field_validator("features")
    @classmethod
    def _finite_features(cls, features: dict[str, float]) -> dict[str, float]:
        for name, value in features.items():
            if not math.isfinite(value):
                raise ValueError(f"feature {name!r} is {value}, not a finite number")
        return features

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> FeatureSample:
        return assembly.feature_sample(datum)


class FeatureHistogram(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Id
    bin_edges: list[float] = Field(max_length=MAX_ENTRIES)
    probabilities: list[float] = Field(max_length=MAX_ENTRIES + 1)

    @model_validator(mode="after")
    def _shape(self) -> FeatureHistogram:
        if len(self.bin_edges) < 2:
            raise ValueError(f"feature {self.name!r}: need at least 2 bin edges")
        if any(b <= a for a, b in zip(self.bin_edges, self.bin_edges[1:], strict=False)):
            raise ValueError(f"feature {self.name!r}: bin_edges must be strictly increasing")
        if len(self.probabilities) != len(self.bin_edges) + 1:
            raise ValueError(
                f"feature {self.name!r}: {len(self.probabilities)} probabilities for "
                f"{len(self.bin_edges)} edges (expected edges + 1: underflow, bins, overflow)"
            )
        if any(p < 0 or not math.isfinite(p) for p in self.probabilities):
            raise ValueError(f"feature {self.name!r}: probabilities must be finite and >= 0")
        return self


class FeatureProfile(Record):
    AVRO_NAME = "FeatureProfile"

    @property
    def scope(self) -> str:
        """The message key: the model's scope, so this topic co-partitions with the rest."""
        return f"model:{self.model}"

    model: ScopeId
    model_version: Name
    created_time_ms: EpochMillis
    features: list[FeatureHistogram] = Field(max_length=MAX_ENTRIES)


class OpsAction(StrEnum):
    ACK = "ACK"
    RESOLVE = "RESOLVE"
    PAUSE = "PAUSE"
    RESUME = "RESUME"
    ROLLBACK = "ROLLBACK"
    PROMOTE = "PROMOTE"
    EVALUATE = "EVALUATE"


class EvaluationReference(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    evaluation_id: Id
    passed: bool


class OpsCommand(Record):
    AVRO_NAME = "OpsCommand"
    command_id: Id
    scope: Scope
    action: OpsAction
    actor: Actor
    reason: Text = ""
    target: Name | None = None
    issued_time_ms: EpochMillis
    evaluation: EvaluationReference | None = None
    root_cause: Text | None = None
    follow_ups: list[Text] = Field(default_factory=list, max_length=MAX_FOLLOW_UPS)

    @model_validator(mode="after")
    def _evaluation_with_evaluate(self) -> OpsCommand:
        if (self.action is OpsAction.EVALUATE) != (self.evaluation is not None):
            raise ValueError("evaluation: required with EVALUATE (and only with it)")
        if self.action is not OpsAction.RESOLVE and (self.root_cause or self.follow_ups):
            raise ValueError("root_cause, follow_ups: only with RESOLVE")
        if self.action is OpsAction.EVALUATE and not self.target:
            raise ValueError("target: EVALUATE names the model version evaluated")
        return self


class ModelEvaluation(Record):
    """An offline evaluation's result for one model version (model.evaluations)."""

    AVRO_NAME = "ModelEvaluation"
    scope: Scope
    model_version: Id
    evaluation_id: Id
    passed: bool
    metrics: dict[Id, float] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    evaluator: Id
    event_time_ms: EpochMillis

    @field_validator("scope")
    @classmethod
    def _model_scope(cls, scope: str) -> str:
        if not scope.startswith("model:") or "/" in scope:
            raise ValueError(f"an evaluation is of a model scope model:<id>, not {scope!r}")
        return scope

    @field_validator("metrics")
    @classmethod
    def _finite_metrics(cls, metrics: dict[str, float]) -> dict[str, float]:
        for name, value in metrics.items():
            if not math.isfinite(value):
                raise ValueError(f"metric {name!r} is {value}, not a finite number")
        return metrics


class AlertStatus(StrEnum):
    FIRING = "FIRING"
    RESOLVED = "RESOLVED"


class AlertPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    AVRO_NAME: ClassVar[str] = "polymon.v1.AlertPayload"
    status: AlertStatus
    metric: str
    value: float | None = None
    threshold: float | None = None
    window_s: float | None = None
    message: str = ""


class IncidentState(StrEnum):
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RESOLVED = "RESOLVED"


class TimelineEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    time_ms: EpochMillis
    what: str
    actor: str
    ref: str | None = None


class IncidentPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    AVRO_NAME: ClassVar[str] = "polymon.v1.IncidentPayload"
    incident_id: str
    state: IncidentState
    reason_family: str
    opened_time_ms: EpochMillis
    timeline: list[TimelineEntry] = Field(default_factory=list)


class AuditPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    AVRO_NAME: ClassVar[str] = "polymon.v1.AuditPayload"
    action: str
    actor: str
    decision: str
    before: str | None = None
    after: str | None = None
    evidence: dict[str, str] = Field(default_factory=dict)


class TradeSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class TradePayload(BaseModel):
    """A runner's trade report: one order and what of it filled."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    AVRO_NAME: ClassVar[str] = "polymon.v1.TradePayload"
    order_id: Id
    runner_id: ScopeId
    side: TradeSide
    size: float = Field(gt=0)
    price: float = Field(ge=0)
    filled_size: float = Field(default=0.0, ge=0)
    fill_price: float | None = Field(default=None, ge=0)
    model_version: Id | None = None

    @field_validator("size", "price", "filled_size", "fill_price")
    @classmethod
    def _finite_numbers(cls, value: float | None) -> float | None:
        return _finite(value)

    @model_validator(mode="after")
    def _filled_within_size(self) -> TradePayload:
        if self.filled_size > self.size:
            raise ValueError(f"filled_size {self.filled_size} exceeds size {self.size}")
        return self


Payload = AlertPayload | IncidentPayload | AuditPayload | TradePayload
_PAYLOADS: dict[str, type[BaseModel]] = {
    cls.AVRO_NAME: cls for cls in (AlertPayload, IncidentPayload, AuditPayload, TradePayload)
}


class ReportEnvelope(Record):
    AVRO_NAME = "ReportEnvelope"
    envelope_id: str = Field(min_length=1)
    schema_version: int = 1
    source: str
    reason_code: str
    severity: Severity
    scope: Scope
    dedup_key: str
    observed_time_ms: EpochMillis
    event_time_ms: EpochMillis
    config_version: str
    trace_id: TraceId | None = None
    cause_span_id: SpanId | None = None
    cause_events: list[CauseEvent] = Field(default_factory=list, max_length=MAX_CAUSE_EVENTS)
    payload: Payload

    def to_avro(self) -> dict[str, Any]:
        datum = super().to_avro()
        # Named-tuple notation tells fastavro which branch of the union to write.
        datum["payload"] = (type(self.payload).AVRO_NAME, datum["payload"])  # type: ignore[attr-defined]
        return datum

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> ReportEnvelope:
        payload = datum.get("payload")
        if isinstance(payload, tuple):
            name, fields = payload
            datum = {**datum, "payload": _PAYLOADS[name].model_validate(fields)}
        return cls.model_validate(datum)


class PausePolicy(StrEnum):
    AUTO_CLEAR = "AUTO_CLEAR"
    LATCH = "LATCH"
    MANUAL = "MANUAL"


class PauseState(Record):
    AVRO_NAME = "PauseState"
    scope: Scope
    paused: bool
    reason_code: str | None = None
    since_ms: EpochMillis
    cause_id: str | None = None
    policy: PausePolicy
    actor: str
    updated_ms: EpochMillis
    state_id: str
    trace_id: TraceId | None = None
    cause_span_id: SpanId | None = None
    cause_events: list[CauseEvent] = Field(default_factory=list, max_length=MAX_CAUSE_EVENTS)


class RolloutStage(StrEnum):
    REPLAY = "REPLAY"
    SHADOW = "SHADOW"
    PAPER = "PAPER"
    CANARY = "CANARY"
    LIVE = "LIVE"


class RolloutTransition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    from_stage: RolloutStage | None = None
    to_stage: RolloutStage
    time_ms: EpochMillis
    actor: str
    reason: str
    decision_id: str
    # transition | reevaluation_required | evaluation (the last two keep the stage)
    event: str = "transition"
    ref: str | None = None


class ReevaluationMark(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    model_version: str
    since_ms: EpochMillis
    alert_id: str
    reason: str


class RolloutState(Record):
    AVRO_NAME = "RolloutState"
    scope: Scope
    stage: RolloutStage
    model_version: str | None = None
    updated_ms: EpochMillis
    history: list[RolloutTransition] = Field(default_factory=list)
    reevaluation: ReevaluationMark | None = None


class MonitorHeartbeat(Record):
    AVRO_NAME = "MonitorHeartbeat"
    worker_id: str
    time_ms: EpochMillis
    started_ms: EpochMillis
    version: str
    events_processed: NonNegativeLong = 0
    # progress, so a worker whose input is stuck while its timers run is not trusted
    input_partitions: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    input_lag: NonNegativeLong | None = None
    input_offset_sum: NonNegativeLong | None = None
    healthy: bool = True
    unhealthy_reason: Text | None = None


class DeadLetterStage(StrEnum):
    DECODE = "DECODE"
    VALIDATE = "VALIDATE"
    PROCESS = "PROCESS"  # valid input whose processing raised: kept, never silently dropped


class DeadLetter(Record):
    # Original bytes are arbitrary: JSON carries them base64-encoded.
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_bytes="base64",
                              val_json_bytes="base64")
    AVRO_NAME = "DeadLetter"
    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp_ms: int | None = None
    key: bytes | None = None
    value: bytes | None = None
    stage: DeadLetterStage
    error: str
    worker_id: str
    dead_lettered_ms: EpochMillis

    def to_avro(self) -> dict[str, Any]:
        # bytes stay bytes (mode="json" would base64 them).
        return self.model_dump(mode="python") | {"stage": self.stage.value}


MAX_APPLIED_PAUSES = 1000


class PauseWatermark(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    partition: int = Field(ge=0, le=2**31 - 1)
    offset: NonNegativeLong


class AppliedPause(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    scope: Scope
    state_id: Id
    paused: bool
    updated_ms: EpochMillis
    applied_ms: EpochMillis


class PauseAck(Record):
    """What a runner's PauseGuard has applied of control.pauses (control.pause-acks)."""

    AVRO_NAME = "PauseAck"
    runner_id: ScopeId
    runner_version: Id
    guard_state: Id
    sent_ms: EpochMillis
    watermarks: list[PauseWatermark] = Field(default_factory=list, max_length=MAX_ENTRIES)
    applied: list[AppliedPause] = Field(default_factory=list, max_length=MAX_APPLIED_PAUSES)


RECORD_TYPES: dict[str, type[Record]] = {
    cls.AVRO_NAME: cls
    for cls in (
        HealthEvent, FillEvent, ModelScore, FeatureSample, FeatureProfile, OpsCommand,
        ReportEnvelope, PauseState, RolloutState, MonitorHeartbeat, DeadLetter, ScopedFills,
        ModelEvaluation, PauseAck,
    )
}


# The input records' checked assembly lives in a compiled module of its own, which imports
# the classes above (so it comes last): see streams/assembly.py. Loaded with the stale-build
# check but no import hook: the runner client imports this module.
assembly = compiled.load("streams.assembly")

