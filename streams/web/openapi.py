"""The operator API, documented: an OpenAPI 3.1 document served at /api/openapi.json.

tests/unit/web/test_openapi.py holds it to the routes streams/web/views.py registers.
"""

from __future__ import annotations

from typing import Any

from streams.records import RolloutStage

STAGES = [stage.value for stage in RolloutStage]

_SCOPE = {"name": "scope", "in": "query", "required": False, "schema": {"type": "string"},
          "description": "only this scope and the scopes it covers (a pause of it would "
                         "cover), e.g. market:m1, bot:b1, global"}
_KIND = {"name": "kind", "in": "query", "required": False,
         "schema": {"type": "string",
                    "enum": ["bot", "market", "model", "feed", "strategy", "global"]},
         "description": "only scopes whose last segment is of this kind"}
_LOCAL = {"name": "local", "in": "query", "required": False, "schema": {"type": "boolean"},
          "description": "answer for this worker's partitions only (no fan-out)"}
_LIMIT = {"name": "limit", "in": "query", "required": False,
          "schema": {"type": "integer", "minimum": 1, "maximum": 5000}}
_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:\\-]{1,128}$"},
                "description": "the command id: a retry with the same key is the same "
                               "command (applied once, answered with the same outcome)"}


def _path(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


_INCIDENT_ID = _path("incident_id", "an incident id, inc-<family>-<24 hex digits>",
                     "^inc-[a-z][a-z0-9_]*-[0-9a-f]{24}$")
_SCOPE_PATH = _path("scope", "a scope, e.g. market:m1, bot:b1/market:m7 (slashes allowed)")
_MODEL = _path("model", "a model id (model:<id> implied) or a model:/strategy: scope")

_ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_MUTATION_ERRORS = {
    "400": {**_ERROR, "description": "malformed request: the message says what and where"},
    "401": {**_ERROR, "description": "no or unknown bearer token"},
    "403": {**_ERROR, "description": "the token lacks the right for this action"},
    "404": {**_ERROR, "description": "unknown incident or rollout scope"},
    "409": {**_ERROR, "description": "the state does not allow it (e.g. already resolved)"},
    "503": {**_ERROR, "description": "the command could not be published to ops.commands"},
}


def _get(summary: str, params: list[dict[str, Any]], description: str = "") -> dict[str, Any]:
    return {"get": {"summary": summary, "description": description, "parameters": params,
                    "responses": {"200": {"description": "OK", "content": {
                        "application/json": {"schema": {"type": "object"}}}},
                        "400": {**_ERROR, "description": "unknown or malformed parameter"}}}}


def _post(summary: str, right: str, params: list[dict[str, Any]],
          body_schema: dict[str, Any]) -> dict[str, Any]:
    return {"post": {
        "summary": summary,
        "description": f"Needs a bearer token with the '{right}' right. Publishes an "
                       "OpsCommand on ops.commands, waits briefly for its audit entry and "
                       "answers 202 with the command id and, once known, the outcome.",
        "security": [{"bearer": [right]}],
        "parameters": [*params, _IDEMPOTENCY],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": body_schema}}},
        "responses": {"202": {"description": "accepted", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/CommandReply"}}}}, **_MUTATION_ERRORS},
    }}


def _body(*, stage: bool | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"reason": {"type": "string", "minLength": 1,
                                             "maxLength": 500}}
    required = ["reason"]
    if stage is not None:
        properties["to_stage"] = {"type": "string", "enum": STAGES,
                                  "description": "case-insensitive"}
        if stage:
            required.append("to_stage")
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


PATHS: dict[str, dict[str, Any]] = {
    "/healthz": _get("readiness of this worker", []),
    "/metrics": _get("Prometheus metrics of this worker", []),
    "/": _get("the operator console (HTML)", []),
    "/api/openapi.json": _get("this document", []),
    "/api/scopes": _get("what each scope on this worker's partitions last reported",
                        [{"name": "scope", "in": "query", "required": False,
                          "schema": {"type": "string"}, "description": "scope prefix"}]),
    "/api/freshness": _get(
        "data freshness and gap counts per scope and feed",
        [_SCOPE, _KIND, {"name": "stale", "in": "query", "required": False,
                         "schema": {"type": "boolean"}}, _LOCAL],
        "Fanned out to every worker and merged; 'complete' says whether every partition "
        "answered."),
    "/api/heartbeats": _get("heartbeat health per bot, market, ...", [_SCOPE, _KIND, _LOCAL],
                            "Fanned out to every worker and merged."),
    "/api/execution": _get("fill ratio and slippage error (the execution agents' tables)",
                           [_SCOPE, _KIND, _LOCAL], "Fanned out to every worker and merged."),
    "/api/drift": _get("model drift and canary/baseline deltas (the drift and canary "
                       "agents' tables)", [_SCOPE, _KIND, _LOCAL],
                       "Fanned out to every worker and merged."),
    "/api/incidents": _get(
        "the incident queue, unresolved first, most severe first",
        [_SCOPE, _KIND,
         {"name": "state", "in": "query", "required": False, "schema": {"type": "string"},
          "description": "comma list of open, acknowledged, resolved"},
         {"name": "severity", "in": "query", "required": False, "schema": {"type": "string"},
          "description": "comma list of info, warning, critical"}, _LIMIT]),
    "/api/incidents/{incident_id}": _get("one incident with its timeline", [_INCIDENT_ID]),
    "/api/pauses": _get("pause state per scope (control.pauses)",
                        [_SCOPE, _KIND, {"name": "paused", "in": "query", "required": False,
                                         "schema": {"type": "boolean"}}]),
    "/api/rollout": _get("rollout stage and history per model/strategy (control.rollout)",
                         [_SCOPE, _KIND]),
    "/api/rollout/{model}": _get("the rollout of one model or strategy", [_MODEL]),
    "/api/audit": _get("recent audit.log entries, newest first",
                       [_SCOPE, _KIND, {"name": "action", "in": "query", "required": False,
                                        "schema": {"type": "string"}}, _LIMIT]),
    "/api/commands/{command_id}": _get("the outcome of an operator command",
                                       [_path("command_id", "the command id")]),
    "/api/workers": _get("the workers of the group and their partitions", []),
    "/api/scopes/{scope}/pause": _post("pause a scope (and everything it covers)", "pause",
                                       [_SCOPE_PATH], _body(stage=None)),
    "/api/scopes/{scope}/resume": _post("resume a scope: every hold released, latched "
                                        "ones too", "resume", [_SCOPE_PATH],
                                        _body(stage=None)),
    "/api/scopes/{scope}/rollback": _post("roll a model/strategy back to an earlier stage",
                                          "rollback", [_SCOPE_PATH], _body(stage=True)),
    "/api/rollout/{model}/promote": _post("promote a model/strategy (to the next stage, or "
                                          "to_stage)", "promote", [_MODEL], _body(stage=False)),
    "/api/incidents/{incident_id}/ack": _post("acknowledge an incident", "ack",
                                              [_INCIDENT_ID], _body(stage=None)),
    "/api/incidents/{incident_id}/resolve": _post("resolve an incident", "resolve",
                                                  [_INCIDENT_ID], _body(stage=None)),
}

COMPONENTS = {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                   "description": "tokens from POLYMON_API_TOKENS"}},
    "schemas": {
        "Error": {"type": "object", "required": ["error", "status"], "properties": {
            "error": {"type": "string"}, "status": {"type": "integer"}}},
        "CommandReply": {"type": "object", "properties": {
            "command_id": {"type": "string"}, "action": {"type": "string"},
            "scope": {"type": "string"}, "target": {"type": ["string", "null"]},
            "actor": {"type": "string"},
            "status": {"type": "string", "enum": ["done", "pending"]},
            "outcome": {"type": ["object", "null"],
                        "description": "the command's audit.log entry: decision, before, "
                                       "after, evidence"},
            "status_url": {"type": "string"}}},
    },
}


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "polymon operator API", "version": "1",
                 "description": "Freshness, heartbeats, execution, drift, incidents, pauses "
                                "and rollout of a prediction-market trading platform, and "
                                "the operator's controls. GETs are open unless "
                                "POLYMON_API_READ_REQUIRES_TOKEN is set (then: the 'read' "
                                "right); mutations need a bearer token with their right."},
        "paths": PATHS, "components": COMPONENTS,
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
