"""What ``katuna serve`` answers before the application sees a request is in the OpenAPI document
for every path: its worker refuses another account's connection (without ``KATUNA_API_TOKEN``),
a body cut short or sent too slowly, and gunicorn's parser a request line or header fields past
its limits, whatever the path, the health probes and ``/metrics`` included. Each answer here is
a real one of a real ``katuna serve``, and its status must be listed for its path, its body an
``Error`` whose code the listed description names."""

from __future__ import annotations

import json
import os
import select
import socket
from collections.abc import Iterator

import pytest
import referencing.jsonschema
from http_helpers import NOBODY, Service, answer_as
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from functions.adapters.web.openapi import ERROR_CODES, document

DOCUMENT = document()
REGISTRY = Registry().with_resource("urn:katuna", Resource.from_contents(
    DOCUMENT, default_specification=referencing.jsonschema.DRAFT202012))
READS = sorted(path for path, item in DOCUMENT["paths"].items() if "get" in item)
"""Every path the document lists a ``GET`` of."""


def _url(path: str) -> str:
    return path.replace("{name}", "nosuch").replace("{number}", "0")


def _check(raw: bytes, path: str) -> tuple[int, str]:
    """The status and ``error`` of the raw answer ``raw`` to ``GET path``, which the document lists."""
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), raw[:200]
    status = head.split()[1].decode()
    response = DOCUMENT["paths"][path]["get"]["responses"].get(status)
    assert response is not None, f"GET {path} answered {status} {body[:200]!r}"
    answer = json.loads(body)
    schema = json.loads(json.dumps(response["content"]["application/json"]["schema"]).replace(
        '"#/components', '"urn:katuna#/components'))
    problems = [e.message for e in Draft202012Validator(schema, registry=REGISTRY).iter_errors(answer)]
    assert not problems, (path, status, answer, problems)
    assert answer["error"] in ERROR_CODES and answer["error"] in response["description"], (path, status, answer)
    return int(status), answer["error"]


def _exchange(port: int, sent: bytes, cut: bool = False) -> bytes:
    """The answer to ``sent`` on a new connection, read until the server closes it; ``cut``: the
    client stops sending (shuts its side) after ``sent``."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(sent)
        if cut:
            connection.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: connection.recv(65536), b""))


def _trickled(port: int, head: bytes) -> bytes:
    """The answer to ``head`` whose body then comes a byte every 0.1 s, never whole: the
    connection is never silent for gunicorn's ``keepalive``, so it is answered once the
    request's ``KATUNA_CLIENT_TIMEOUT`` has passed."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head)
        while not select.select([connection], [], [], 0.1)[0]:
            connection.sendall(b"x")
        return b"".join(iter(lambda: connection.recv(65536), b""))


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    """One worker; a request must be whole within a second; the workers' counts kept in a
    directory the test can reach."""
    workdir = tmp_path_factory.mktemp("serve")
    (workdir / "metrics").mkdir()
    serving = Service(workdir, workers=1, KATUNA_CLIENT_TIMEOUT="1", PROMETHEUS_MULTIPROC_DIR=str(workdir / "metrics"))
    yield serving
    serving.close()


@pytest.mark.parametrize("path", READS)
def test_what_katuna_serve_refuses_before_the_app_is_documented_for_every_path(service: Service, path: str):
    url = _url(path)
    request = f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    seen = {_check(_exchange(service.port, f"GET {url}?x={'1' * 5000} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()),
                   path),
            _check(_exchange(service.port, request + b"".join(b"X-F-%d: v\r\n" % n for n in range(120)) + b"\r\n"),
                   path),
            _check(_exchange(service.port, request + b"X-F: " + b"v" * 9000 + b"\r\n\r\n"), path),
            _check(_exchange(service.port, request + b"Content-Length: 10\r\n\r\nabc", cut=True), path),
            _check(_trickled(service.port, request + b"Content-Length: 1000\r\n\r\n"), path)}
    if os.geteuid() == 0:  # only root can connect as another account
        seen.add(_check(answer_as(NOBODY, service.port, request + b"\r\n"), path))
    assert {(414, "uri_too_long"), (431, "request_header_fields_too_large"), (400, "incomplete_body"),
            (408, "request_timeout")} <= seen


def test_metrics_that_cannot_be_read_are_a_documented_500(service: Service):
    """A worker's counts the service cannot read (here a file of no metrics in the directory
    prometheus_client reads them all from) fail the scrape with katuna's 500, which
    ``/metrics`` lists."""
    assert service.request("GET", "/metrics")[0] == 200
    (service.workdir / "metrics" / "counter_0.db").write_bytes(b"not metrics" * 100)
    try:
        status, _, body = service.request("GET", "/metrics")
        head = f"HTTP/1.1 {status} -\r\n\r\n".encode()
        assert _check(head + body, "/metrics") == (500, "internal_server_error")
    finally:
        (service.workdir / "metrics" / "counter_0.db").unlink()


def test_a_refusal_ends_its_connection_and_says_so(service: Service):
    """gunicorn drops an application's ``Connection: close``, and kept the connection of a
    refusal alive: the request sent behind it on the same connection was served. The worker's
    own refusals said ``keep-alive`` and closed."""
    refused = b"POST /studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx"
    answer = _exchange(service.port, refused + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 415 ") and b"\r\nConnection: close\r\n" in answer, answer[:300]
    assert answer.count(b"HTTP/1.1 ") == 1, "the request behind the refusal is not served"
    head = b"POST /studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    for answer in (_exchange(service.port, head + b"Content-Length: 10\r\n\r\nabc", cut=True),
                   _trickled(service.port, head + b"Content-Length: 1000\r\n\r\n")):
        assert answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 408 ")), answer[:300]
        assert b"\r\nConnection: close\r\n" in answer and b"keep-alive" not in answer, answer[:300]


def test_a_body_over_the_limit_is_refused_before_it_is_asked_for(service: Service):
    """``Expect: 100-continue`` with a ``Content-Length`` over ``KATUNA_MAX_BODY``: the ``413``
    comes first, where gunicorn answered ``100 Continue`` (send the body), then threw it away."""
    answer = _exchange(service.port, b"POST /studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                     b"Expect: 100-continue\r\nContent-Length: 5000000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ") and b"\r\nConnection: close\r\n" in answer, answer[:300]
    assert b"100 Continue" not in answer
