"""Every answer the service gives is in its OpenAPI document: the real app (Flask's test client on
a real Runtime and a real SQLite file) is driven through each refusal, of the checks in front of
the routes and of the routes themselves, and each answer's status must be listed for its path
and method, and its body must match that response's schema (an ``Error``: a snake_case ``error``
of the document's list, a ``message``, ``retryable``). So the document cannot drift from the
server again. Also: every error katuna's code can raise has its code in the document's list."""

from __future__ import annotations

import base64
import importlib
import json
import os
import pkgutil
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import referencing.jsonschema
from conftest import study_definition
from http_helpers import NOBODY
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import functions
from functions.adapters.web import create_app
from functions.adapters.web.errors import error_code
from functions.adapters.web.openapi import ERROR_CODES, document
from functions.core.errors import KatunaError
from functions.runtime import Runtime
from functions.settings import Settings

DOCUMENT = document()
REGISTRY = Registry().with_resource("urn:katuna", Resource.from_contents(
    DOCUMENT, default_specification=referencing.jsonschema.DRAFT202012))
JSON = "application/json"
EVENT = {"ce-specversion": "1.0", "ce-source": "/test", "ce-id": "e-1"}
EMBEDDED = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
"""What a browser sends for an image another site's page embeds."""


def _check(answer, path: str, method: str) -> dict:
    """``answer`` is documented for ``method path``: its status, and its body by the schema."""
    responses = DOCUMENT["paths"][path][method.lower()]["responses"]
    status = str(answer.status_code)
    assert status in responses, f"{method} {path} answered {status} {answer.get_data(as_text=True)[:200]}"
    schema = ((responses[status].get("content") or {}).get(JSON) or {}).get("schema")
    body = answer.get_json(silent=True)
    if schema is not None:
        resolved = json.loads(json.dumps(schema).replace('"#/components', '"urn:katuna#/components'))
        problems = [e.message for e in Draft202012Validator(resolved, registry=REGISTRY).iter_errors(body)]
        assert not problems, (method, path, status, body, problems)
    return body


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[Runtime]:
    runtime = Runtime(Settings(db=tmp_path_factory.mktemp("answers") / "katuna.db", max_body=4096,
                               busy_timeout=0.2))
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def client(runtime):
    client = create_app(runtime).test_client()
    definition = study_definition(name="s1", maxTrials=1, parallelism=1)
    assert client.post("/studies", json=definition).status_code == 201
    deadline = time.monotonic() + 60
    while client.get("/studies/s1").get_json()["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)  # its one trial ends, so that trial 0's refusals are about the request alone
    return client


STUDY = study_definition(name="s2", maxTrials=1, parallelism=1)

# (method, url, the document's path, keyword arguments of the request, status, error)
REFUSALS = [
    ("GET", "/studies", "/studies", {"headers": {"Host": "evil.example"}}, 400, "host_not_allowed"),
    ("POST", "/studies/s1/stop", "/studies/{name}/stop", {"headers": {"Host": "evil.example"}}, 400,
     "host_not_allowed"),
    ("GET", "/openapi.json", "/openapi.json", {"headers": {"Host": "evil.example"}}, 400, "host_not_allowed"),
    ("GET", "/studies/s1", "/studies/{name}", {"data": "x" * 5000, "content_type": JSON}, 413,
     "request_entity_too_large"),
    ("POST", "/studies", "/studies", {"data": "x" * 5000, "content_type": JSON}, 413, "request_entity_too_large"),
    ("DELETE", "/studies/s1", "/studies/{name}", {"data": "x", "content_type": "text/plain"}, 415,
     "unsupported_media_type"),
    ("POST", "/studies/s1/stop", "/studies/{name}/stop", {"data": "x", "content_type": "text/plain"}, 415,
     "unsupported_media_type"),
    ("POST", "/studies", "/studies", {"data": "x", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ("POST", "/", "/", {"data": "x", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ("POST", "/studies/s1/stop", "/studies/{name}/stop", {"headers": {"Origin": "http://evil.example"}}, 403,
     "cross_origin"),
    ("DELETE", "/studies/s1", "/studies/{name}", {"headers": {"Origin": "http://evil.example"}}, 403, "cross_origin"),
    ("POST", "/studies", "/studies", {"json": STUDY, "headers": {"Origin": "http://evil.example"}}, 403,
     "cross_origin"),
    ("GET", "/studies", "/studies", {"headers": EMBEDDED}, 403, "cross_origin"),
    ("GET", "/metrics", "/metrics", {"headers": EMBEDDED}, 403, "cross_origin"),
    ("GET", "/studies/s1", "/studies/{name}", {"headers": {"Accept": "application/xml"}}, 406, "not_acceptable"),
    ("GET", "/studies/s1/trials/0/logs", "/studies/{name}/trials/{number}/logs",
     {"headers": {"Accept": "application/json"}}, 406, "not_acceptable"),
    ("POST", "/studies/s1/stop", "/studies/{name}/stop", {"headers": {"Accept": "text/html"}}, 406, "not_acceptable"),
    ("GET", "/studies/nosuch", "/studies/{name}", {}, 404, "study_not_found"),
    ("DELETE", "/studies/nosuch", "/studies/{name}", {}, 404, "study_not_found"),
    ("POST", "/studies/nosuch/stop", "/studies/{name}/stop", {}, 404, "study_not_found"),
    ("GET", "/studies/nosuch/trials", "/studies/{name}/trials", {}, 404, "study_not_found"),
    ("GET", "/studies/s1/trials?limit=0", "/studies/{name}/trials", {}, 400, "malformed_request"),
    ("GET", "/studies/s1/trials?offset=5", "/studies/{name}/trials", {}, 400, "malformed_request"),
    ("GET", "/studies/s1/trials/99", "/studies/{name}/trials/{number}", {}, 404, "study_not_found"),
    ("GET", "/studies/s1/trials/-1", "/studies/{name}/trials/{number}", {}, 400, "malformed_request"),
    ("GET", "/studies/s1/trials/%EF%BC%91", "/studies/{name}/trials/{number}", {}, 400, "malformed_request"),
    ("GET", "/studies/s1/trials/abc/logs", "/studies/{name}/trials/{number}/logs", {}, 400, "malformed_request"),
    ("GET", "/studies/s1/trials/9223372036854775808", "/studies/{name}/trials/{number}", {}, 400,
     "malformed_request"),
    ("GET", "/studies/s1?foo=1", "/studies/{name}", {}, 400, "malformed_request"),
    ("GET", "/studies/s1/trials/0?foo=1", "/studies/{name}/trials/{number}", {}, 400, "malformed_request"),
    ("GET", "/openapi.json?x=1", "/openapi.json", {}, 400, "malformed_request"),
    ("POST", "/studies?dryRun=true", "/studies", {"json": STUDY}, 400, "malformed_request"),
    ("POST", "/studies/s1/stop?force=1", "/studies/{name}/stop", {}, 400, "malformed_request"),
    ("POST", "/studies/s1/stop", "/studies/{name}/stop", {"json": {}}, 400, "malformed_request"),
    ("DELETE", "/studies/s1", "/studies/{name}", {"json": {"force": True}}, 400, "malformed_request"),
    ("POST", "/?__GCP_CloudEventsMode=CUSTOM_PUBSUB", "/",
     {"data": "{}", "headers": {**EVENT, "ce-type": "x.unknown"}, "content_type": JSON}, 422, "unknown_event_type"),
    ("GET", "/studies/s1/trials/0/logs?attempt=x", "/studies/{name}/trials/{number}/logs", {}, 400,
     "malformed_request"),
    ("GET", "/studies/s1/trials/0/logs?attempt=9", "/studies/{name}/trials/{number}/logs", {}, 404,
     "study_not_found"),
    ("GET", "/dead-letters?limit=abc", "/dead-letters", {}, 400, "malformed_request"),
    ("POST", "/studies", "/studies", {"data": "{", "content_type": JSON}, 400, "unparseable_study"),
    ("POST", "/studies", "/studies", {"data": "", "content_type": JSON}, 400, "unparseable_study"),
    ("POST", "/studies", "/studies", {"data": "[1, 2]", "content_type": JSON}, 422, "invalid_study"),
    ("POST", "/studies", "/studies", {"data": "null", "content_type": JSON}, 422, "invalid_study"),
    ("POST", "/studies", "/studies", {"json": {**STUDY, "maxTrials": -1}}, 422, "invalid_study"),
    ("POST", "/studies", "/studies", {"json": {**study_definition(name="s1"), "algorithm": {"name": "tpe"}}}, 409,
     "study_conflict"),
    ("POST", "/", "/", {"data": "{}", "content_type": "application/cloudevents+json"}, 400, "malformed_event"),
    ("POST", "/", "/", {"data": "{}", "headers": {**EVENT, "ce-type": "dev.katuna.study.created"},
                        "content_type": JSON}, 400, "malformed_event_data"),
    ("POST", "/", "/", {"data": "{}", "headers": {**EVENT, "ce-type": "x.unknown"}, "content_type": JSON}, 422,
     "unknown_event_type"),
    ("POST", "/functions/nosuch", "/functions/{function}",
     {"data": "{}", "headers": {**EVENT, "ce-type": "x.unknown"}, "content_type": JSON}, 503, "unknown_function"),
    ("POST", "/functions/suggest", "/functions/{function}",
     {"data": '{"study": "s1"}', "headers": {**EVENT, "ce-type": "x.unknown"}, "content_type": JSON}, 503,
     "unknown_function"),
    ("POST", "/", "/", {"data": "{}", "headers": {**EVENT, "ce-type": "dev.katuna.trial.checkpointed"},
                        "content_type": JSON}, 503, "newer_event_type"),
    ("POST", "/dead-letters", "/dead-letters", {"data": "{}", "content_type": "application/cloudevents+json"}, 400,
     "malformed_event"),
    ("POST", "/", "/", {"data": '{"type": "dev.knative.sources.ping", "source": "/p", "id": "n1", "data": {}}',
                        "content_type": "application/cloudevents+json"}, 400, "malformed_event"),
    ("POST", "/dead-letters", "/dead-letters", {"data": '{"specversion": "1.0", "type": "x", "source": "/s", "id": "t", '
                                                        '"time": "nope"}',
                                                "content_type": "application/cloudevents+json"}, 400, "malformed_event"),
]


@pytest.mark.parametrize("method, url, path, kwargs, status, error", REFUSALS,
                         ids=[f"{r[0]} {r[1]} {r[5]}" for r in REFUSALS])
def test_each_refusal_is_documented_for_its_path(client, method: str, url: str, path: str, kwargs: dict,
                                                 status: int, error: str):
    answer = client.open(url, method=method, **kwargs)
    assert (answer.status_code, (answer.get_json(silent=True) or {}).get("error")) == (status, error), \
        answer.get_data(as_text=True)[:300]
    body = _check(answer, path, method)
    assert body["retryable"] is (status == 503), "only a 503 is worth retrying"
    assert ("Retry-After" in answer.headers) is (status == 503)


def test_a_write_the_database_cannot_take_now_is_a_documented_503(runtime, client):
    """Another connection holds the write lock past KATUNA_BUSY_TIMEOUT: the submission is a
    temporary refusal, retryable, with Retry-After, and nothing is stored."""
    holder = sqlite3.connect(runtime.settings.db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        answer = client.post("/studies", json=STUDY)
        assert answer.status_code == 503 and answer.headers["Retry-After"], answer.get_data(as_text=True)
        body = _check(answer, "/studies", "POST")
        assert (body["error"], body["retryable"]) == ("temporary_error", True)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client.get("/studies/s2").status_code == 404


def test_a_path_with_an_empty_segment_is_no_path_in_json_not_a_redirect_in_html(client):
    """``/studies//s1`` named no study: werkzeug answered a 308 to ``/studies/s1`` as an HTML page,
    which a client of the API, a ``DELETE`` say, does not expect (nor the OpenAPI document lists)."""
    for method in ("GET", "DELETE"):
        answer = client.open("/studies//s1", method=method)
        assert (answer.status_code, answer.get_json()["error"]) == (404, "not_found"), method
    assert client.get("/studies/s1").status_code == 200, "nothing was deleted"


def test_the_refusals_of_a_service_with_a_token_are_documented(tmp_path: Path):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", api_token="s3cret-token"))
    try:
        client = create_app(runtime).test_client()
        for method, url, path in (("GET", "/studies", "/studies"), ("POST", "/studies/x/stop", "/studies/{name}/stop"),
                                  ("GET", "/dead-letters", "/dead-letters"), ("GET", "/openapi.json", "/openapi.json"),
                                  ("POST", "/", "/")):
            answer = client.open(url, method=method, headers={**EVENT, "ce-type": "x.unknown"}, data="{}",
                                 content_type=JSON)
            assert _check(answer, path, method)["error"] == "unauthorized", (method, url)
        foreign = client.post("/studies/x/stop", headers={"Authorization": "Bearer s3cret-token",
                                                           "Origin": "http://evil.example"})
        refused = _check(foreign, "/studies/{name}/stop", "POST")
        assert refused["error"] == "cross_origin" and "whatever token they carry" in refused["message"], refused
        assert client.post("/ui/login", data={"token": "s3cret-token"},
                           headers={"Sec-Fetch-Site": "same-origin"}).status_code in (302, 303)
        answer = client.post("/studies/x/stop")
        assert _check(answer, "/studies/{name}/stop", "POST")["error"] == "csrf"
    finally:
        runtime.close()


def test_the_address_opened_in_a_browser_is_answered_as_documented(tmp_path: Path):
    """``GET /`` leads a browser to the dashboard, with or without ``KATUNA_API_TOKEN``, from a
    loopback Host or one of ``KATUNA_ALLOWED_HOSTS``: a caller with neither the token nor a
    session is sent to the login form, never refused with a 401, and no OIDC sender is checked
    (that is ``POST /``'s)."""
    locations = set()
    for token in (None, "s3cret-token-of-22-chars"):
        runtime = Runtime(Settings(db=tmp_path / f"{token is None}.db", api_token=token,
                                   allowed_hosts=("katuna.example",) if token else ()))
        try:
            client = create_app(runtime).test_client()
            for host in ("127.0.0.1", "localhost", "katuna.example"):
                for headers in ({}, {"Authorization": f"Bearer {token}"}, {"Authorization": "Bearer wrong"}):
                    answer = client.get("/", headers={"Host": host, **headers})
                    _check(answer, "/", "GET")
                    if answer.status_code == 302:
                        locations.add(answer.headers["Location"])
                    else:
                        assert (token, host, answer.get_json()["error"]) == (None, "katuna.example", "host_not_allowed")
        finally:
            runtime.close()
    assert locations == {"/ui/", "/ui/login?next=/"}
    responses = DOCUMENT["paths"]["/"]["get"]["responses"]
    assert "/ui/login?next=/" in responses["302"]["headers"]["Location"]["description"]
    assert "401" not in responses and "sender_not_allowed" not in responses["403"]["description"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can open a connection as another user (os.setuid)")
def test_a_caller_of_another_account_is_refused_as_documented(client):
    """The connection's client end belongs to ``nobody``, as sock_diag tells it."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        child = os.fork()
        if child == 0:
            try:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                with socket.create_connection(listener.getsockname(), timeout=30) as sock:
                    sock.recv(1)
            finally:
                os._exit(0)
        connection, _ = listener.accept()
        try:
            for method, url, path in (("GET", "/studies", "/studies"), ("POST", "/studies/s1/stop",
                                                                        "/studies/{name}/stop")):
                answer = client.open(url, method=method, environ_overrides={"gunicorn.socket": connection})
                assert _check(answer, path, method)["error"] == "local_user_not_allowed"
        finally:
            connection.close()
            os.waitpid(child, 0)


def test_every_error_katuna_raises_has_its_code_in_the_document():
    """Every error the service's code defines; those of the provisioning script (``infra``),
    which a test in the same process may have imported, never reach the API."""
    for module in pkgutil.walk_packages(functions.__path__, "functions."):
        if module.name != "functions.__main__":
            importlib.import_module(module.name)
    pending, seen = [KatunaError], set()
    while pending:
        for subclass in pending.pop().__subclasses__():
            pending.append(subclass)
            if subclass.__module__.startswith("functions."):
                seen.add(error_code(subclass.__new__(subclass)))
    assert seen - {"katuna_error"} <= set(ERROR_CODES), seen - set(ERROR_CODES)


def test_the_chart_of_an_objective_the_study_does_not_have_is_refused_naming_it(client):
    for value in ("abc", "1", "-1"):
        answer = client.get(f"/ui/studies/s1/plots/history?objective={value}")
        assert answer.status_code == 400, answer.get_data(as_text=True)[:200]
        assert answer.get_json()["message"].startswith("objective: expected a whole number from 0 to 0")


def test_a_parameter_or_a_body_an_operation_does_not_take_is_refused_naming_it_and_changes_nothing(client):
    """``?dryRun=true`` created and ran the study, and a ``DELETE`` with a body deleted: an
    ignored part makes a wrong request look right. The health probes take any parameter."""
    answer = client.post("/studies?dryRun=true", json=STUDY)
    assert answer.get_json()["message"] == "dryRun: not a parameter of POST /studies, which takes none"
    assert client.get("/studies/s2").status_code == 404, "nothing was created"
    answer = client.delete("/studies/s1", json={"force": True})
    assert answer.get_json()["message"] == ("the body: expected none, as DELETE /studies/{name} takes nothing but "
                                            "its path (got 15 bytes)")
    assert client.get("/studies/s1").status_code == 200, "nothing was deleted"
    assert client.get("/studies/s1/trials/0?attempt=1").get_json()["message"].startswith("attempt: not a parameter")
    assert client.get("/healthz?probe=1").status_code == 200


@pytest.mark.parametrize("segment", ["-1", "%EF%BC%91", "%D9%A3", "abc", "+1", "9223372036854775808"])
def test_a_trial_number_that_is_no_whole_number_in_ascii_digits_is_refused_naming_it(client, segment: str):
    for suffix in ("", "/logs"):
        answer = client.get(f"/studies/s1/trials/{segment}{suffix}")
        assert answer.get_json()["message"].startswith("number: expected a whole number from 0 to 9223372036854775807")


@pytest.mark.parametrize("segment", ["S1", "s_1", "-s1", "s1-", "%C3%A91", "a" * 64])
@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/trials"), ("GET", "/best"),
                                                ("GET", "/trials/0"), ("GET", "/trials/0/observations"),
                                                ("GET", "/trials/0/logs"), ("POST", "/stop"), ("DELETE", "")])
def test_a_study_name_that_is_no_dns_label_is_refused_naming_it_and_the_rule(client, segment: str, method: str,
                                                                             suffix: str):
    """As the document's pattern for it says, and as a trial number that is no number is: a 400
    naming ``name`` and what it takes, not a 404 that says only that no study has it."""
    answer = client.open(f"/studies/{segment}{suffix}", method=method)
    assert (answer.status_code, answer.get_json()["error"]) == (400, "malformed_request")
    assert answer.get_json()["message"].startswith("name: expected a DNS-1123 label: lower-case letters, digits and "
                                                   "'-', starting and ending alphanumeric, at most 63 characters, got ")
    assert "400" in document()["paths"][f"/studies/{{name}}{suffix.replace('/0', '/{number}')}"][method.lower()][
        "responses"]


def test_a_study_that_parses_to_no_mapping_is_invalid_at_its_top_level(client):
    for text, got in (("[1, 2]", "a list"), ("42", "a int: '42'"), ("null", "null (or no document)")):
        body = client.post("/studies", data=text, content_type=JSON).get_json()
        assert body["problems"] == [{"path": "", "message": "expected a mapping at the top level of the study "
                                                            f"definition, got {got}"}], text
    body = client.post("/studies", data=" \n", content_type=JSON).get_json()
    assert body["message"] == "unparseable study: the definition is empty: expected a study as YAML or JSON"


@pytest.mark.parametrize("path", ["/", "/dead-letters"])
def test_a_structured_event_without_its_specversion_is_refused_naming_it(client, path: str):
    answer = client.post(path, data='{"type": "dev.knative.sources.ping", "source": "/p", "id": "n1", "data": {}}',
                         content_type="application/cloudevents+json")
    assert answer.get_json()["message"].startswith("attributes.specversion: the CloudEvent has no specversion")


def test_a_dead_letters_attributes_are_read_strictly_and_its_data_is_kept_as_it_came(client):
    """The attributes say which event the letter is: a key given twice or a bad ``time`` is
    refused, named, as the event functions refuse them. The data is kept, never refused (a
    broker drops a letter its sink refuses) and never altered: bytes that are not UTF-8 in
    base64, JSON giving a key twice as its text."""
    structured = "application/cloudevents+json"
    answer = client.post("/dead-letters", data='{"specversion": "1.0", "type": "x", "source": "/s", "id": "a", '
                                               '"id": "b"}', content_type=structured)
    assert (answer.status_code, answer.get_json()["message"]) == (
        400, "duplicate key 'id'; expected the event as JSON (structured mode) with each key once")
    answer = client.post("/dead-letters", data="{}", content_type=JSON,
                         headers={**EVENT, "ce-id": "late", "ce-type": "x", "ce-time": "nope"})
    assert answer.get_json()["message"].startswith("ce-time: expected an RFC 3339 timestamp")
    for letter, data in (("not-utf8", b'{"a": "\xff"}'), ("twice", b'{"a": 1, "a": 2}')):
        answer = client.post("/dead-letters", data=data, content_type=JSON, headers={**EVENT, "ce-id": letter,
                                                                                     "ce-type": "x"})
        assert (answer.status_code, answer.headers["Katuna-Recorded"]) == (202, letter)
    kept = {letter["event"]["id"]: letter["event"]["data"] for letter in client.get("/dead-letters").get_json()}
    assert base64.b64decode(kept["not-utf8"]["base64"]) == b'{"a": "\xff"}'
    assert kept["twice"] == {"raw": '{"a": 1, "a": 2}'}
