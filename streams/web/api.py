"""The operator API's pure parts: request validation with precise messages, and the JSON
views built from table state and from the records of the compacted output topics.

No Faust, no aiohttp: streams/web/views.py binds these to routes, and
tests/unit/web/ tests them with plain values. The definitions here (patterns, bounds,
enums, which query parameters and body fields each route takes) are also what
streams/web/openapi.py publishes: the document is generated from what is validated.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.control.health import gap_counts
from streams.control.incidents import (
    _INCIDENT_ID,
    FOLLOW_UP_ENTRY,
    ROOT_CAUSE_ENTRY,
    IncidentIdError,
    family_of,
    resolved_alert_id,
)
from streams.reason_codes import Severity
from streams.records import (
    MAX_FOLLOW_UPS,
    MAX_ID,
    MAX_TEXT,
    UNPRINTABLE,
    AuditPayload,
    IncidentPayload,
    IncidentState,
    PauseState,
    ReportEnvelope,
    RolloutStage,
    RolloutState,
    TradePayload,
)
from streams.scopes import (
    GLOBAL,
    MAX_SCOPE_ID,
    MAX_SCOPE_LENGTH,
    SCOPE_ID,
    SCOPE_KINDS,
    SCOPE_PATTERN,
    ScopeError,
    ancestors,
    parse_scope,
)
from streams.trades import RECORD_KINDS

STAGES = [stage.value for stage in RolloutStage]  # the ladder, in order
ROLLOUT_KINDS = ("model", "strategy")
INCIDENT_STATES = tuple(state.value for state in IncidentState)
SEVERITIES = tuple(severity.value for severity in Severity)  # least severe first
KINDS = (*sorted(SCOPE_KINDS), GLOBAL)  # of a scope's last segment
assert not set(RECORD_KINDS) & set(KINDS), "record kinds and scope kinds must differ"
MAX_REASON = MAX_TEXT  # the bound OpsCommand's reason has on ops.commands
MAX_LIMIT = 5000
MAX_INCIDENT_ID = 128  # inc-<family>-<24 hex>: families are short words

# Patterns are anchored and matched whole (fullmatch: a Python $ would also take a
# trailing newline); JSON Schema reads them as ECMA-262, which agrees for these.
# Whitespace, spelled out: what Python's str.isspace() and ECMA-262's \s call whitespace
# (they differ), so that every regex engine reads the reason's pattern as the API does.
BLANK = r"\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# printable throughout, and somewhere a character that is not whitespace
REASON_PATTERN = f"^[^{UNPRINTABLE}]*[^{UNPRINTABLE}{BLANK}][^{UNPRINTABLE}]*$"
# Ids that stand alone in a URL path do not start with '.': '.' and '..' would be read as
# path steps (and never reach the route), so their status_url would lead nowhere.
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_:\-][A-Za-z0-9_.:\-]{0,127}$"
COMMAND_ID_PATTERN = IDEMPOTENCY_KEY_PATTERN  # an API command's id is its Idempotency-Key
_ROLLOUT_KINDS = "|".join(ROLLOUT_KINDS)
ROLLOUT_SCOPE_PATTERN = rf"^(?:{_ROLLOUT_KINDS}):{SCOPE_ID}$"
_BARE_ID = rf"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{{0,{MAX_SCOPE_ID - 1}}}"
MODEL_PATTERN = rf"^(?:(?:{_ROLLOUT_KINDS}):{SCOPE_ID}|{_BARE_ID})$"
EVALUATED_MODEL_PATTERN = rf"^(?:model:{SCOPE_ID}|{_BARE_ID})$"  # evaluations: models only
# The incident ids' own grammar, without Python's group names (ECMA-262 spells them
# differently, and the generators of clients and tests read Python's way of matching).
INCIDENT_ID_PATTERN = re.sub(r"\(\?P<\w+>", "(", _INCIDENT_ID.pattern)
SCOPE_PREFIX_PATTERN = rf"^[A-Za-z0-9_.:/\-]{{0,{MAX_SCOPE_LENGTH}}}$"
AUDIT_ACTION_PATTERN = r"^[A-Za-z_]{1,32}$"
METRIC_NAME_PATTERN = r"^[A-Za-z_:][A-Za-z0-9_:]{0,199}$"  # /metrics?name[]=...
MAX_MODEL = len("strategy:") + MAX_SCOPE_ID
MAX_EVALUATED_MODEL = len("model:") + MAX_SCOPE_ID
MAX_COMMAND_ID = 128
_REASON = re.compile(REASON_PATTERN)
_UNPRINTABLE = re.compile(f"[{UNPRINTABLE}]")
_TRIM = re.compile(f"^[{BLANK}]+|[{BLANK}]+$")
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_COMMAND_ID = re.compile(COMMAND_ID_PATTERN)
_MODEL = re.compile(MODEL_PATTERN)
_INCIDENT_ID_WHOLE = re.compile(INCIDENT_ID_PATTERN)
_SCOPE_PREFIX = re.compile(SCOPE_PREFIX_PATTERN)
_AUDIT_ACTION = re.compile(AUDIT_ACTION_PATTERN)
_METRIC_NAME = re.compile(METRIC_NAME_PATTERN)
_LIMIT = re.compile(r"[0-9]{1,9}")


class ApiError(Exception):
    """An answer other than success: 400 bad request, 404 unknown, 409 conflict."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def _cut(value: str, limit: int = 60) -> str:
    """A value put into an error message, cut short: messages have a bound too."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} chars)"


def _shown(value: str, limit: int = 60) -> str:
    """A value quoted into an error message, cut short."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} chars)"


def string_schema(pattern: str, max_length: int, **more: Any) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern, "maxLength": max_length, **more}


def spellings_schema(choices: Iterable[str]) -> dict[str, Any]:
    """An enum value in its own (upper) case or in lower case, as the API takes them: two
    enums, so a client generator's names do not collide."""
    choices = list(choices)
    return {"anyOf": [{"type": "string", "enum": choices},
                      {"type": "string", "enum": [c.lower() for c in choices]}]}


def _choice(name: str, value: str, choices: Iterable[str], shown: str | None = None) -> str:
    """``value`` as one of ``choices`` (upper case), taken in upper or lower case."""
    choices = tuple(choices)
    if value in choices:
        return value
    lowered = {choice.lower(): choice for choice in choices}
    if value in lowered:
        return lowered[value]
    if value.upper() in choices:
        raise bad_request(f"{name}: {_shown(value)} must be in upper or lower case "
                          f"({value.upper()} or {value.lower()})")
    raise bad_request(f"{name}: {shown or _shown(value)} is not one of "
                      f"{', '.join(c.lower() for c in choices)}")


# --- query parameters ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScopeFilter:
    """``scope``: that scope and every scope it covers (a pause of it would cover);
    ``kind``: scopes whose last segment is of that kind."""

    scope: str | None = None
    kind: str | None = None

    def matches(self, scope: str) -> bool:
        if self.kind is not None and _leaf_kind(scope) != self.kind:
            return False
        if self.scope is None:
            return True
        try:
            return self.scope in ancestors(scope)
        except ScopeError:
            return False


def _leaf_kind(scope: str) -> str:
    return scope.rsplit("/", 1)[-1].split(":", 1)[0]


def scope_kind(scope: str) -> str:
    """'global' or the kind of the scope's last segment (a bounded metrics label)."""
    return "global" if scope == "global" else _leaf_kind(scope)


def check_scope(scope: str, what: str = "scope") -> str:
    try:
        parse_scope(scope)
    except ScopeError as exc:
        raise bad_request(f"{what}: {exc}") from None
    return scope


def _bool(name: str, value: str) -> bool:
    # Exactly JSON's spellings: what the document's boolean says, and what clients send.
    if value in ("true", "false"):
        return value == "true"
    raise bad_request(f"{name}: expected true or false, got {_shown(value)}")


def _max_choices(allowed: tuple[str, ...]) -> int:
    return 2 * len(allowed)  # each once in either spelling: a bound, repeats are harmless


def _choices(name: str, value: str, allowed: Iterable[str]) -> list[str]:
    """A comma list of ``allowed`` values, each in upper or lower case."""
    allowed = tuple(allowed)
    parts = value.split(",")
    if len(parts) > _max_choices(allowed):
        raise bad_request(f"{name}: at most {_max_choices(allowed)} values, got {len(parts)}")
    return [_choice(name, part, allowed, _choice_shown(part)) for part in parts]


def _choice_shown(part: str) -> str:
    if not part:
        return "nothing"
    return _cut(part.upper()) if part.isalnum() else _shown(part)  # quoted if odd


def _kind(value: str) -> str:
    if value not in KINDS:
        raise bad_request(f"kind: {_shown(value)} is not one of {', '.join(KINDS)}")
    return value


def _audit_kind(value: str) -> str:
    if value not in RECORD_KINDS and value not in KINDS:
        raise bad_request(f"kind: {_shown(value)} is neither a record kind "
                          f"({', '.join(RECORD_KINDS)}) nor a scope kind ({', '.join(KINDS)})")
    return value


def _limit(value: str) -> int:
    if not _LIMIT.fullmatch(value) or not 1 <= int(value) <= MAX_LIMIT:
        raise bad_request(f"limit: expected an integer from 1 to {MAX_LIMIT}, "
                          f"got {_shown(value)}")
    return int(value)


def _scope_prefix(value: str) -> str:
    if not _SCOPE_PREFIX.fullmatch(value):
        raise bad_request(f"scope: {_shown(value)} is not a scope prefix (at most "
                          f"{MAX_SCOPE_LENGTH} of A-Z a-z 0-9 _ . : / -)")
    return value


def _audit_action(value: str) -> str:
    if not _AUDIT_ACTION.fullmatch(value):
        raise bad_request(f"action: {_shown(value)} is not an action name (1 to 32 of "
                          "A-Z a-z _, e.g. pause, promote, alert)")
    return value.lower()


@dataclass(frozen=True, slots=True)
class QueryParam:
    """One query parameter: its parser (a precise 400) and its JSON schema, side by side."""

    parse: Callable[[str], Any]
    schema: dict[str, Any]
    description: str = ""
    explode: bool = True  # False: an array as one comma list (OpenAPI style form)


def _comma_list(choices: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "array", "items": spellings_schema(choices), "minItems": 1,
            "maxItems": _max_choices(choices)}


SCOPE_SCHEMA = string_schema(SCOPE_PATTERN, MAX_SCOPE_LENGTH, minLength=1)
QUERY_PARAMS: dict[str, QueryParam] = {
    "scope": QueryParam(lambda v: check_scope(v, "scope"), SCOPE_SCHEMA,
                        "only this scope and the scopes it covers (a pause of it would "
                        "cover), e.g. market:m1, bot:b1, global"),
    "kind": QueryParam(_kind, {"type": "string", "enum": list(KINDS)},
                       "only scopes whose last segment is of this kind"),
    "state": QueryParam(lambda v: _choices("state", v, INCIDENT_STATES),
                        _comma_list(INCIDENT_STATES),
                        "comma list of incident states", explode=False),
    "severity": QueryParam(lambda v: _choices("severity", v, SEVERITIES),
                           _comma_list(SEVERITIES), "comma list of severities", explode=False),
    "paused": QueryParam(lambda v: _bool("paused", v), {"type": "boolean"},
                         "only paused (true) or running (false) scopes"),
    "stale": QueryParam(lambda v: _bool("stale", v), {"type": "boolean"},
                        "true: only stale feeds"),
    "limit": QueryParam(_limit, {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                        "at most this many entries"),
    "action": QueryParam(_audit_action, string_schema(AUDIT_ACTION_PATTERN, 32),
                         "only entries of this action (case-insensitive), e.g. pause, "
                         "resume, promote, rollback, ack, resolve, alert, incident"),
    "local": QueryParam(lambda v: _bool("local", v), {"type": "boolean"},
                        "answer for this worker's partitions only (no fan-out)"),
}
SCOPE_PREFIX = QueryParam(_scope_prefix, string_schema(SCOPE_PREFIX_PATTERN, MAX_SCOPE_LENGTH),
                          "only scopes starting with this prefix, e.g. market: or bot:b1/")


def _params(*names: str) -> dict[str, QueryParam]:
    return {name: QUERY_PARAMS[name] for name in names}


# The query parameters of each route: what the route parses, and what the document lists.
# Fanned-out routes take ``local`` (the fan-out's own requests carry local=true).
ROUTE_QUERIES: dict[str, dict[str, QueryParam]] = {
    "/api/scopes": {"scope": SCOPE_PREFIX},
    "/api/freshness": _params("scope", "kind", "stale", "local"),
    "/api/heartbeats": _params("scope", "kind", "local"),
    "/api/runners": _params("local"),
    "/api/execution": _params("scope", "kind", "local"),
    "/api/drift": _params("scope", "kind", "local"),
    "/api/slos": _params("scope", "kind", "local"),
    "/api/incidents": _params("scope", "kind", "state", "severity", "limit"),
    "/api/pauses": _params("scope", "kind", "paused"),
    "/api/rollout": _params("scope", "kind"),
    "/api/audit": {**_params("scope"), "kind": QueryParam(
        _audit_kind, {"type": "string", "enum": [*RECORD_KINDS, *KINDS]},
        f"a record kind ({', '.join(RECORD_KINDS)}: only entries of that kind) or a scope "
        "kind (only scopes whose last segment is of this kind)"),
        **_params("action", "limit")},
}


def parse_query(query: Mapping[str, str] | Iterable[tuple[str, str]],
                allowed: Mapping[str, QueryParam]) -> dict[str, Any]:
    """The query parameters of ``allowed`` parsed; an unknown, repeated or malformed one
    is a 400. ``query``: a mapping, or the (name, value) pairs of a multidict."""
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    parsed: dict[str, Any] = {}
    for name, value in pairs:
        if name not in allowed:
            named = [a for a in allowed if a != "local"]  # the fan-out's own, not offered
            raise bad_request(f"unknown query parameter {_shown(name)} (allowed: "
                              f"{', '.join(named) or 'none'})")
        if name in parsed:
            raise bad_request(f"{name}: given more than once")
        parsed[name] = allowed[name].parse(value)
    return parsed


def scope_filter(params: Mapping[str, Any]) -> ScopeFilter:
    kind = params.get("kind")
    return ScopeFilter(params.get("scope"), None if kind in RECORD_KINDS else kind)


def select_audit(entries: Iterable[Mapping[str, Any]],
                 params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """/api/audit's entries (newest first in, newest first out): those of the scope filter,
    the record kind (``kind`` alert, incident, audit or trade) and the action asked."""
    match = scope_filter(params)
    kind = params.get("kind")
    record_kind = kind if kind in RECORD_KINDS else None
    action = params.get("action")
    limit = params.get("limit", 200)
    chosen: list[Mapping[str, Any]] = []
    for entry in entries:
        if (match.matches(entry["scope"])
                and (record_kind is None or entry["kind"] == record_kind)
                and (action is None or entry["action"] == action)):
            chosen.append(entry)
            if len(chosen) >= limit:
                break
    return chosen


# --- request bodies and headers ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BodyField:
    required: bool = False
    choices: tuple[str, ...] | None = None  # taken in upper or lower case, as is
    max_length: int = MAX_REASON  # of free text (choices are bound by themselves)
    description: str = ""
    max_items: int = 0  # a list of up to this many such strings, when not 0

    def schema(self) -> dict[str, Any]:
        """The field's JSON schema: what parse_body checks (never null)."""
        if self.choices is not None:
            return {**spellings_schema(self.choices), "description": self.description}
        text = {"type": "string", "minLength": 1, "maxLength": self.max_length,
                "pattern": REASON_PATTERN}
        if self.max_items:
            return {"type": "array", "items": text, "maxItems": self.max_items,
                    "description": self.description}
        return {**text, "description": self.description}


REASON = BodyField(required=True, description="why: recorded in audit.log and on the "
                   "incident's timeline (not only whitespace; trimmed)")
STAGE = BodyField(required=True, choices=tuple(STAGES),
                  description="the stage to roll back to (an earlier one)")
NEXT_STAGE = BodyField(choices=tuple(STAGES),
                       description="the stage to promote to (a later one); absent: the next")
REASON_BODY = {"reason": REASON}
RESOLVE_BODY = {
    "reason": REASON,
    "root_cause": BodyField(description="what caused the incident (required for a CRITICAL "
                            "one); on its timeline and review, in audit.log"),
    "follow_ups": BodyField(max_items=MAX_FOLLOW_UPS, description="what will be done so it "
                            "does not happen again (at least one for a CRITICAL incident)"),
}
ROLLBACK_BODY = {"reason": REASON, "to_stage": STAGE}
PROMOTE_BODY = {"reason": REASON, "to_stage": NEXT_STAGE}
EVALUATION_BODY = {
    "reason": REASON,
    "model_version": BodyField(required=True, max_length=MAX_ID,
                               description="the model version evaluated"),
    "evaluation_id": BodyField(required=True, max_length=MAX_ID,
                               description="the evaluation's reference (a run id)"),
    "result": BodyField(required=True, choices=("PASSED", "FAILED"),
                        description="PASSED clears the version's REEVALUATION_REQUIRED mark"),
}


def parse_body(raw: bytes, fields: Mapping[str, BodyField]) -> dict[str, Any]:
    """A JSON object with exactly these string (or list of string) fields; everything else
    is a precise 400."""
    expected = ", ".join(f"'{name}'" for name in fields)
    if not raw.strip():
        raise bad_request(f"body: expected a JSON object with {expected}, got an empty body")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request(f"body: expected a JSON object with {expected}, "
                          f"got {type(body).__name__}")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise bad_request(f"body: unknown field {', '.join(_shown(u) for u in unknown)} "
                          f"(allowed: {', '.join(fields)})")
    parsed: dict[str, Any] = {}
    for name, spec in fields.items():
        if name not in body:
            if spec.required:
                raise bad_request(f"{name}: required")
            continue
        value = body[name]
        if spec.max_items:
            if not isinstance(value, list):
                got = "null" if value is None else type(value).__name__
                raise bad_request(f"{name}: expected a list of strings, got {got}")
            if len(value) > spec.max_items:
                raise bad_request(f"{name}: at most {spec.max_items} items, got {len(value)}")
            parsed[name] = [_text(f"{name}[{i}]", item, spec) for i, item in enumerate(value)]
        else:
            parsed[name] = _text(name, value, spec)
    return parsed


def _text(name: str, value: Any, spec: BodyField) -> str:
    if not isinstance(value, str):
        got = "null" if value is None else type(value).__name__
        raise bad_request(f"{name}: expected a string, got {got}")
    if spec.choices is not None:  # the choices are the bound
        return _choice(name, value, spec.choices)
    if len(value) > spec.max_length:  # before trimming: the bound is on what came
        raise bad_request(f"{name}: at most {spec.max_length} characters, got {len(value)}")
    unprintable = _UNPRINTABLE.search(value)
    if unprintable is not None:
        raise bad_request(f"{name}: control and bidi characters are not allowed (U+"
                          f"{ord(unprintable[0]):04X} at {unprintable.start()})")
    if not _REASON.fullmatch(value):  # empty, or only whitespace
        raise bad_request(f"{name}: must not be empty")
    return _TRIM.sub("", value)


def command_id(idempotency_key: str | None) -> str:
    """The command id: the Idempotency-Key header (same key, same command), or a new id."""
    if idempotency_key is None:
        return f"api-{uuid.uuid4().hex}"
    if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise bad_request("Idempotency-Key: 1 to 128 characters of A-Z a-z 0-9 _ . : -, "
                          "not starting with .")
    return idempotency_key


def reuse_differences(previous: Mapping[str, Any], actor: str, action: str, requested: str,
                      body: Mapping[str, Any]) -> list[str]:
    """What a request under an Idempotency-Key already used differs in from the command
    that key made (its audit entry ``previous``): [] for a true retry. ``requested`` is
    what the path names (a scope, or an incident id)."""
    evidence = previous.get("evidence") or {}
    differences = []
    if previous.get("action") != action.lower():
        differences.append("action")
    if previous.get("actor") != f"operator:{actor}":
        differences.append("actor")
    if requested not in (previous.get("scope"), evidence.get("target")):
        differences.append("scope")
    if evidence.get("reason") != body.get("reason"):
        differences.append("reason")
    if "to_stage" in body and evidence.get("target") != body["to_stage"]:
        differences.append("to_stage")
    for name in ("model_version", "evaluation_id"):
        if name in body and evidence.get(name) != body[name]:
            differences.append(name)
    if "result" in body and evidence.get("passed") != str(body["result"] == "PASSED"):
        differences.append("result")
    if "root_cause" in evidence and (evidence["root_cause"] != body.get("root_cause", "")
                                     or evidence.get("follow_ups") != json.dumps(
                                         body.get("follow_ups", []), ensure_ascii=False)):
        differences.append("review")
    return differences


def metric_names(names: Iterable[str]) -> list[str]:
    """The ``name[]`` query values of /metrics: Prometheus metric names."""
    names = list(names)
    for name in names:
        if not _METRIC_NAME.fullmatch(name):
            raise bad_request(f"name[]: {_shown(name)} is not a metric name")
    return names


def command_path_id(command: str) -> str:
    if not _COMMAND_ID.fullmatch(command):
        raise bad_request(f"command_id: {_shown(command)} is not a command id (1 to 128 "
                          "characters of A-Z a-z 0-9 _ . : -, not starting with .)")
    return command


def incident_path_id(incident_id: str) -> str:
    if len(incident_id) > MAX_INCIDENT_ID:
        raise bad_request(f"incident_id: at most {MAX_INCIDENT_ID} characters, got "
                          f"{len(incident_id)}")
    try:
        family_of(incident_id)
    except IncidentIdError as exc:
        raise bad_request(str(exc)) from None
    if not _INCIDENT_ID_WHOLE.fullmatch(incident_id):  # a trailing newline, say
        raise bad_request(f"{_shown(incident_id)} is not an incident id (expected "
                          "inc-<family>-<24 hex digits>)")
    return incident_id


def rollout_scope(model: str) -> str:
    """``m1`` means ``model:m1``; a full ``model:``/``strategy:`` scope is taken as is."""
    scope = model if ":" in model else f"model:{model}"
    check_scope(scope, "model")
    if ":" not in model and model.startswith("."):
        raise bad_request(f"model: a bare model id must not start with '.' (got "
                          f"{_shown(model)}): write model:<id>")
    if not _MODEL.fullmatch(model) or _leaf_kind(scope) not in ROLLOUT_KINDS:
        raise bad_request(f"model: {_shown(model)} is not a model or strategy (model:<id>, "
                          "strategy:<id> or a bare model id)")
    return scope


def rollback_scope(scope: str) -> str:
    """The scope of a rollback: a model:<id> or strategy:<id> scope (no bare id)."""
    check_scope(scope)
    if ":" not in scope:  # global: no bare model id here, the path is a scope
        raise bad_request(f"scope: {_shown(scope)} is not a model or strategy (model:<id> or "
                          "strategy:<id>)")
    return rollout_scope(scope)


def check_promotion(scope: str, rollout: Mapping[str, Any] | None,
                    to_stage: str | None) -> None:
    if rollout is None:
        return  # the rollout agent decides for a scope it has no state for yet
    current = rollout["stage"]
    if current == STAGES[-1]:
        raise ApiError(409, f"{scope} is already {current}: nothing to promote to")
    if to_stage is not None and STAGES.index(to_stage) <= STAGES.index(current):
        raise ApiError(409, f"cannot promote {scope} from {current} to {to_stage}: "
                       "not a later stage")


def evaluation_scope(model: str) -> str:
    """The scope an evaluation is reported for: a model (model:<id> or a bare id)."""
    scope = rollout_scope(model)
    if _leaf_kind(scope) != "model":
        raise bad_request(f"model: evaluations are of models (model:<id>), not "
                          f"{_shown(scope)}")
    return scope


def check_rollback(scope: str, rollout: Mapping[str, Any] | None, to_stage: str) -> None:
    if rollout is None:
        raise ApiError(404, f"no rollout state for {scope} on control.rollout")
    current = rollout["stage"]
    if STAGES.index(to_stage) >= STAGES.index(current):
        raise ApiError(409, f"cannot roll {scope} back from {current} to {to_stage}: "
                       "not an earlier stage")


# --- views of table state (this worker's partitions) -----------------------------------


def freshness_rows(scope_health: Iterable[tuple[str, Any]], now_ms: int,
                   threshold_s: Callable[[str, str], float], match: ScopeFilter,
                   stale_only: bool = False) -> dict[str, Any]:
    """Per scope and feed: age, threshold, stale flag, gap counts."""
    rows: dict[str, Any] = {}
    for scope, state in scope_health:
        if not state or not state.get("feeds") or not match.matches(scope):
            continue
        feeds = {}
        for feed, entry in state["feeds"].items():
            age_s = max(0, now_ms - entry["last_event_ms"]) / 1000
            threshold = threshold_s(scope, feed)
            gaps = gap_counts(entry)
            feed_row = {
                "last_event_ms": entry["last_event_ms"], "age_s": round(age_s, 3),
                "threshold_s": threshold, "stale": age_s > threshold,
                "alert_id": (entry.get("alert") or {}).get("alert_id"),
                "highest_sequence": gaps["highest"], "missing": gaps["missing"],
                "duplicates": gaps["duplicates"], "reorders": gaps["reorders"],
                "count": gaps["count"],
            }
            if not stale_only or feed_row["stale"]:
                feeds[feed] = feed_row
        if feeds:
            rows[scope] = {"feeds": feeds, "stale": any(f["stale"] for f in feeds.values()),
                           "missing": sum(f["missing"] for f in feeds.values())}
    return rows


def heartbeat_rows(scope_health: Iterable[tuple[str, Any]], now_ms: int, miss_factor: float,
                   match: ScopeFilter) -> dict[str, Any]:
    """Per scope with heartbeats (bots, markets, ...): age, limit, healthy."""
    rows: dict[str, Any] = {}
    for scope, state in scope_health:
        beat = (state or {}).get("heartbeat")
        if not beat or not match.matches(scope):
            continue
        age_s = max(0, now_ms - beat["last_event_ms"]) / 1000
        limit_s = beat["interval_ms"] * miss_factor / 1000
        rows[scope] = {"last_event_ms": beat["last_event_ms"], "age_s": round(age_s, 3),
                       "interval_ms": beat["interval_ms"], "limit_s": limit_s,
                       "healthy": age_s <= limit_s,
                       "alert_id": (beat.get("alert") or {}).get("alert_id")}
    return rows


def execution_rows(execution_state: Iterable[tuple[str, Any]],
                   match: ScopeFilter) -> dict[str, Any]:
    """Fill ratio and slippage error per window, per market, bot and model cohort
    (keys ``model:<id>#CANARY`` / ``#BASELINE``), with the execution alerts firing."""
    rows: dict[str, Any] = {}
    for key, state in execution_state:
        if not state:
            continue
        scope, _, cohort = key.partition("#")
        if not match.matches(scope):
            continue
        alerts = state.get("alerts") or {}
        rows[key] = {
            "scope": scope, "cohort": cohort or None,
            "last_event_ms": state.get("last_event_ms"), "windows": state.get("figures") or {},
            "alerts": {code: (alert or {}).get("alert_id") for code, alert in alerts.items()},
            "breaching": sorted(code for code, alert in alerts.items() if alert),
        }
    return rows


def slo_rows(slo_windows: Iterable[tuple[str, Any]], match: ScopeFilter) -> dict[str, Any]:
    """Per SLO of a scope (key ``<scope>|<slo>``), with its owner and the scopes a
    page-level burn pauses besides it (setting slos' "endangers"): compliance and burn
    rate per window, error budget left, each burn rule's rates and whether it fires, and
    the page- and ticket-level alerts firing."""
    rows: dict[str, Any] = {}
    for key, state in slo_windows:
        if not state or not match.matches(state["scope"]):
            continue
        status = state.get("status") or {}
        rows[key] = {
            "scope": state["scope"], "slo": state["slo"], "owner": state.get("owner"),
            "endangers": list(state.get("endangers") or ()),
            "target": status.get("target"), "evaluated_ms": status.get("evaluated_ms"),
            "windows": status.get("windows") or {},
            "budget_window_s": status.get("budget_window_s"),
            "error_budget_remaining": status.get("error_budget_remaining"),
            "rules": status.get("rules") or [],
            "firing_rules": status.get("firing_rules") or [],
            "alerts": {"GOV_SLO_BURN": (state.get("alert") or {}).get("alert_id"),
                       "GOV_SLO_BURN_TICKET": (state.get("ticket_alert") or {}).get("alert_id")},
        }
    return rows


def drift_rows(drift_state: Iterable[tuple[str, Any]], canary_state: Iterable[tuple[str, Any]],
               match: ScopeFilter) -> dict[str, Any]:
    """Per model: drift against training (max KL, its feature, healthy), the canary
    against the baseline per leading metric (means, delta, verdict, p-values) and the
    baseline delta (the live cohort against its own previous window)."""
    rows: dict[str, Any] = {}
    for scope, state in drift_state:
        if state and match.matches(scope):
            rows.setdefault(scope, {"drift": None, "canary": None})["drift"] = {
                **(state.get("evaluation") or {}),
                "alert_id": (state.get("alert") or {}).get("alert_id")}
    for scope, state in canary_state:
        if state and match.matches(scope):
            evaluation = state.get("evaluation") or {}
            rows.setdefault(scope, {"drift": None, "canary": None})["canary"] = {
                "canary_version": evaluation.get("canary_version"),
                "combined": evaluation.get("combined"),
                "regressed": evaluation.get("regressed", []),
                "evaluated_ms": evaluation.get("evaluated_ms"),
                "metrics": evaluation.get("metrics", {}),
                # the live (baseline) cohort now against its previous window, per metric
                "baseline_delta": evaluation.get("baseline_delta", {}),
                "alert_id": (state.get("alert") or {}).get("alert_id")}
    return rows


# --- views of the compacted output topics (every worker reads them whole) --------------


def pause_view(state: PauseState) -> dict[str, Any]:
    return state.model_dump(mode="json")


def rollout_view(state: RolloutState) -> dict[str, Any]:
    view = state.model_dump(mode="json")
    view["stage_index"] = STAGES.index(state.stage.value)
    view["ladder"] = STAGES
    return view


def trace_view(envelope: ReportEnvelope) -> dict[str, Any]:
    """What caused a decision: its cause's trace id and span id (from the input's
    traceparent, or null) and the input records, as topic/partition@offset."""
    return {"trace_id": envelope.trace_id, "cause_span_id": envelope.cause_span_id,
            "cause_events": list(envelope.cause_events)}


def incident_view(envelope: ReportEnvelope) -> dict[str, Any]:
    payload = envelope.payload
    assert isinstance(payload, IncidentPayload)
    timeline = [entry.model_dump(mode="json") for entry in payload.timeline]
    fired = [e["ref"] for e in timeline if e["what"].startswith("alert firing") and e["ref"]]
    ended = {e["ref"] for e in timeline if e["what"].startswith("alert resolved")}
    firing = [alert for alert in fired if resolved_alert_id(alert) not in ended]
    acked = [e for e in timeline if e["what"].startswith("acknowledged")]
    resolved = [e for e in timeline if e["what"].startswith("resolved")]
    pauses = [e for e in timeline if e["what"].startswith("scope ")]
    causes = [e["what"].removeprefix(ROOT_CAUSE_ENTRY) for e in timeline
              if e["what"].startswith(ROOT_CAUSE_ENTRY)]
    return {
        "incident_id": payload.incident_id, "state": payload.state.value,
        "severity": envelope.severity.value, "scope": envelope.scope,
        "dedup_key": envelope.dedup_key, "reason_code": envelope.reason_code,
        "reason_family": payload.reason_family, "opened_ms": payload.opened_time_ms,
        "updated_ms": max([payload.opened_time_ms, *(e["time_ms"] for e in timeline)]),
        "acknowledged_by": acked[-1]["actor"] if acked else None,
        "acknowledged_ms": acked[-1]["time_ms"] if acked else None,
        "resolved_by": resolved[-1]["actor"] if resolved else None,
        "resolved_ms": resolved[-1]["time_ms"] if resolved else None,
        "firing_alerts": len(firing), "alerts": len(fired),
        "paused": pauses[-1]["what"].startswith("scope paused") if pauses else None,
        "root_cause": causes[-1] if causes else None,
        "follow_ups": [e["what"].removeprefix(FOLLOW_UP_ENTRY) for e in timeline
                       if e["what"].startswith(FOLLOW_UP_ENTRY)],
        "timeline": timeline, "envelope_id": envelope.envelope_id, **trace_view(envelope),
    }


def trade_decision(payload: TradePayload) -> str:
    """What became of the order: ordered (nothing filled), partially filled, filled."""
    if payload.filled_size <= 0:
        return "ordered"
    return "filled" if payload.filled_size >= payload.size else "partially filled"


def trade_audit_view(envelope: ReportEnvelope) -> dict[str, Any]:
    """A runner's trade report as an audit entry (kind trade): the order, side, size,
    price, fill, model version and runner under ``trade``."""
    payload = envelope.payload
    assert isinstance(payload, TradePayload)
    return {
        "envelope_id": envelope.envelope_id, "time_ms": envelope.observed_time_ms,
        "event_time_ms": envelope.event_time_ms, "kind": "trade",
        "scope": envelope.scope, "reason_code": envelope.reason_code,
        "severity": envelope.severity.value, "source": envelope.source, "action": "trade",
        "actor": envelope.source, "decision": trade_decision(payload), "before": None,
        "after": None, "evidence": {}, "trade": payload.model_dump(mode="json"),
        **trace_view(envelope),
    }


def audit_view(envelope: ReportEnvelope) -> dict[str, Any]:
    """An audit.log entry: a decision's audit (kind alert, incident or audit) or a
    runner's trade (kind trade)."""
    payload = envelope.payload
    if isinstance(payload, TradePayload):
        return trade_audit_view(envelope)
    assert isinstance(payload, AuditPayload)

    def parsed(text: str | None) -> Any:
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text

    return {
        "envelope_id": envelope.envelope_id, "time_ms": envelope.observed_time_ms,
        "scope": envelope.scope, "reason_code": envelope.reason_code,
        "severity": envelope.severity.value, "source": envelope.source,
        "action": payload.action, "actor": payload.actor, "decision": payload.decision,
        "before": parsed(payload.before), "after": parsed(payload.after),
        "evidence": dict(payload.evidence), "event_time_ms": envelope.event_time_ms,
        "kind": payload.action if payload.action in ("alert", "incident") else "audit",
        "trade": None, **trace_view(envelope),
    }


def incident_sort_key(incident: Mapping[str, Any]) -> tuple[int, int, int]:
    """Unresolved first, then the most severe, then the newest."""
    return (INCIDENT_STATES.index(incident["state"]) // 2,
            -SEVERITIES.index(incident["severity"]), -incident["opened_ms"])


def select_incidents(incidents: Iterable[dict[str, Any]],
                     params: Mapping[str, Any]) -> list[dict[str, Any]]:
    match = scope_filter(params)
    states = params.get("state")
    severities = params.get("severity")
    chosen = [
        incident for incident in incidents
        if match.matches(incident["scope"])
        and (states is None or incident["state"] in states)
        and (severities is None or incident["severity"] in severities)
    ]
    chosen.sort(key=incident_sort_key)
    return chosen[:params.get("limit", 500)]
