"""The OpenAPI document matches the routes the worker registers, method for method."""

from __future__ import annotations

import re

import streams.web.views  # noqa: F401  (registers the views)
from streams.app import app
from streams.web.openapi import PATHS, openapi_document


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


def test_mutations_document_auth_body_and_errors() -> None:
    for path, operations in PATHS.items():
        if "post" not in operations:
            continue
        post = operations["post"]
        assert post["security"], path
        assert post["requestBody"]["content"]["application/json"]["schema"]["required"][0] \
            == "reason"
        assert {"202", "400", "401", "403", "404", "409"} <= set(post["responses"]), path
        assert any(p["name"] == "Idempotency-Key" for p in post["parameters"]), path


def test_document_shape() -> None:
    document = openapi_document("http://127.0.0.1:6066")
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": "http://127.0.0.1:6066"}]
    for path, operations in document["paths"].items():
        for name in re.findall(r"\{(\w+)\}", path):
            for operation in operations.values():
                assert any(p["name"] == name and p["in"] == "path"
                           for p in operation["parameters"]), (path, name)
