"""A Kubernetes API address that is no API server (``KATUNA_K8S_API`` set to an ordinary web
server, a proxy answering its sign-in page), against a real loopback server: every call fails as
a temporary error naming ``KATUNA_K8S_API`` and what it answered, and no study is refused as
invalid, nor failed, for the service's configuration."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from http_helpers import Service
from kubernetes import client
from test_kubernetes import job_study, spec_study
from waiting import eventually

from functions.adapters.kubernetes_client import api_client, call, read_or_none
from functions.core.errors import TemporaryError

PAGE = b"<!doctype html><html><body><form>Sign in</form></body></html>"


class WebServer:
    """A loopback web server answering every request with ``status`` and a body of
    ``content_type``, counting the requests made for each path."""

    def __init__(self, status: int = 200, content_type: str = "text/html; charset=utf-8", body: bytes = PAGE) -> None:
        self.paths: list[str] = []
        answered = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answered.paths.append(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815 (the stdlib's names)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def page() -> Iterator[WebServer]:
    server = WebServer()
    yield server
    server.close()


@pytest.mark.parametrize(("status", "content_type", "body", "answered"), [
    (200, "text/html; charset=utf-8", PAGE, "200 OK with text/html; charset=utf-8 content"),
    (404, "text/html", PAGE, "404 Not Found with text/html content"),
    (200, "application/json", PAGE, "200 OK with application/json content"),
    (200, "application/octet-stream", b"\x00\x01", "200 OK with application/octet-stream content"),
])
def test_a_call_answered_as_no_api_server_answers_is_a_temporary_error_naming_the_setting(
        status: int, content_type: str, body: bytes, answered: str):
    """A read of a Job, and a list of custom objects (which the client would return as the page's
    text), answered with a web page, or with what is not JSON, fail as temporary errors saying
    what was answered by whom; a web page's ``404`` is not taken for an object not there."""
    server = WebServer(status, content_type, body)
    try:
        api = api_client(server.url)
        calls = [lambda: read_or_none(lambda: client.BatchV1Api(api).read_namespaced_job("x", "ns"), "read Job x"),
                 lambda: call(lambda: client.CustomObjectsApi(api).list_namespaced_custom_object(
                     "katuna.dev", "v1alpha1", "ns", "studies"), "list studies")]
        for made in calls:
            with pytest.raises(TemporaryError) as raised:
                made()
            assert f"KATUNA_K8S_API ({server.url}) answered {answered}, not as a Kubernetes API server" \
                   in str(raised.value), raised.value
            assert str(raised.value).endswith("tried again later"), raised.value
    finally:
        server.close()


def test_a_study_is_neither_refused_nor_failed_for_an_api_address_that_answers_a_web_page(tmp_path: Path,
                                                                                          page: WebServer):
    """A ``trialSpec`` study's dry run answered with a web page is answered ``503`` (retryable),
    nothing stored, not refused as invalid; a study taken keeps its trials waiting while their
    Jobs' calls are answered with the page, and is never failed for it."""
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=page.url,
                      KATUNA_K8S_NAMESPACE="trials")
    try:
        status, headers, body = service.request("POST", "/studies", yaml.safe_dump(spec_study("spec-page", {})),
                                                {"Content-Type": "application/yaml"})
        assert status == 503 and json.loads(body)["retryable"] is True and headers.get("Retry-After"), body
        assert "KATUNA_K8S_API" in json.loads(body)["message"], body
        assert service.request("GET", "/studies/spec-page")[0] == 404, "nothing is stored"
        service.submit(job_study("job-page", maxTrials=1, parallelism=1))
        eventually(lambda: sum("/jobs" in path for path in page.paths) >= 6, "six calls about the trial's Job", 60)
        study = service.json("GET", "/studies/job-page")[1]
        assert study["status"] == "running" and study["reason"] is None, study
    finally:
        service.close()
