"""The OpenAPI document matches the routes the worker registers, method for method, and
says what the validators do: the same patterns, bounds, enums, query parameters, body
fields, status codes, content types and security. Where a JSON Schema validator (the Rust
one schemathesis uses) and the API's own checks could read a definition differently, they
are fuzzed against each other."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streams.web.views  # noqa: F401  (registers the views)
from streams.app import app
from streams.records import RolloutStage
from streams.scopes import MAX_SCOPE_LENGTH, SCOPE_PATTERN, ScopeError, parse_scope
from streams.web import api
from streams.web.api import ApiError
from streams.web.auth import RIGHTS
from streams.web.openapi import PATHS, body_schema, openapi_document, paths

JSON = "application/json"
COMMANDS = {  # path: (right, body fields, 404 possible)
    "/api/scopes/{scope}/pause": ("pause", api.REASON_BODY, False),
    "/api/scopes/{scope}/resume": ("resume", api.REASON_BODY, False),
    "/api/scopes/{scope}/rollback": ("rollback", api.ROLLBACK_BODY, True),
    "/api/rollout/{model}/promote": ("promote", api.PROMOTE_BODY, False),
    "/api/rollout/{model}/evaluation": ("promote", api.EVALUATION_BODY, True),
    "/api/incidents/{incident_id}/ack": ("ack", api.REASON_BODY, True),
    "/api/incidents/{incident_id}/resolve": ("resolve", api.RESOLVE_BODY, True),
}
OPEN_PAGES = ("/", "/healthz", "/metrics", "/api/openapi.json")
DETAILS = ("/api/incidents/{incident_id}", "/api/incidents/{incident_id}/review",
           "/api/rollout/{model}", "/api/commands/{command_id}")


def registered() -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for resource in app.web.web_app.router.resources():
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", resource.canonical)
        methods = {route.method.lower() for route in resource} - {"head"}
        if path.startswith(("/router", "/table")):  # Faust's own blueprints
            continue
        routes.setdefault(path, set()).update(methods)
    return routes


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    documented = {path: set(ops) for path, ops in PATHS.items()}
    assert registered() == documented


def test_document_shape() -> None:
    document = openapi_document("http://127.0.0.1:6066")
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": "http://127.0.0.1:6066"}]
    json.dumps(document)  # served as JSON
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) == 28
    for path, operations in document["paths"].items():
        for name in re.findall(r"\{(\w+)\}", path):
            for operation in operations.values():
                assert any(p["name"] == name and p["in"] == "path"
                           for p in operation["parameters"]), (path, name)


def test_every_ref_resolves_and_links_name_operations() -> None:
    document = openapi_document()
    text = json.dumps(document)
    for name in re.findall(r'"#/components/schemas/(\w+)"', text):
        assert name in document["components"]["schemas"], name
    ids = {op["operationId"] for ops in document["paths"].values() for op in ops.values()}
    links = document["paths"]["/api/incidents"]["get"]["responses"]["200"]["links"]
    assert {link["operationId"] for link in links.values()} == {
        "getIncident", "acknowledgeIncident", "resolveIncident"} <= ids


@pytest.mark.parametrize("read_requires_token", [False, True])
def test_reads_and_their_answers(read_requires_token: bool) -> None:
    for path, operations in paths(read_requires_token).items():
        if "get" not in operations:
            continue
        get = operations["get"]
        codes = set(get["responses"])
        if path in OPEN_PAGES:
            assert get["security"] == [], path
            continue
        query = {p["name"] for p in get["parameters"] if p["in"] == "query"}
        assert query == set(api.ROUTE_QUERIES.get(path, {})), path  # what the view parses
        expected = {"200", "400"} | ({"404"} if path in DETAILS else set())
        if read_requires_token:
            assert get["security"] == [{"bearer": ["read"]}], path
            expected |= {"401", "403"}
        else:
            assert get["security"] == [], path
        assert codes == expected, path
        assert set(get["responses"]["200"]["content"]) == {JSON}, path


def test_content_types_of_the_pages() -> None:
    def types(path: str, code: str = "200") -> set[str]:
        return set(PATHS[path]["get"]["responses"][code]["content"])

    assert types("/") == {"text/html"}
    assert types("/metrics") == {"text/plain; version=0.0.4"}
    assert types("/healthz") == types("/healthz", "503") == {JSON}
    assert types("/api/openapi.json") == {JSON}


def test_mutations_document_auth_body_and_every_answer() -> None:
    posts = {path: ops["post"] for path, ops in PATHS.items() if "post" in ops}
    assert set(posts) == set(COMMANDS)
    for path, post in posts.items():
        right, fields, not_found = COMMANDS[path]
        assert right in RIGHTS
        assert post["security"] == [{"bearer": [right]}], path
        assert post["requestBody"]["required"] is True
        assert post["requestBody"]["content"][JSON]["schema"] == body_schema(fields), path
        expected = {"202", "400", "401", "403", "409", "503"} | ({"404"} if not_found else set())
        assert set(post["responses"]) == expected, path
        assert post["responses"]["401"]["headers"]["WWW-Authenticate"]["required"]
        header = next(p for p in post["parameters"] if p["in"] == "header")
        assert header["name"] == "Idempotency-Key"
        assert header["schema"]["pattern"] == api.IDEMPOTENCY_KEY_PATTERN


def test_stage_and_action_enums_come_from_the_records() -> None:
    document = openapi_document()
    stage = body_schema(api.ROLLBACK_BODY)["properties"]["to_stage"]
    assert stage["anyOf"][0]["enum"] == [s.value for s in RolloutStage]
    reply = document["components"]["schemas"]["CommandReply"]["properties"]
    assert reply["action"]["enum"] == ["ACK", "RESOLVE", "PAUSE", "RESUME", "ROLLBACK",
                                       "PROMOTE", "EVALUATE"]


# --- the definitions, read by a JSON Schema validator and by the API alike -----------------


def accepts(check: Any, value: Any) -> bool:
    try:
        check(value)
    except (ApiError, ScopeError):
        return False
    return True


def validator(schema: dict[str, Any]) -> Any:
    return jsonschema_rs.Draft202012Validator(schema)


SCOPE_ALPHABET = st.sampled_from(["market", "bot", "model", "global", "desk", ":", "/", "m1",
                                  "_", ".", "-", "x" * 127, "\n", " ", "é", "M"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.lists(SCOPE_ALPHABET, max_size=12).map("".join),
                 st.from_regex(SCOPE_PATTERN, fullmatch=True)))
def test_the_scope_pattern_is_the_scope_grammar(scope: str) -> None:
    schema = validator(api.SCOPE_SCHEMA)
    assert accepts(parse_scope, scope) == schema.is_valid(scope), scope
    assert accepts(api.check_scope, scope) == (
        bool(re.fullmatch(SCOPE_PATTERN, scope)) and len(scope) <= MAX_SCOPE_LENGTH)


# Each path parameter of each operation, and what its view checks it with.
PATH_CHECKS = {
    ("/api/scopes/{scope}/pause", "scope"): api.check_scope,
    ("/api/scopes/{scope}/resume", "scope"): api.check_scope,
    ("/api/scopes/{scope}/rollback", "scope"): api.rollback_scope,
    ("/api/rollout/{model}/promote", "model"): api.rollout_scope,
    ("/api/rollout/{model}/evaluation", "model"): api.evaluation_scope,
    ("/api/rollout/{model}", "model"): api.rollout_scope,
    ("/api/incidents/{incident_id}", "incident_id"): api.incident_path_id,
    ("/api/incidents/{incident_id}/review", "incident_id"): api.incident_path_id,
    ("/api/incidents/{incident_id}/ack", "incident_id"): api.incident_path_id,
    ("/api/incidents/{incident_id}/resolve", "incident_id"): api.incident_path_id,
    ("/api/commands/{command_id}", "command_id"): api.command_path_id,
}


def _path_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    return {(path, parameter["name"]): parameter["schema"]
            for path, operations in PATHS.items() for operation in operations.values()
            for parameter in operation["parameters"] if parameter["in"] == "path"}


def test_every_path_parameter_has_its_check() -> None:
    assert set(_path_schemas()) == set(PATH_CHECKS)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(PATH_CHECKS)), st.data())
def test_path_parameters_are_checked_as_documented(where: tuple[str, str],
                                                   data: st.DataObject) -> None:
    schema = _path_schemas()[where]
    value = data.draw(st.one_of(
        st.from_regex(schema["pattern"], fullmatch=True),
        st.text(alphabet="inc-staleness0123456789abcdefmodel:strategy/. \n", max_size=40),
        st.sampled_from(["model:m1", "strategy:s1", "market:m1", "inc-a-" + "0" * 24,
                         "api-" + "a" * 32, "x" * 129, "", ".", "..", ".m1", "model:..",
                         "global", "bot:b1/model:m1"])))
    assert accepts(PATH_CHECKS[where], value) == validator(schema).is_valid(value), value


@settings(max_examples=200, deadline=None)
@given(st.from_regex(api.IDEMPOTENCY_KEY_PATTERN, fullmatch=True)
       | st.text(alphabet="ab.:-_ \n", max_size=130))
def test_the_idempotency_key_is_checked_as_documented(key: str) -> None:
    header = PATHS["/api/scopes/{scope}/pause"]["post"]["parameters"][1]
    assert header["name"] == "Idempotency-Key"
    assert accepts(api.command_id, key) == validator(header["schema"]).is_valid(key), key


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted({n for q in api.ROUTE_QUERIES.values() for n in q})),
       st.text(max_size=20) | st.sampled_from(["global", "market:m1", "open,CRITICAL", "true",
                                               "1", "PAUSE", "market:", "bot", "open"]))
def test_string_query_parameters_are_checked_as_documented(name: str, value: str) -> None:
    for params in api.ROUTE_QUERIES.values():
        param = params.get(name)
        if param is None or param.schema.get("type") != "string":
            continue  # booleans, integers, comma lists: their serialization is OpenAPI's
        assert accepts(param.parse, value) == validator(param.schema).is_valid(value), value


BODY_VALUES = st.one_of(
    st.text(max_size=8), st.none(), st.integers(), st.booleans(),
    st.sampled_from(["paper", "PAPER", "Paper", " x ", "\ufeff", "\x1c", "\u3000a",
                     "x" * 500, " " + "x" * 500, "live"]))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["reason", "to_stage", "force"]), BODY_VALUES,
                       max_size=3))
def test_bodies_are_checked_as_documented(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    for fields in (api.REASON_BODY, api.ROLLBACK_BODY, api.PROMOTE_BODY):
        assert accepts(lambda r, f=fields: api.parse_body(r, f), raw) == \
            validator(body_schema(fields)).is_valid(body), (body, list(fields))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="az_:09 .", max_size=12) | st.just("x" * 201))
def test_metric_names_are_checked_as_documented(name: str) -> None:
    items = PATHS["/metrics"]["get"]["parameters"][0]["schema"]["items"]
    assert accepts(api.metric_names, [name]) == validator(items).is_valid(name), name
