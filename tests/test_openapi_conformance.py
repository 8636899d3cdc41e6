"""The OpenAPI document and the service agree both ways, on the real app (Flask's test client on a
real Runtime and a real SQLite file): every route the app registers outside the dashboard is an
operation of the document, with its methods and path parameters, and no operation is missing a
route; every answer a working service gives (successes, not only refusals) has a status the
document lists for its operation, a content type it lists, and a body its schema takes with no
field the schema leaves out (each documented object that names its fields takes no other, so
a field the service adds is documented with it). Refusals that are no operation's,
an unknown path or method, have the one error shape, as JSON, a 405 naming what is allowed."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import referencing.jsonschema
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import study_definition
from http_helpers import Service
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from functions.adapters.web import create_app, guard
from functions.adapters.web.openapi import ERROR_CODES, document
from functions.core import content_modes
from functions.core.metrics import Observation
from functions.core.naming import is_label
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

JSON = "application/json"


DOCUMENT = document()
REGISTRY = Registry().with_resource("urn:katuna", Resource.from_contents(
    DOCUMENT, default_specification=referencing.jsonschema.DRAFT202012))


def _open_objects(node: Any, at: str = "#") -> list[str]:
    """Where ``node`` has an object schema that names its properties yet takes others too."""
    if isinstance(node, list):
        return [found for n, item in enumerate(node) for found in _open_objects(item, f"{at}/{n}")]
    if not isinstance(node, dict):
        return []
    found = [at] if "properties" in node and node.get("additionalProperties") is not False else []
    return found + [inner for key, value in node.items() if key != "properties" or isinstance(value, dict)
                    for inner in _open_objects(value, f"{at}/{key}")]


def _operation(path: str, method: str) -> dict[str, Any]:
    return DOCUMENT["paths"][path][method.lower()]


def _check(answer, path: str, method: str) -> Any:
    """``answer`` is documented for ``method path``: its status, its content type, its documented
    headers, and its JSON body by the schema (which takes no field it does not name)."""
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


def test_every_documented_object_takes_only_the_fields_it_names():
    """A client may rely on the document: an object schema that names its properties says that
    no other comes (``additionalProperties: false``), as each answer here is checked."""
    assert _open_objects(DOCUMENT) == []


def test_a_service_not_ready_answers_as_documented(tmp_path: Path):
    """Readiness asks that the threads delivering events run (``Runtime.not_ready``): once the
    runtime is closed, as a worker exiting closes it, its broker thread has stopped, and a
    request a thread still serves (with a connection of its own) gets the documented 503 body
    exactly: the Error shape, with the status the probe also says."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        assert _check(client.get("/readyz"), "/readyz", "GET") == {"status": "ready"}
        runtime.close()
        answers = []
        serving = threading.Thread(target=lambda: answers.append(client.get("/readyz")))
        serving.start()
        serving.join()
        body = _check(answers[0], "/readyz", "GET")
        assert (answers[0].status_code, body) == (503, {"status": "not ready", "error": "not_ready", "retryable": True,
                                                        "message": "the event broker thread is not running"})
    finally:
        runtime.close()


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
                integer = type(converter).__name__ in ("IntegerConverter", "TrialNumber")
                assert (in_path[name].get("type") == "integer") == integer, (str(rule), name)


@pytest.mark.parametrize("name", ["s", "a-1", "x" * 63, "x" * 64, "A", "a_b", "-a", "a-", ""])
def test_the_documented_study_name_is_the_name_a_study_may_have(name: str):
    item = DOCUMENT["paths"]["/studies/{name}"]
    schema = next(p["schema"] for p in item["parameters"] if p["name"] == "name")
    assert Draft202012Validator(schema).is_valid(name) == is_label(name)


def test_the_documented_body_types_of_writes_are_those_the_service_takes():
    operation = DOCUMENT["paths"]["/studies"]["post"]
    assert set(operation["requestBody"]["content"]) == set(guard.STUDY_TYPES)
    for path in ("/", "/functions/{function}", "/dead-letters"):
        assert content_modes.STRUCTURED_JSON in DOCUMENT["paths"][path]["post"]["requestBody"]["content"], path


def test_every_query_parameter_is_bounded():
    """A listing's cost is bounded by what a request may ask for: every whole-number parameter
    has its largest value."""
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for parameter in item.get("parameters", []) + operation.get("parameters", []):
                if parameter["schema"].get("type") == "integer":
                    assert "maximum" in parameter["schema"], (method, path, parameter["name"])


def test_the_answers_of_a_working_service_are_documented(client):
    for path, document_path in (("/studies", "/studies"), ("/studies/one", "/studies/{name}"),
                                ("/studies/two", "/studies/{name}"), ("/studies/two/trials", "/studies/{name}/trials"),
                                ("/studies/one/trials?limit=1", "/studies/{name}/trials"),
                                ("/studies/one/best", "/studies/{name}/best"), ("/studies/two/best", "/studies/{name}/best"),
                                ("/studies/one/trials/0", "/studies/{name}/trials/{number}"),
                                ("/studies/one/trials/0/logs", "/studies/{name}/trials/{number}/logs"),
                                ("/studies/one/trials/0/logs?attempt=1", "/studies/{name}/trials/{number}/logs"),
                                ("/healthz", "/healthz"), ("/readyz", "/readyz"), ("/openapi.json", "/openapi.json"),
                                ("/metrics", "/metrics"), ("/", "/")):
        body = _check(client.get(path), document_path, "GET")
        if path == "/studies/two":
            assert isinstance(body["best"], list) and body["frontSize"] >= 1
    assert client.get("/studies/one/trials?limit=1").headers["Link"], "a page that is not the last links the next"


def test_each_documented_bound_of_a_query_parameter_is_where_the_service_refuses(client):
    """Every whole-number query parameter of the document, asked of the working service at its
    documented bounds (taken) and just past them (a ``400`` naming it): a client that keeps to
    the document is never refused, and one that strays is told which parameter."""
    for path, item in DOCUMENT["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        concrete = path.replace("{name}", "one").replace("{number}", "0")
        for parameter in item.get("parameters", []) + operation.get("parameters", []):
            schema = parameter["schema"]
            if parameter["in"] != "query" or schema.get("type") != "integer":
                continue
            name = parameter["name"]
            for value in (schema["minimum"], schema["maximum"]):
                answer = client.get(f"{concrete}?{name}={value}")
                assert answer.status_code in (200, 404) and "malformed" not in answer.get_data(as_text=True), \
                    (path, name, value)
            for value in (schema["minimum"] - 1, schema["maximum"] + 1):
                answer = client.get(f"{concrete}?{name}={value}")
                body = _check(answer, path, "GET")
                assert (answer.status_code, body["message"].split(":")[0]) == (400, name), (path, name, value, body)


def test_a_parameter_the_log_does_not_take_is_refused_naming_it(client):
    """A misspelt ``attempt`` would otherwise be ignored, and the current attempt's log served
    as if it were the one asked for."""
    answer = client.get("/studies/one/trials/0/logs?atempt=1")
    body = _check(answer, "/studies/{name}/trials/{number}/logs", "GET")
    assert (answer.status_code, body["error"]) == (400, "malformed_request")
    assert body["message"] == "atempt: not a parameter of this path, which takes attempt, terminal"
    twice = client.get("/studies/one/trials/0/logs?attempt=1&attempt=5")
    body = _check(twice, "/studies/{name}/trials/{number}/logs", "GET")
    assert (twice.status_code, body["message"]) == (400, "attempt: given 2 times; expected it once"), \
        "which attempt's log was meant is not for the service to guess"


def test_a_submission_a_stop_and_a_deletion_are_answered_as_documented(client):
    definition = study_definition(name="three", maxTrials=1, parallelism=1, mode="hang")
    assert _check(client.post("/studies", json=definition), "/studies", "POST")["name"] == "three"
    assert client.post("/studies", json=definition).status_code == 200
    _check(client.post("/studies", json=definition), "/studies", "POST")
    raised = _check(client.post("/studies", json={**definition, "maxTrials": 2}), "/studies", "POST")
    assert (raised["changed"], raised["message"].split("; ")[1]) == (
        ["maxTrials"], "it has not ended (an interrupted study resumes as it was stored), and a raised budget "
                       "restarts an ended study only: submit it again once it has ended"), "a raised budget of a running study is told when it restarts"
    assert _check(client.post("/studies/three/stop"), "/studies/{name}/stop", "POST")["status"] == "stopped"
    answer = client.delete("/studies/three")
    assert answer.status_code == 204
    _check(answer, "/studies/{name}", "DELETE")


def test_events_and_dead_letters_are_answered_as_documented(client):
    headers = {"ce-specversion": "1.0", "ce-source": "/test", "ce-id": "tick-1", "ce-type": "dev.katuna.tick"}
    _check(client.post("/", data="{}", content_type=JSON, headers=headers), "/", "POST")
    _check(client.post("/functions/reconcile", data="{}", content_type=JSON, headers={**headers, "ce-id": "tick-2"}),
           "/functions/{function}", "POST")
    event = CloudEvent(attributes={"type": "dev.katuna.trial.finished", "source": "/test", "id": "lost-1",
                                   "datacontenttype": JSON, "knativeerrorcode": "500"},
                       data={"study": "gone", "trial": 0})
    message = ce_http.to_binary_event(event)
    answer = client.post("/dead-letters", data=message.body, headers=message.headers)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    _check(answer, "/dead-letters", "POST")
    letters = _check(client.get("/dead-letters"), "/dead-letters", "GET")
    assert letters[0]["event"]["id"] == "lost-1"


def test_a_trial_of_numbers_json_has_none_for_is_answered_as_documented(runtime, client):
    """An infinite loss and a NaN observation travel by name (docs/api.md), as the document says."""
    store = runtime.store()
    definition = study_definition(name="endless")
    store.add_study(StudyRecord(parse_study(definition), definition, ".", "uid-endless", status="completed"))
    store.add_trial(TrialRecord("endless", 0, {"x": 1.0}, COMPLETE, values=[math.inf], metrics={"loss": math.inf}))
    store.add_observations("endless", 0, 1, [Observation("loss", math.nan, 1), Observation("loss", math.inf, 2)])
    trial = _check(client.get("/studies/endless/trials/0"), "/studies/{name}/trials/{number}", "GET")
    assert (trial["value"], trial["metrics"], [o["value"] for o in trial["observations"]]) == (
        "inf", {"loss": "inf"}, ["nan", "inf"])
    assert _check(client.get("/studies/endless"), "/studies/{name}", "GET")["best"]["value"] == "inf"
    _check(client.get("/studies/endless/trials"), "/studies/{name}/trials", "GET")


def test_the_study_failed_header_says_whether_a_dead_letter_failed_a_study(tmp_path: Path):
    """``Katuna-Study-Failed`` is true for the letter that failed its study, and false for one
    whose study is missing, has ended already, or is another of the same name. The letters carry
    the ``trial.suggested`` of the study's trial 0, waiting at attempt 1: an event of its current run."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        definition = study_definition(name="lost", mode="hang")
        runtime.store().add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-lost"))
        runtime.store().add_trial(TrialRecord("lost", 0, {"x": 1.0}))
        client = create_app(runtime).test_client()
        answers = []
        for number, (study, uid) in enumerate((("gone", "uid-gone"), ("lost", "uid-other"), ("lost", "uid-lost"),
                                               ("lost", "uid-lost"))):
            event = CloudEvent(attributes={"type": "dev.katuna.trial.suggested", "source": "/test",
                                           "id": f"lost-{number}", "datacontenttype": JSON, "knativeerrorcode": "400"},
                               data={"study": study, "uid": uid, "trial": 0, "attempt": 1})
            message = ce_http.to_binary_event(event)
            answer = client.post("/dead-letters", data=message.body, headers=message.headers)
            assert answer.status_code == 202, answer.get_data(as_text=True)
            answers.append(answer.headers["Katuna-Study-Failed"])
        assert answers == ["false", "false", "true", "false"]
        assert runtime.store().get_study("lost").status == "failed"
    finally:
        runtime.close()


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
    assert body["message"] == f"{method} is not taken by {path}: it takes {', '.join(sorted(allowed))}"


@pytest.mark.parametrize("method, path, status, headers", [
    ("PUT", "/studies/one", 405, {"Content-Type": "text/plain"}),
    ("PATCH", "/studies", 405, {"Content-Type": "application/x-www-form-urlencoded"}),
    ("PUT", "/studies/one", 405, {"Content-Type": JSON, "Origin": "http://evil.example"}),
    ("POST", "/no/such/path", 404, {"Content-Type": "text/plain"}),
    ("DELETE", "/no/such/path", 404, {"Content-Type": JSON, "Sec-Fetch-Site": "cross-site"}),
])
def test_a_write_that_names_no_operation_is_a_404_or_405_whatever_its_body_or_origin(
        client, method: str, path: str, status: int, headers: dict[str, str]):
    """A write to a path that does not exist, or with a method its path does not take, runs
    nothing: it is told so, not told to send its body as another type (415) or from another
    origin (403), only to be told on that it names no operation."""
    answer = client.open(path, method=method, data="x", headers=headers)
    assert (answer.status_code, answer.mimetype) == (status, JSON), answer.get_data(as_text=True)
    assert answer.get_json()["error"] == ("not_found" if status == 404 else "method_not_allowed")
    assert ("Allow" in answer.headers) == (status == 405)


def test_an_unknown_path_is_a_json_404(client):
    for method in ("GET", "POST", "DELETE"):
        answer = client.open("/no/such/path", method=method, data="{}", content_type=JSON)
        assert (answer.status_code, answer.mimetype) == (404, JSON)
        assert answer.get_json()["error"] == "not_found" and "not_found" in ERROR_CODES
        assert answer.get_json()["message"].startswith("no such path: /no/such/path ")


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
    operation behind the checks (``/metrics``'s is in tests/test_openapi_server.py)."""
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
            if method != "parameters" and path not in ("/healthz", "/readyz"):
                assert "500" in operation["responses"], (method, path)


def test_requests_gunicorn_refuses_before_the_app_are_refused_in_the_error_shape_as_documented(tmp_path: Path):
    """``katuna serve``'s worker answers what its HTTP parser refuses (a request line or header
    fields past gunicorn's limits) as JSON errors of listed codes, with every answer's headers."""
    service = Service(tmp_path, workers=1)
    try:
        for headers, path, status, error in (({}, "/studies?after=" + "1" * 5000, 414, "uri_too_long"),
                                             ({f"X-Field-{n}": "v" for n in range(120)}, "/studies", 431,
                                              "request_header_fields_too_large"),
                                             ({"X-Field": "v" * 9000}, "/studies", 431,
                                              "request_header_fields_too_large")):
            answer_status, answer_headers, body = service.request("GET", path, headers=headers)
            assert (answer_status, answer_headers["Content-Type"]) == (status, JSON), body[:200]
            assert answer_headers["X-Content-Type-Options"] == "nosniff"
            error_body = json.loads(body)
            assert (error_body["error"], error_body["retryable"]) == (error, False) and error in ERROR_CODES
            assert str(status) in DOCUMENT["paths"]["/studies"]["get"]["responses"]
    finally:
        service.close()


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
