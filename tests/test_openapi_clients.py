"""What a client generated from the OpenAPI document relies on, checked against the real app
(Flask's test client on a real Runtime and a real SQLite file): the credentials each operation
says it takes are those the service takes (a client sends no token where none is asked, and
offers no dashboard session where the service refuses one), the headers an answer is documented
with are those it carries (the wait of a ``503`` or ``429``, the challenge of a ``401``), and
every instant of a body says what unit it is in."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.adapters.web import create_app
from functions.adapters.web.openapi import document
from functions.runtime import Runtime
from functions.settings import Settings

DOCUMENT = document()
JSON = "application/json"
TOKEN = "a-token-of-more-than-22-characters"
PING = {"ce-specversion": "1.0", "ce-source": "/ping", "ce-type": "dev.knative.sources.ping"}
EVENT = {"data": "{}", "content_type": JSON}

REQUESTS: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("get", "/"): ("/", {}),
    ("post", "/"): ("/", {**EVENT, "headers": {**PING, "ce-id": "p-1"}}),
    ("post", "/functions/{function}"): ("/functions/reconcile", {**EVENT, "headers": {**PING, "ce-id": "p-2"}}),
    ("post", "/dead-letters"): ("/dead-letters", {**EVENT, "headers": {**PING, "ce-id": "p-3"}}),
    ("get", "/dead-letters"): ("/dead-letters", {}),
    ("get", "/healthz"): ("/healthz", {}),
    ("get", "/readyz"): ("/readyz", {}),
    ("get", "/metrics"): ("/metrics", {}),
    ("get", "/openapi.json"): ("/openapi.json", {}),
    ("get", "/studies"): ("/studies", {}),
    ("post", "/studies"): ("/studies", {"json": {}}),
    ("get", "/studies/{name}"): ("/studies/none", {}),
    ("delete", "/studies/{name}"): ("/studies/none", {}),
    ("post", "/studies/{name}/stop"): ("/studies/none/stop", {}),
    ("get", "/studies/{name}/best"): ("/studies/none/best", {}),
    ("get", "/studies/{name}/trials"): ("/studies/none/trials", {}),
    ("get", "/studies/{name}/trials/{number}"): ("/studies/none/trials/0", {}),
    ("get", "/studies/{name}/trials/{number}/logs"): ("/studies/none/trials/0/logs", {}),
    ("get", "/studies/{name}/trials/{number}/observations"): ("/studies/none/trials/0/observations", {}),
}
"""One request of each operation, which a caller the operation takes gets an answer to (a 404
of a study that is not there, a 422 of an empty study, a 202 of a tick): never a 401."""


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield method, path, operation


def _security(operation: dict[str, Any]) -> list[dict[str, list[str]]]:
    return operation.get("security", DOCUMENT["security"])


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", api_token=TOKEN))
    try:
        yield runtime
    finally:
        runtime.close()


def test_each_operation_takes_the_credentials_the_document_names_and_no_other(runtime):
    """With ``KATUNA_API_TOKEN`` set: an operation the document asks nothing of (``security:
    []``) answers a caller with no credentials, and one that names a scheme refuses it (``401``);
    a dashboard session is taken exactly where the document names it. The health probes and
    ``GET /`` answer everyone; the event paths, where a broker delivers, take a bearer token
    alone, and refuse a session as a caller with nothing."""
    assert {(method, path) for method, path, _ in _operations()} == set(REQUESTS), "one request per operation"
    app = create_app(runtime)
    anonymous, browser = app.test_client(), app.test_client()
    assert browser.post("/ui/login", data={"token": TOKEN}, headers={"Origin": "http://localhost"}).status_code == 302
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', browser.get("/ui/").get_data(as_text=True))
    assert csrf is not None
    session = {"Origin": "http://localhost", "X-CSRF-Token": csrf.group(1)}
    for method, path, operation in _operations():
        url, kwargs = REQUESTS[(method, path)]
        security = _security(operation)
        anyone = security == [] or {} in security
        for caller, client, headers, taken in (("nobody", anonymous, {}, anyone),
                                               ("a session", browser, session,
                                                anyone or {"dashboardSession": []} in security)):
            answer = client.open(url, method=method.upper(), **{**kwargs, "headers": {**headers,
                                                                                     **kwargs.get("headers", {})}})
            assert (answer.status_code != 401) is taken, (method, path, caller, answer.status_code,
                                                           answer.get_data(as_text=True)[:200])
        assert (anonymous.open(url, method=method.upper(), **{**kwargs, "headers": {
            "Authorization": f"Bearer {TOKEN}", **kwargs.get("headers", {})}}).status_code != 401), (method, path)


def test_every_answer_of_a_status_that_tells_a_wait_or_a_scheme_documents_its_header():
    """A ``503`` and a ``429`` come with ``Retry-After`` and a ``401`` with ``WWW-Authenticate``,
    whichever operation answers them; the document says so for each, so that a generated client
    reads the wait it is told to keep."""
    for method, path, operation in _operations():
        for status, header in (("401", "WWW-Authenticate"), ("429", "Retry-After"), ("503", "Retry-After")):
            response = operation["responses"].get(status)
            if response is not None:
                assert header in response.get("headers", {}), (method, path, status, header)


def test_a_service_not_ready_says_when_to_ask_again(tmp_path: Path):
    """``/readyz``'s ``503`` is retryable, and like every other ``503`` says after how long."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        runtime.close()
        answers = []
        serving = threading.Thread(target=lambda: answers.append(client.get("/readyz")))
        serving.start()
        serving.join()
        assert (answers[0].status_code, answers[0].get_json()["retryable"]) == (503, True)
        assert int(answers[0].headers["Retry-After"]) > 0
    finally:
        runtime.close()


def _instants(node: Any, at: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Each property of the schemas whose name says it holds an instant (``createdAt``,
    ``timestamp``), with where it is."""
    if isinstance(node, list):
        for n, item in enumerate(node):
            yield from _instants(item, f"{at}/{n}")
    elif isinstance(node, dict):
        for name, schema in (node.get("properties") or {}).items():
            if isinstance(schema, dict) and (name.endswith("At") or name == "timestamp"):
                yield f"{at}/properties/{name}", schema
        for key, value in node.items():
            yield from _instants(value, f"{at}/{key}")


def test_every_instant_says_its_unit():
    """A study's, a trial's, a node pool's and a dead letter's times are numbers of seconds since
    the epoch (in UTC whatever the server's zone); an observation's ``timestamp`` is the text the
    trial printed. Each says so, where a client had to guess the unit of a bare number."""
    found = dict(_instants(DOCUMENT["components"]["schemas"]))
    assert {"#/Trial/properties/startedAt", "#/DeadLetter/properties/receivedAt",
            "#/Observation/properties/timestamp"} <= set(found)
    for at, schema in found.items():
        unit = "RFC 3339" if at.endswith("/timestamp") else "seconds since the epoch"
        assert unit in schema.get("description", ""), at


def test_an_options_request_is_answered_with_what_the_path_takes_and_no_type(tmp_path: Path):
    """``OPTIONS`` answers ``Allow`` with no body, so it names no media type (Flask labelled its
    empty answer ``text/html``), as a ``204`` and an event's ``202`` name none."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        for path, allowed in (("/studies", {"GET", "HEAD", "OPTIONS", "POST"}),
                              ("/studies/none/stop", {"OPTIONS", "POST"})):
            answer = client.options(path)
            assert (answer.status_code, answer.get_data(), answer.headers.get("Content-Type")) == (200, b"", None)
            assert {m.strip() for m in answer.headers["Allow"].split(",")} == allowed
        assert client.options("/studies/none?x=1").get_json()["error"] == "malformed_request", \
            "the refusals keep their JSON"
    finally:
        runtime.close()


def test_each_answer_with_a_body_has_its_type_documented(tmp_path: Path):
    """A body the service sends is one the document gives a type for: ``GET /``'s redirect
    carries a short HTML page (werkzeug's), which the document did not list."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        for url, path in (("/", "/"), ("/healthz", "/healthz"), ("/studies", "/studies")):
            answer = client.get(url)
            content = DOCUMENT["paths"][path]["get"]["responses"][str(answer.status_code)].get("content") or {}
            assert answer.get_data() and answer.mimetype in {kind.split(";")[0] for kind in content}, (url, content)
    finally:
        runtime.close()
