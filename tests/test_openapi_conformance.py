"""The OpenAPI document and the service agree both ways, on the real app (Flask's test client on a
real Runtime and a real SQLite file): every route the app registers outside the dashboard is an
operation of the document, with its methods and path parameters, and no operation is missing a
route; every answer a working service gives (successes, not only refusals) has a status the
document lists for its operation, a content type it lists, and a body its schema takes with no
field the schema leaves out (each documented object is checked as if it allowed no other
field, so a field the service adds is documented with it). Refusals that are no operation's,
an unknown path or method, have the one error shape, as JSON, a 405 naming what is allowed."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
import referencing.jsonschema
from conftest import study_definition
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from functions.adapters.web import create_app
from functions.adapters.web.openapi import ERROR_CODES, document
from functions.runtime import Runtime
from functions.settings import Settings

JSON = "application/json"


def _closed(node: Any) -> Any:
    """``node`` with every object schema that names its properties taking no other property."""
    if isinstance(node, dict):
        node = {key: _closed(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_closed(item) for item in node]
    return node


DOCUMENT = document()
CLOSED = _closed(deepcopy(DOCUMENT))
REGISTRY = Registry().with_resource("urn:katuna", Resource.from_contents(
    CLOSED, default_specification=referencing.jsonschema.DRAFT202012))


def _operation(path: str, method: str) -> dict[str, Any]:
    return CLOSED["paths"][path][method.lower()]


def _check(answer, path: str, method: str) -> Any:
    """``answer`` is documented for ``method path``: its status, its content type, its documented
    headers, and its JSON body by the closed schema."""
    responses = _operation(path, method)["responses"]
    status = str(answer.status_code)
    assert status in responses, f"{method} {path} answered {status} {answer.get_data(as_text=True)[:200]}"
    response = responses[status]
    content = response.get("content")
    if content is not None:
        assert answer.mimetype in {kind.split(";")[0] for kind in content}, (method, path, answer.content_type)
    for header in response.get("headers", {}):
        assert header in answer.headers or header == "Link", (method, path, status, header)
    schema = ((content or {}).get(JSON) or {}).get("schema")
    body = answer.get_json(silent=True)
    if schema is not None:
        resolved = json.loads(json.dumps(schema).replace('"#/components', '"urn:katuna#/components'))
        problems = [f"{list(e.absolute_path)}: {e.message}"
                    for e in Draft202012Validator(resolved, registry=REGISTRY).iter_errors(body)]
        assert not problems, (method, path, status, problems)
    return body


def _document_path(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[Runtime]:
    runtime = Runtime(Settings(db=tmp_path_factory.mktemp("conformance") / "katuna.db"))
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def app(runtime):
    return create_app(runtime)


@pytest.fixture(scope="module")
def client(app):
    """A service with one study of one objective and one of two, both ended."""
    client = app.test_client()
    for definition in (study_definition(name="one", maxTrials=2, parallelism=2),
                       study_definition(name="two", maxTrials=2, parallelism=2, objective={"metrics": [
                           {"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "maximize"}]})):
        answer = client.post("/studies", json=definition)
        assert answer.status_code == 201, answer.get_data(as_text=True)
        _check(answer, "/studies", "POST")
    deadline = time.monotonic() + 60
    while any(client.get(f"/studies/{name}").get_json()["status"] == "running" for name in ("one", "two")):
        assert time.monotonic() < deadline, "the studies end"
        time.sleep(0.1)
    return client


def test_the_routes_and_the_documents_operations_are_the_same(app):
    """Both ways: no route serves what the document does not name (the dashboard's pages, under
    /ui, are documented in docs/dashboard.md), and no operation of the document lacks a route."""
    served: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("ui."):
            served.setdefault(_document_path(str(rule)), set()).update(
                m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    documented = {path: {m for m in item if m != "parameters"} for path, item in DOCUMENT["paths"].items()}
    assert served == documented


def test_each_path_parameter_is_documented_with_the_type_its_route_takes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("ui."):
            continue
        item = DOCUMENT["paths"][_document_path(str(rule))]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            parameters = item.get("parameters", []) + item[method.lower()].get("parameters", [])
            in_path = {p["name"]: p["schema"] for p in parameters if p["in"] == "path"}
            assert set(in_path) == set(rule.arguments), (str(rule), method)
            for name, converter in rule._converters.items():
                integer = type(converter).__name__ == "IntegerConverter"
                assert (in_path[name].get("type") == "integer") == integer, (str(rule), name)


@pytest.mark.parametrize("method, path, allowed", [
    ("PUT", "/studies", {"GET", "HEAD", "OPTIONS", "POST"}),
    ("PATCH", "/studies/one", {"GET", "HEAD", "OPTIONS", "DELETE"}),
    ("GET", "/functions/reconcile", {"OPTIONS", "POST"}),
    ("DELETE", "/dead-letters", {"GET", "HEAD", "OPTIONS", "POST"}),
])
def test_a_method_a_path_does_not_take_is_a_405_naming_those_it_takes(client, method: str, path: str,
                                                                      allowed: set[str]):
    """RFC 9110 section 15.5.6: a 405 carries ``Allow``; its body is the API's one error shape."""
    answer = client.open(path, method=method, data="{}", content_type=JSON,
                         headers={"ce-specversion": "1.0"} if path.startswith("/functions/") else {})
    assert answer.status_code == 405 and answer.mimetype == JSON
    assert {m.strip() for m in answer.headers.get("Allow", "").split(",")} == allowed
    body = answer.get_json()
    assert (body["error"], body["retryable"]) == ("method_not_allowed", False) and body["error"] in ERROR_CODES


def test_an_unknown_path_is_a_json_404(client):
    for method in ("GET", "POST", "DELETE"):
        answer = client.open("/no/such/path", method=method, data="{}", content_type=JSON)
        assert (answer.status_code, answer.mimetype) == (404, JSON)
        assert answer.get_json()["error"] == "not_found" and "not_found" in ERROR_CODES


def test_a_body_the_client_stopped_sending_is_refused_with_a_listed_code(client):
    """Behind a WSGI server that hands the application a body shorter than its Content-Length
    (not ``katuna serve``'s worker, which refuses it itself), werkzeug's refusal has katuna's
    code for it, as documented for the operation."""
    for path, document_path, headers in (("/studies", "/studies", {}),
                                         ("/", "/", {"ce-specversion": "1.0"})):
        answer = client.post(path, data=b'{"name": "cut"}', content_type=JSON, headers=headers,
                             environ_overrides={"CONTENT_LENGTH": "100"})
        body = _check(answer, document_path, "POST")
        assert (answer.status_code, body["error"], body["retryable"]) == (400, "incomplete_body", True)
    assert client.get("/studies/cut").status_code == 404


def test_a_fault_of_katunas_own_is_a_json_500_of_a_listed_code(tmp_path: Path):
    """A route that fails unexpectedly (one added here: katuna's own have no known fault) is
    answered with the error shape, its code one of the document's, and 500 is listed for every
    operation behind the checks."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        app = create_app(runtime)
        app.add_url_rule("/fault", "fault", lambda: 1 // 0)
        answer = app.test_client().get("/fault")
        assert (answer.status_code, answer.mimetype) == (500, JSON)
        body = answer.get_json()
        assert body["error"] == "internal_server_error" and body["error"] in ERROR_CODES
    finally:
        runtime.close()
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method != "parameters" and path not in ("/healthz", "/readyz", "/metrics"):
                assert "500" in operation["responses"], (method, path)


def test_a_head_request_is_answered_as_its_get_without_a_body(client):
    for path in ("/studies", "/studies/one", "/studies/nosuch", "/openapi.json"):
        head, get = client.head(path), client.get(path)
        assert (head.status_code, head.mimetype) == (get.status_code, get.mimetype) and head.data == b""


def test_files_in_the_working_directory_are_not_served(tmp_path: Path, monkeypatch):
    """The service serves its own files only: Flask's default static folder and templates are
    relative to the process's working directory, which may hold anything."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "secret.txt").write_text("a file of the working directory")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "error.html").write_text("a template of the working directory")
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        answer = client.get("/static/secret.txt")
        assert (answer.status_code, answer.get_json()["error"]) == (404, "not_found")
        page = client.get("/ui/studies/nosuch/trials/0/nosuch")
        assert page.status_code == 404 and b"working directory" not in page.data
    finally:
        runtime.close()
