"""The wrong tokens one client may try (functions.adapters.web.attempts): past 10 within a
minute its tokens are refused (429, Retry-After) without being looked at, the right one too,
while other clients, the service's own user on loopback and a dashboard session are served as
ever; through the real app, and through ``katuna serve`` on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clocks import Clock
from http_helpers import Service
from test_openapi_answers import _check

from functions.adapters.web import create_app
from functions.adapters.web.attempts import ATTEMPTS, FAILURES, WINDOW, Attempts
from functions.runtime import Runtime
from functions.settings import Settings

TOKEN = "attempts-token-0123456789abcdef"
RIGHT = {"Authorization": f"Bearer {TOKEN}"}
WRONG = {"Authorization": "Bearer not-the-token"}
REMOTE = {"REMOTE_ADDR": "198.51.100.7"}
"""A client on another host."""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple]:
    """The real app with ``KATUNA_API_TOKEN``, its failed attempts counted on a clock the test turns."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", api_token=TOKEN))
    try:
        app = create_app(runtime)
        clock = Clock(1000.0)
        app.extensions[ATTEMPTS] = Attempts(clock)
        yield app.test_client(), clock
    finally:
        runtime.close()


def fail(client, times: int, **environ: str) -> None:
    for _ in range(times):
        assert client.get("/studies", headers=WRONG, environ_base={**REMOTE, **environ}).status_code == 401


def test_a_client_past_its_wrong_tokens_is_refused_even_the_right_one_until_they_age_out(served):
    client, clock = served
    fail(client, FAILURES)
    refused = client.get("/studies", headers=RIGHT, environ_base=REMOTE)
    body = _check(refused, "/studies", "GET")
    assert (refused.status_code, body["error"], body["retryable"]) == (429, "too_many_attempts", True)
    assert refused.headers["Retry-After"] == str(int(WINDOW)), "the oldest failure leaves the window then"
    assert client.post("/", headers={**RIGHT, "ce-type": "x.unknown", "ce-id": "1", "ce-source": "/t",
                                     "ce-specversion": "1.0"}, data="{}", content_type="application/json",
                       environ_base=REMOTE).status_code == 429, "the event paths count the same client"
    clock.now += WINDOW / 2
    assert client.get("/studies", headers=RIGHT, environ_base=REMOTE).headers["Retry-After"] == str(int(WINDOW / 2))
    clock.now += WINDOW / 2
    assert client.get("/studies", headers=RIGHT, environ_base=REMOTE).status_code == 200


def test_a_refused_client_locks_out_no_other_nor_the_services_user_on_loopback(served):
    client, _ = served
    fail(client, FAILURES)
    assert client.get("/studies", headers=RIGHT, environ_base=REMOTE).status_code == 429
    assert client.get("/studies", headers=RIGHT, environ_base={"REMOTE_ADDR": "198.51.100.8"}).status_code == 200
    assert client.get("/healthz", environ_base=REMOTE).status_code == 200, "no credential, nothing refused"
    assert client.get("/ui/", environ_base=REMOTE).status_code == 302, "a page still sends it to the login form"
    for _ in range(3 * FAILURES):
        assert client.get("/studies", headers=WRONG).status_code == 401
    assert client.get("/studies", headers=RIGHT).status_code == 200, "loopback's own user is never refused"


def test_clients_of_a_proxy_on_loopback_are_counted_apart_and_apart_from_loopbacks_own_user(served):
    client, _ = served
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    for _ in range(FAILURES):
        assert client.get("/studies", headers={**WRONG, **proxied}).status_code == 401
    assert client.get("/studies", headers={**RIGHT, **proxied}).status_code == 429
    assert client.get("/studies", headers={**RIGHT, "X-Forwarded-For": "203.0.113.10"}).status_code == 200
    assert client.get("/studies", headers=RIGHT).status_code == 200


def test_the_login_form_counts_wrong_tokens_and_refuses_past_them_starting_no_session(served):
    client, _ = served
    form = {"headers": {"Sec-Fetch-Site": "same-origin"}, "environ_base": REMOTE}
    for _ in range(FAILURES):
        assert client.post("/ui/login", data={"token": "wrong"}, **form).status_code == 401
    refused = client.post("/ui/login", data={"token": TOKEN}, **form)
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, str(int(WINDOW)))
    assert "try again in" in refused.get_data(as_text=True) and "Set-Cookie" not in refused.headers


def test_katuna_serve_on_loopback_never_refuses_its_own_users_right_token(tmp_path: Path):
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN)
    try:
        for _ in range(FAILURES + 2):
            assert service.request("GET", "/studies", headers=WRONG)[0] == 401
        assert service.request("GET", "/studies", headers=RIGHT)[0] == 200
    finally:
        service.close()
