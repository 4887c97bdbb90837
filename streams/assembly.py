"""Input records from datums decoded with their own schema: the first step of every input
event, compiled with the rest of the hot path (streams.compiled).

Each function checks a datum against its record's constraints in plain code and
assembles the model without pydantic; a datum that fails any check goes through pydantic
(the record's ``model_validate``), which accepts it or says precisely why not
(tests/unit/test_records.py checks that both ways agree). The input records' own
``from_avro`` call these, and the codec binds them (``AvroCodec.from_avro``): checking
and assembling records is a large share of the per-event work.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from streams import avrodecode
from streams.framework import pydantic_fields
from streams.records import (
    MAX_ENTRIES,
    MAX_ID,
    MAX_LONG,
    MAX_TEXT,
    Cohort,
    FeatureSample,
    FillEvent,
    FillKind,
    HealthEvent,
    HealthEventKind,
    ModelScore,
    Record,
)
from streams.scopes import SCOPE_ID, validate_scope

# written into pydantic's private instance fields: the one place that knows them
_assemble_in_python = pydantic_fields.assemble_in_python


# the same in C (a quarter of the time), unless the extension is off or not built
_assemble = (avrodecode.extension.assemble if avrodecode.extension is not None
             else _assemble_in_python)

FAST_ASSEMBLE = _assemble  # streams.framework.pydantic_fields switches back to it

# scopes found valid: a set lookup per event instead of a call (bounded as
# validate_scope's own cache is)
_VALID_SCOPES: set[str] = set()
_VALID_SCOPES_KEPT = 65536


def _valid_scope(scope: str) -> bool:
    """Whether ``scope`` is valid; valid ones join _VALID_SCOPES (the caller looks there
    first)."""
    try:
        validate_scope(scope)
    except ValueError:
        return False
    if len(_VALID_SCOPES) >= _VALID_SCOPES_KEPT:
        _VALID_SCOPES.clear()
    _VALID_SCOPES.add(scope)
    return True


_SCOPE_ID = re.compile(SCOPE_ID)
# ids of scopes found valid (markets, bots, models), bounded as the scopes are
_VALID_IDS: set[str] = set()


def _valid_id(value: str | None) -> bool:
    """Whether ``value`` is None or a valid scope id; valid ones join _VALID_IDS (the
    caller looks there first)."""
    if value is None:
        return True
    if type(value) is not str or _SCOPE_ID.fullmatch(value) is None:
        return False
    if len(_VALID_IDS) >= _VALID_SCOPES_KEPT:
        _VALID_IDS.clear()
    _VALID_IDS.add(value)
    return True


def _over(value: str | None) -> bool:
    """A name longer than its bound (None is within)."""
    return value is not None and len(value) > MAX_ID


def _bounded_attributes(attributes: dict[str, str]) -> bool:
    return len(attributes) <= MAX_ENTRIES and all(
        len(key) <= MAX_ID and len(value) <= MAX_TEXT for key, value in attributes.items())


def _is_finite(value: float | None) -> bool:
    """None or a finite number (NaN fails every comparison, so it is caught here too)."""
    return value is None or -math.inf < value < math.inf


# Enum members and model fields read per record, bound once: on Python 3.11 every
# ``Enum.MEMBER`` read goes through EnumType.__getattr__, far slower than a global's
_HEALTH_EVENT_KINDS = {kind.value: kind for kind in HealthEventKind}
_DATA_UPDATE, _SLO_PROBE = HealthEventKind.DATA_UPDATE, HealthEventKind.SLO_PROBE
_HEALTH_EVENT_FIELDS = set(HealthEvent.model_fields)
_FILL_KINDS = {kind.value: kind for kind in FillKind}
_COHORTS = {cohort.value: cohort for cohort in Cohort}
_FILL_EVENT_FIELDS = set(FillEvent.model_fields)
_MODEL_SCORE_FIELDS = set(ModelScore.model_fields)
_FEATURE_SAMPLE_FIELDS = set(FeatureSample.model_fields)
# their lookups bound too: a method looked up per call costs more than the lookup
_health_event_kind, _fill_kind, _cohort = (
    _HEALTH_EVENT_KINDS.get, _FILL_KINDS.get, _COHORTS.get)


def health_event(datum: dict[str, Any]) -> HealthEvent:
    kind = _health_event_kind(datum["kind"])
    sequence, interval = datum["sequence"], datum["heartbeat_interval_ms"]
    attributes = datum["attributes"]
    if (kind is None or len(datum) != len(_HEALTH_EVENT_FIELDS)
            or not 0 < len(datum["event_id"]) <= MAX_ID
            or (datum["scope"] not in _VALID_SCOPES and not _valid_scope(datum["scope"]))
            or len(datum["source"]) > MAX_ID or _over(datum["feed"]) or _over(datum["slo"])
            or _over(datum["owner"]) or (attributes and not _bounded_attributes(attributes))
            or not 0 <= datum["event_time_ms"] <= MAX_LONG
            or (sequence is not None and not 0 <= sequence <= MAX_LONG)
            or (interval is not None and interval <= 0)
            or (kind is _DATA_UPDATE and not datum["feed"])
            or (kind is _SLO_PROBE and (not datum["slo"] or datum["healthy"] is None))):
        return HealthEvent.model_validate(datum)
    datum["kind"] = kind
    return _assemble(HealthEvent, datum, _HEALTH_EVENT_FIELDS)  # type: ignore[no-any-return]


def fill_event(datum: dict[str, Any]) -> FillEvent:
    kind, cohort = _fill_kind(datum["kind"]), _cohort(datum["cohort"])
    requested, filled = datum["requested_size"], datum["filled_size"]
    market, bot, model = datum["market"], datum["bot"], datum["model"]
    if (kind is None or cohort is None or len(datum) != len(_FILL_EVENT_FIELDS)
            or not 0 < len(datum["event_id"]) <= MAX_ID
            or (market not in _VALID_IDS and not _valid_id(market))
            or (bot not in _VALID_IDS and not _valid_id(bot))
            or (model is not None and model not in _VALID_IDS and not _valid_id(model))
            or len(datum["order_id"]) > MAX_ID or _over(datum["model_version"])
            or not 0 <= datum["event_time_ms"] <= MAX_LONG
            or not 0 <= filled <= requested < math.inf
            or not _is_finite(datum["predicted_slippage_bps"])
            or not _is_finite(datum["realized_slippage_bps"])):
        return FillEvent.model_validate(datum)
    datum["kind"], datum["cohort"] = kind, cohort
    return _assemble(FillEvent, datum, _FILL_EVENT_FIELDS)  # type: ignore[no-any-return]


def model_score(datum: dict[str, Any]) -> ModelScore:
    cohort = _cohort(datum["cohort"])
    model = datum["model"]
    if (cohort is None or len(datum) != len(_MODEL_SCORE_FIELDS)
            or not 0 < len(datum["event_id"]) <= MAX_ID
            or (model not in _VALID_IDS and not _valid_id(model))
            or not 0 < len(datum["metric"]) <= MAX_ID
            or len(datum["model_version"]) > MAX_ID or len(datum["prediction_id"]) > MAX_ID
            or not -math.inf < datum["value"] < math.inf
            or not 0 <= datum["event_time_ms"] <= MAX_LONG):
        return ModelScore.model_validate(datum)
    datum["cohort"] = cohort
    return _assemble(ModelScore, datum, _MODEL_SCORE_FIELDS)  # type: ignore[no-any-return]


def feature_sample(datum: dict[str, Any]) -> FeatureSample:
    model, features = datum["model"], datum["features"]
    if (len(datum) != len(_FEATURE_SAMPLE_FIELDS) or not 0 < len(datum["event_id"]) <= MAX_ID
            or (model not in _VALID_IDS and not _valid_id(model))
            or len(datum["model_version"]) > MAX_ID
            or not 0 <= datum["event_time_ms"] <= MAX_LONG
            or len(features) > MAX_ENTRIES
            or not all(0 < len(name) <= MAX_ID and -math.inf < value < math.inf
                       for name, value in features.items())):
        return FeatureSample.model_validate(datum)
    return _assemble(FeatureSample, datum, _FEATURE_SAMPLE_FIELDS)  # type: ignore[no-any-return]


# record class -> its checked assembly (other records: their from_avro, pydantic's)
FROM_AVRO: dict[type[Record], Callable[[dict[str, Any]], Record]] = {
    HealthEvent: health_event, FillEvent: fill_event, ModelScore: model_score,
    FeatureSample: feature_sample,
}
