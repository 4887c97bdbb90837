"""The operator API, documented: an OpenAPI 3.1 document served at /api/openapi.json.

Generated from the definitions the API validates with (streams/web/api.py: patterns,
bounds, enums, each route's query parameters and body fields; streams/scopes.py: the
scope grammar; streams/web/auth.py: the rights), so the two cannot drift.
tests/unit/web/test_openapi.py holds it to the routes streams/web/views.py registers and
to the validators; tests/integration/test_openapi_contract.py runs schemathesis against a
live worker with it.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from streams.control.incidents import RESPONSE_STATS
from streams.incident_review import MAX_TRADES_LISTED
from streams.records import OpsAction, PauseState, RolloutState, TimelineEntry, TradePayload
from streams.web import api
from streams.web.api import (
    COMMAND_ID_PATTERN,
    EVALUATED_MODEL_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    INCIDENT_ID_PATTERN,
    INCIDENT_STATES,
    MAX_COMMAND_ID,
    MAX_EVALUATED_MODEL,
    MAX_INCIDENT_ID,
    MAX_MODEL,
    METRIC_NAME_PATTERN,
    MODEL_PATTERN,
    RECORD_KINDS,
    ROLLOUT_SCOPE_PATTERN,
    ROUTE_QUERIES,
    SCOPE_SCHEMA,
    SEVERITIES,
    STAGES,
    BodyField,
    string_schema,
)
from streams.web.auth import CHALLENGE

JSON = "application/json"
HTML = "text/html"
PROMETHEUS = "text/plain; version=0.0.4"  # the exposition format's own content type
TEXT = "text/plain"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}, **more}


def _error(description: str) -> dict[str, Any]:
    return _json(description, _ref("Error"))


UNAUTHORIZED = _error("no, a malformed or an unknown bearer token") | {"headers": {
    "WWW-Authenticate": {"required": True, "description": f"{CHALLENGE}, error=...",
                         "schema": {"type": "string"}}}}


# --- parameters -------------------------------------------------------------------------


def _path(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


SCOPE_PATH = _path("scope", "a scope: global, or kind:id segments joined by / (e.g. "
                   "market:m1, bot:b1/market:m7; / may come percent-encoded)", SCOPE_SCHEMA)
ROLLBACK_SCOPE_PATH = _path("scope", "a model:<id> or strategy:<id> scope",
                            string_schema(ROLLOUT_SCOPE_PATTERN, MAX_MODEL))
MODEL_PATH = _path("model", "a model id (model:<id> implied; not starting with '.'), or a "
                   "model:<id> or strategy:<id> scope (':' may come percent-encoded)",
                   string_schema(MODEL_PATTERN, MAX_MODEL))
EVALUATED_MODEL_PATH = _path(
    "model", "a model id (model:<id> implied; not starting with '.') or a model:<id> scope "
    "(':' may come percent-encoded)", string_schema(EVALUATED_MODEL_PATTERN, MAX_EVALUATED_MODEL))
INCIDENT_PATH = _path("incident_id", "an incident id, inc-<family>-<24 hex digits>",
                      string_schema(INCIDENT_ID_PATTERN, MAX_INCIDENT_ID))
COMMAND_PATH = _path("command_id", "a command id: the Idempotency-Key it was sent with, or "
                     "the id the API gave it (api-<hex>)",
                     string_schema(COMMAND_ID_PATTERN, MAX_COMMAND_ID))
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": string_schema(IDEMPOTENCY_KEY_PATTERN, MAX_COMMAND_ID),
    "description": "the command id: a retry with the same key is the same command (applied "
                   "once, answered with the same outcome); a key already used for another "
                   "action is a 409"}
TRACEPARENT = {
    "name": "traceparent", "in": "header", "required": False,
    # Any string: W3C Trace Context has a receiver ignore a traceparent it cannot parse
    # (and start a new trace), never refuse the request for it.
    "schema": {"type": "string"},
    "description": "W3C trace context, 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>: "
                   "the command's decisions (pause, incident, audit entry) carry its trace "
                   "id and span id; one that does not parse (or over 512 bytes) is ignored, "
                   "as the W3C recommendation asks, and the request is served"}
METRIC_NAMES = {
    "name": "name[]", "in": "query", "required": False, "style": "form", "explode": True,
    "schema": {"type": "array", "items": string_schema(METRIC_NAME_PATTERN, 200)},
    "description": "only these series (Prometheus' own parameter); the live counters alone "
                   "skip the table scan"}


def query_parameters(route: str) -> list[dict[str, Any]]:
    """The query parameters the route parses (api.ROUTE_QUERIES), as OpenAPI parameters."""
    parameters = []
    for name, param in ROUTE_QUERIES.get(route, {}).items():
        parameter = {"name": name, "in": "query", "required": False, "schema": param.schema,
                     "description": param.description}
        if not param.explode:
            parameter |= {"style": "form", "explode": False}
        parameters.append(parameter)
    return parameters


# --- operations -------------------------------------------------------------------------


def _security(right: str | None) -> list[dict[str, list[str]]]:
    """The bearer scheme with the right needed (an http scheme's 'scopes' in OpenAPI 3.1
    name roles), or no security at all."""
    return [{"bearer": [right]}] if right else []


def _read(operation_id: str, summary: str, ok: dict[str, Any], *, route: str,
          read_requires_token: bool, path: tuple[dict[str, Any], ...] = (),
          not_found: str | None = None, description: str = "",
          links: dict[str, Any] | None = None) -> dict[str, Any]:
    """A GET of the JSON API: 200, 400 for an unknown, repeated or malformed parameter,
    401/403 when reads need the 'read' right, 404 where it names something."""
    responses: dict[str, Any] = {
        "200": _json("OK", ok, **({"links": links} if links else {})),
        "400": _error("an unknown, repeated or malformed parameter: the message says which "
                      "and why"),
    }
    if read_requires_token:
        responses |= {"401": UNAUTHORIZED,
                      "403": _error("the token lacks the 'read' right")}
    if not_found:
        responses["404"] = _error(not_found)
    return {"get": {"operationId": operation_id, "summary": summary,
                    "description": description, "tags": ["read"],
                    "security": _security("read" if read_requires_token else None),
                    "parameters": [*path, *query_parameters(route)],
                    "responses": responses}}


def body_schema(fields: dict[str, BodyField]) -> dict[str, Any]:
    """The request body parse_body takes: exactly these string fields, never null."""
    return {"type": "object", "additionalProperties": False,
            "properties": {name: field.schema() for name, field in fields.items()},
            "required": [name for name, field in fields.items() if field.required]}


def _command(operation_id: str, summary: str, right: str, path: dict[str, Any],
             fields: dict[str, BodyField], conflicts: str,
             not_found: str | None = None) -> dict[str, Any]:
    """A mutation: auth first (401, 403), then the request (400), then the state (404,
    409), then ops.commands (503); 202 with the command id and its outcome once known."""
    responses: dict[str, Any] = {
        "202": _json("the command is on ops.commands; its outcome is in the reply once "
                     "applied ('done'), or at status_url later ('pending')",
                     _ref("CommandReply")),
        "400": _error("a malformed request: the message says what and where"),
        "401": UNAUTHORIZED,
        "403": _error(f"the token lacks the '{right}' right"),
        "409": _error(f"{conflicts}; or the Idempotency-Key was used for another action"),
        "503": _error("the command could not be published to ops.commands"),
    }
    if not_found:
        responses["404"] = _error(not_found)
    return {"post": {
        "operationId": operation_id, "summary": summary, "tags": ["command"],
        "description": f"Needs a bearer token with the '{right}' right. Publishes an "
                       "OpsCommand on ops.commands (the path `polymon ctl` and raw "
                       "producers share), waits briefly for its audit entry and answers "
                       "202 with the command id and, once known, the outcome.",
        "security": _security(right),
        "parameters": [path, IDEMPOTENCY_KEY, TRACEPARENT],
        "requestBody": {"required": True, "content": {JSON: {"schema": body_schema(fields)}}},
        "responses": responses,
    }}


def _open(operation_id: str, summary: str, responses: dict[str, Any],
          parameters: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """A page outside the JSON API: never behind a token."""
    return {"get": {"operationId": operation_id, "summary": summary, "tags": ["worker"],
                    "security": [], "parameters": list(parameters), "responses": responses}}


def _incident_links(pointer: str) -> dict[str, Any]:
    """An incident id from a response into the incident's own operations (stateful tests
    and generated clients follow these)."""
    return {name: {"operationId": operation, "parameters": {"incident_id": pointer}}
            for name, operation in (("GetIncident", "getIncident"),
                                    ("AcknowledgeIncident", "acknowledgeIncident"),
                                    ("ResolveIncident", "resolveIncident"))}


def paths(read_requires_token: bool = False) -> dict[str, dict[str, Any]]:
    """Every route and method the worker serves; GETs of the JSON API need the 'read'
    right when ``read_requires_token`` (POLYMON_API_READ_REQUIRES_TOKEN)."""
    reads = {"read_requires_token": read_requires_token}
    fanned = ("Fanned out to every worker and merged; 'complete' says whether every "
              "partition answered. local=true: this worker's partitions only.")
    return {
        "/healthz": _open("getHealth", "readiness of this worker", {
            "200": _json("ready", _ref("Health")),
            "503": _json("not ready yet (no partitions, recovering, rebalancing or the "
                         "read model catching up)", _ref("Health"))}),
        "/metrics": _open("getMetrics", "Prometheus metrics of this worker", {
            "200": {"description": "the exposition text",
                    "content": {PROMETHEUS: {"schema": {"type": "string"}}}},
            "400": {"description": "a name[] that is not a metric name",
                    "content": {TEXT: {"schema": {"type": "string"}}}}},
            (METRIC_NAMES,)),
        "/": _open("getConsole", "the operator console", {
            "200": {"description": "the console's HTML page",
                    "content": {HTML: {"schema": {"type": "string"}}}}}),
        "/api/openapi.json": {"get": {
            "operationId": "getOpenApiDocument", "summary": "this document", "tags": ["read"],
            "security": [], "parameters": [],
            "responses": {"200": _json("OpenAPI 3.1", {"type": "object", "required": [
                "openapi", "info", "paths"]}),
                "400": _error("a query parameter: this document takes none")}}},
        "/api/scopes": _read("listScopes", "what each scope on this worker's partitions last "
                             "reported", _ref("ScopeSummaries"), route="/api/scopes", **reads),
        "/api/freshness": _read("listFreshness", "data freshness and gap counts per scope and "
                                "feed", _fanned("FreshnessRow"), route="/api/freshness",
                                description=fanned, **reads),
        "/api/heartbeats": _read("listHeartbeats", "heartbeat health per bot, market, ...",
                                 _fanned("HeartbeatRow"), route="/api/heartbeats",
                                 description=fanned, **reads),
        "/api/runners": _read("listRunners", "per trading runner, its PauseGuard's pause "
                              "acknowledgements: lag behind control.pauses (records, "
                              "seconds), oldest unapplied pause, silence, its alerts",
                              _fanned("RunnerRow", "runners"), route="/api/runners",
                              description=fanned, **reads),
        "/api/execution": _read("listExecution", "fill ratio and slippage error per window "
                                "(the execution agents' tables)", _fanned("ExecutionRow"),
                                route="/api/execution", description=fanned, **reads),
        "/api/drift": _read("listDrift", "model drift and canary/baseline deltas (the drift "
                            "and canary agents' tables)", _fanned("DriftRow", "models"),
                            route="/api/drift", description=fanned, **reads),
        "/api/slos": _read("listSlos", "SLOs with their owners: compliance and burn rate per "
                           "window, error budget left, burn rules, firing alerts (the health "
                           "agent's SLO table)", _fanned("SloRow", "slos"),
                           route="/api/slos", description=fanned, **reads),
        "/api/incidents": _read(
            "listIncidents", "the incident queue, unresolved first, most severe first",
            {"type": "object", "required": ["incidents", "counts"], "properties": {
                "incidents": {"type": "array", "items": _ref("Incident")},
                "counts": {"type": "object", "required": list(INCIDENT_STATES),
                           "properties": {s: {"type": "integer", "minimum": 0}
                                          for s in INCIDENT_STATES}}}},
            route="/api/incidents", links=_incident_links("$response.body#/incidents/0/"
                                                          "incident_id"), **reads),
        "/api/incidents/stats": _read(
            "incidentStats", "per reason family: incidents by state, and the seconds from "
            "opening to acknowledgement and to resolution", {
                "type": "object", "required": ["families"], "properties": {
                    "families": {"type": "object",
                                 "additionalProperties": _ref("IncidentFamilyStats")}}},
            route="/api/incidents/stats", **reads),
        "/api/incidents/{incident_id}/review": _read(
            "getIncidentReview", "the incident's review as markdown: timeline, decisions "
            "and their causes, pauses and their durations, trades affected, root cause, "
            "follow-ups",
            {"type": "object", "required": ["incident_id", "state", "markdown", "trades"],
             "properties": {"incident_id": {"type": "string"},
                            "state": {"type": "string", "enum": list(INCIDENT_STATES)},
                            "markdown": {"type": "string"},
                            "trades": _ref("IncidentTrades")}},
            route="/api/incidents/{incident_id}/review", path=(INCIDENT_PATH,),
            not_found="no such incident", **reads),
        "/api/incidents/{incident_id}": _read(
            "getIncident", "one incident with its timeline and the trades it affected",
            _ref("Incident"),
            route="/api/incidents/{incident_id}", path=(INCIDENT_PATH,),
            not_found="no such incident", **reads),
        "/api/pauses": _read(
            "listPauses", "pause state per scope (control.pauses)",
            {"type": "object", "required": ["pauses", "paused"], "properties": {
                "pauses": {"type": "object", "additionalProperties": _ref("PauseState")},
                "paused": {"type": "array", "items": {"type": "string"},
                           "description": "the scopes paused now"}}},
            route="/api/pauses", **reads),
        "/api/rollout": _read(
            "listRollout", "rollout stage and history per model/strategy (control.rollout)",
            {"type": "object", "required": ["ladder", "rollout"], "properties": {
                "ladder": _ladder(),
                "rollout": {"type": "object", "additionalProperties": _ref("Rollout")}}},
            route="/api/rollout", **reads),
        "/api/rollout/{model}": _read(
            "getRollout", "the rollout of one model or strategy", _ref("Rollout"),
            route="/api/rollout/{model}", path=(MODEL_PATH,),
            not_found="no rollout state for it on control.rollout", **reads),
        "/api/audit": _read(
            "listAudit", "recent audit.log entries, newest first: polymon's decisions "
            "(kind alert, incident, audit) and the runners' trades (kind trade)",
            {"type": "object", "required": ["entries"], "properties": {
                "entries": {"type": "array", "items": _ref("AuditEntry")}}},
            route="/api/audit", **reads),
        "/api/commands/{command_id}": _read(
            "getCommand", "the outcome of an operator command",
            {"type": "object", "required": ["command_id", "status", "outcome"], "properties": {
                "command_id": {"type": "string"}, "status": {"const": "done"},
                "outcome": _ref("AuditEntry")}},
            route="/api/commands/{command_id}", path=(COMMAND_PATH,),
            not_found="no outcome for this command: unknown, or not applied yet", **reads),
        "/api/workers": _read("listWorkers", "the workers of the group and their partitions",
                              _ref("Workers"), route="/api/workers", **reads),
        "/api/scopes/{scope}/pause": _command(
            "pauseScope", "pause a scope (and everything it covers)", "pause", SCOPE_PATH,
            api.REASON_BODY, "the Idempotency-Key was used for another action"),
        "/api/scopes/{scope}/resume": _command(
            "resumeScope", "resume a scope: every hold released, latched ones too", "resume",
            SCOPE_PATH, api.REASON_BODY, "the Idempotency-Key was used for another action"),
        "/api/scopes/{scope}/rollback": _command(
            "rollBack", "roll a model/strategy back to an earlier stage", "rollback",
            ROLLBACK_SCOPE_PATH, api.ROLLBACK_BODY,
            "to_stage is not earlier than the current stage",
            not_found="no rollout state for the scope on control.rollout"),
        "/api/rollout/{model}/promote": _command(
            "promote", "promote a model/strategy (to the next stage, or to_stage)", "promote",
            MODEL_PATH, api.PROMOTE_BODY, "already LIVE, or to_stage is not later than the "
            "current stage"),
        "/api/rollout/{model}/evaluation": _command(
            "reportEvaluation", "report a model version's evaluation result (EVALUATE): a "
            "passing one clears its REEVALUATION_REQUIRED mark", "promote", EVALUATED_MODEL_PATH,
            api.EVALUATION_BODY, "never for the state (every evaluation is recorded)",
            not_found="no rollout state for the model on control.rollout"),
        "/api/incidents/{incident_id}/ack": _command(
            "acknowledgeIncident", "acknowledge an incident", "ack", INCIDENT_PATH,
            api.REASON_BODY, "the incident is already acknowledged or resolved",
            not_found="no such incident"),
        "/api/incidents/{incident_id}/resolve": _command(
            "resolveIncident", "resolve an incident; a CRITICAL one with its root cause and "
            "follow-ups", "resolve", INCIDENT_PATH, api.RESOLVE_BODY,
            "the incident is already resolved, or it is CRITICAL and the body lacks its "
            "root_cause or follow_ups", not_found="no such incident"),
    }


# --- schemas of the answers -------------------------------------------------------------


def _ladder() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "enum": STAGES},
            "description": "the stages, in order"}


def _fanned(row: str, key: str = "scopes") -> dict[str, Any]:
    """A fanned-out answer: the rows of every worker merged, or (local=true) this
    worker's own rows with its partitions."""
    rows = {"type": "object", "additionalProperties": _ref(row)}
    return {"oneOf": [
        {"type": "object", "required": [key, "workers", "complete", "now_ms"],
         "properties": {key: rows, "complete": {"type": "boolean"},
                        "now_ms": {"type": "integer"},
                        "workers": {"type": "array", "items": _ref("WorkerAnswer")}}},
        {"type": "object", "required": ["worker_id", "url", "partitions", "data"],
         "properties": {"worker_id": {"type": "string"}, "url": {"type": "string"},
                        "partitions": _partitions(), "data": rows}},
    ]}


def _partitions() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "integer", "minimum": 0}}


def _object(required: list[str], properties: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, **more}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}
_STR_OR_NULL = {"type": ["string", "null"]}
# what caused a decision (streams.tracing): its input's trace context and records
TRACE_FIELDS = ("trace_id", "cause_span_id", "cause_events")
_TRACE = {
    "trace_id": {"type": ["string", "null"], "pattern": "^[0-9a-f]{32}$",
                 "description": "W3C trace id of the input that caused it (its traceparent)"},
    "cause_span_id": {"type": ["string", "null"], "pattern": "^[0-9a-f]{16}$",
                      "description": "span id of that input's traceparent"},
    "cause_events": {"type": "array", "items": _STR, "maxItems": 16,
                     "description": "the input records that caused it, as "
                                    "<topic>/<partition>@<offset>"},
}
_INT_OR_NULL = {"type": ["integer", "null"]}
_RESPONSE_TIMES = {"anyOf": [
    {"type": "object", "required": list(RESPONSE_STATS),
     "properties": {"count": _INT, **{stat: _NUM for stat in RESPONSE_STATS[1:]}}},
    {"type": "null"}], "description": "seconds from opening (null: none got there yet)"}


def _record_schemas() -> dict[str, Any]:
    """The records the API shows as they are (pause and rollout state, timeline entries):
    their JSON schemas from the pydantic models that validate them."""
    _, top = models_json_schema(
        [(model, "serialization")
         for model in (PauseState, RolloutState, TimelineEntry, TradePayload)],
        ref_template="#/components/schemas/{model}")
    return top["$defs"]


def components() -> dict[str, Any]:
    schemas = _record_schemas()
    rollout = schemas["RolloutState"]
    schemas["Rollout"] = {
        **rollout, "title": "Rollout", "description": "control.rollout's state, with the ladder",
        "required": [*rollout.get("required", []), "stage_index", "ladder"],
        "properties": {**rollout["properties"],
                       "stage_index": {"type": "integer", "minimum": 0}, "ladder": _ladder()}}
    schemas |= {
        "Error": _object(["error", "status"], {
            "error": {"type": "string", "description": "what is wrong, and where"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599,
                       "description": "the HTTP status again"}}, additionalProperties=False),
        "CommandReply": _object(
            ["command_id", "action", "scope", "target", "actor", "status", "outcome",
             "status_url"],
            {"command_id": _STR, "action": {"type": "string", "enum": [a.value for a in OpsAction]},
             "scope": _STR, "target": _STR_OR_NULL, "actor": _STR,
             "status": {"type": "string", "enum": ["done", "pending"]},
             "outcome": {"anyOf": [_ref("AuditEntry"), {"type": "null"}],
                         "description": "the command's audit.log entry: decision, before, "
                                        "after, evidence"},
             "status_url": _STR}),
        "AuditEntry": _object(
            ["envelope_id", "time_ms", "event_time_ms", "kind", "scope", "reason_code",
             "severity", "source", "action", "actor", "decision", "before", "after",
             "evidence", "trade", *TRACE_FIELDS],
            {"envelope_id": _STR, "time_ms": _INT, "scope": _STR, "reason_code": _STR,
             "event_time_ms": {**_INT, "description": "event time of its cause (a trade: "
                               "of the trade)"},
             "kind": {"type": "string", "enum": list(RECORD_KINDS),
                      "description": "alert or incident: the audit of such a decision; "
                                     "audit: any other decision; trade: a runner's trade "
                                     "report (exec.trades)"},
             "trade": {"anyOf": [_ref("TradePayload"), {"type": "null"}],
                       "description": "kind trade: order, runner, side, size, price, fill, "
                                      "model version"},
             "severity": {"type": "string", "enum": list(SEVERITIES)}, "source": _STR,
             "action": _STR, "actor": _STR, "decision": _STR,
             "before": {"description": "the state before (JSON), or null"},
             "after": {"description": "the state after (JSON), or null"},
             "evidence": {"type": "object", "additionalProperties": _STR},
             **_TRACE}),
        "Incident": _object(
            ["incident_id", "state", "severity", "scope", "dedup_key", "reason_code",
             "reason_family", "opened_ms", "updated_ms", "acknowledged_by", "acknowledged_ms",
             "resolved_by", "resolved_ms", "firing_alerts", "alerts", "paused", "root_cause",
             "follow_ups", "timeline", "envelope_id", *TRACE_FIELDS],
            {"incident_id": _STR, "state": {"type": "string", "enum": list(INCIDENT_STATES)},
             "severity": {"type": "string", "enum": list(SEVERITIES)}, "scope": _STR,
             "dedup_key": _STR, "reason_code": _STR, "reason_family": _STR,
             "opened_ms": _INT, "updated_ms": _INT, "acknowledged_by": _STR_OR_NULL,
             "acknowledged_ms": _INT_OR_NULL, "resolved_by": _STR_OR_NULL,
             "resolved_ms": _INT_OR_NULL, "firing_alerts": _INT, "alerts": _INT,
             "paused": {"type": ["boolean", "null"]},
             "root_cause": {**_STR_OR_NULL, "description": "given when it was resolved"},
             "follow_ups": {"type": "array", "items": _STR,
                            "description": "given when it was resolved"},
             "timeline": {"type": "array", "items": _ref("TimelineEntry")},
             "envelope_id": _STR, **_TRACE,
             "trades": {**_ref("IncidentTrades"),
                        "description": "one incident's view only (not in the list)"}}),
        "IncidentTrades": _object(["envelope_ids", "count", "lead_s"], {
            "envelope_ids": {"type": "array", "items": _STR,
                             "maxItems": MAX_TRADES_LISTED,
                             "description": "the first, oldest first"},
            "count": {**_INT, "minimum": 0, "description": "how many in all"},
            "lead_s": {**_NUM, "description": "trades from this long before the opening"}},
            description="the runners' trade envelopes of the incident's scope (or a scope "
                        "it covers) from lead_s before its opening to its resolution or "
                        "now, from audit.log's tail"),
        "IncidentFamilyStats": _object(
            ["incidents", *INCIDENT_STATES, "time_to_acknowledge_s", "time_to_resolve_s"],
            {"incidents": _INT, **{state: _INT for state in INCIDENT_STATES},
             "time_to_acknowledge_s": _RESPONSE_TIMES, "time_to_resolve_s": _RESPONSE_TIMES}),
        "FreshnessRow": _object(["feeds", "stale", "missing"], {
            "feeds": {"type": "object", "additionalProperties": _object(
                ["last_event_ms", "age_s", "threshold_s", "stale", "missing"],
                {"last_event_ms": _INT, "age_s": _NUM, "threshold_s": _NUM, "stale": _BOOL,
                 "alert_id": _STR_OR_NULL, "highest_sequence": _INT_OR_NULL,
                 "missing": _INT, "duplicates": _INT, "reorders": _INT, "count": _INT})},
            "stale": _BOOL, "missing": _INT,
            "paused_by": {**_STR_OR_NULL, "description": "the scope whose pause covers it"}}),
        "HeartbeatRow": _object(
            ["last_event_ms", "age_s", "interval_ms", "limit_s", "healthy"],
            {"last_event_ms": _INT, "age_s": _NUM, "interval_ms": _INT, "limit_s": _NUM,
             "healthy": _BOOL, "alert_id": _STR_OR_NULL, "paused_by": _STR_OR_NULL}),
        "RunnerRow": _object(
            ["runner_id", "required", "listed", "never_acknowledged", "silent", "lag_records",
             "lag_s", "last_ack_age_s", "oldest_unapplied", "alerts"],
            {"runner_id": _STR, "runner_version": _STR_OR_NULL, "guard_state": _STR_OR_NULL,
             "required": _BOOL, "listed": _BOOL, "never_acknowledged": _BOOL,
             "last_ack_age_s": {"type": ["number", "null"]},
             "lag_records": _INT_OR_NULL, "lag_s": {"type": ["number", "null"]},
             "oldest_unapplied": {"oneOf": [{"type": "null"}, _object(
                 ["scope", "state_id", "paused", "age_s"],
                 {"scope": _STR, "state_id": _STR, "paused": _BOOL, "age_s": _NUM})]},
             "paused_scopes": _INT_OR_NULL, "silent": _BOOL, "not_applied": _BOOL,
             "alerts": {"type": "object", "additionalProperties": _STR},
             "bound_s": _NUM, "timeout_s": _NUM, "view_caught_up": _BOOL}),
        "ExecutionRow": _object(
            ["scope", "cohort", "windows", "alerts", "breaching"],
            {"scope": _STR, "cohort": _STR_OR_NULL, "last_event_ms": _INT_OR_NULL,
             "windows": {"type": "object"},
             "alerts": {"type": "object", "additionalProperties": _STR_OR_NULL},
             "breaching": {"type": "array", "items": _STR}}),
        "SloRow": _object(
            ["scope", "slo", "owner", "windows", "rules", "firing_rules", "alerts"],
            {"scope": _STR, "slo": _STR, "owner": _STR_OR_NULL,
             "endangers": {"type": "array", "items": _STR},
             "target": {"type": ["number", "null"]}, "evaluated_ms": _INT_OR_NULL,
             "windows": {"type": "object"}, "budget_window_s": _INT_OR_NULL,
             "error_budget_remaining": {"type": ["number", "null"]},
             "rules": {"type": "array", "items": {"type": "object"}},
             "firing_rules": {"type": "array", "items": _STR},
             "alerts": {"type": "object", "additionalProperties": _STR_OR_NULL}}),
        "DriftRow": _object(["drift", "canary"], {"drift": {"type": ["object", "null"]},
                                                  "canary": {"type": ["object", "null"]}}),
        "WorkerAnswer": _object(["url", "partitions", "ok"], {
            "worker_id": _STR_OR_NULL, "url": _STR, "partitions": _partitions(),
            "ok": _BOOL, "error": _STR}),
        "ScopeSummaries": _object(["worker_id", "scopes"], {
            "worker_id": _STR,
            "scopes": {"type": "object", "additionalProperties": {"type": ["object", "null"]}}}),
        "Workers": _object(["worker_id", "url", "members", "read_model"], {
            "worker_id": _STR, "url": _STR,
            "members": {"type": "array", "items": _object(["url", "partitions"], {
                "url": _STR, "partitions": _partitions()})},
            "read_model": _object(["caught_up", "records", "error"], {
                "caught_up": _BOOL, "records": _INT, "error": _STR_OR_NULL})}),
        # group_member_id: answered to a peer's signed request only (streams.peer_auth)
        "Health": _object(
            ["worker_id", "ready", "assigned_partitions", "group", "read_model_caught_up"],
            {"worker_id": _STR, "ready": _BOOL, "assigned_partitions": _INT, "group": _STR,
             "group_member_id": _STR, "read_model_caught_up": _BOOL}),
    }
    return {"securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "a token of POLYMON_API_TOKENS; each names an actor and its "
                               "rights (read, pause, resume, rollback, promote, ack, "
                               "resolve). No or an unknown token: 401; a token without the "
                               "operation's right: 403."}},
            "schemas": dict(sorted(schemas.items()))}


PATHS = paths()
COMPONENTS = components()


def openapi_document(server_url: str | None = None,
                     read_requires_token: bool = False) -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "polymon operator API", "version": "1",
                 "description": "Freshness, heartbeats, execution, drift, incidents, pauses "
                                "and rollout of a prediction-market trading platform, and "
                                "the operator's controls. GETs are open unless "
                                "POLYMON_API_READ_REQUIRES_TOKEN is set (then: the 'read' "
                                "right); mutations need a bearer token with their right. "
                                "Every error is JSON: {\"error\": \"<what and where>\", "
                                "\"status\": <code>}. docs/api.md: clients, auth, errors."},
        "tags": [{"name": "read", "description": "reads (open, or the 'read' right)"},
                 {"name": "command", "description": "operator commands (ops.commands)"},
                 {"name": "worker", "description": "the worker's own pages, always open"}],
        "paths": PATHS if not read_requires_token else paths(read_requires_token=True),
        "components": COMPONENTS,
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
