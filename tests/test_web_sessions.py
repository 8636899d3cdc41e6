"""Dashboard sessions on a real ``katuna serve`` with a token: random, shared by the workers,
bound to their Host, needing a same-origin CSRF-carrying request for writes, ended by logout,
expiring; bearer-token scripts unaffected."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import sqlite3
import urllib.parse
from contextlib import closing
from http.cookies import SimpleCookie

import pytest
from conftest import study_definition
from flask import Request
from http_helpers import Service
from waiting import eventually
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from functions.adapters.web import auth, create_app
from functions.runtime import Runtime
from functions.settings import Settings

pytestmark = pytest.mark.slow

TOKEN = "sessions-token-0123456789"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
"""What a browser says of a form the dashboard's own page posts (the test client's Host has no port)."""


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    service = Service(tmp_path_factory.mktemp("sessions"), workers=2, KATUNA_API_TOKEN=TOKEN,
                      KATUNA_ALLOWED_HOSTS="katuna.example")
    yield service
    service.close()


def unfollowed(service: Service, method: str, path: str, body: str, headers: dict[str, str]):
    """A request whose redirect is not followed: its status and headers."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.headers
    finally:
        connection.close()


def login(service: Service) -> tuple[str, dict[str, str]]:
    """Log in through the form: the session cookie's value, and its attributes."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": service.base}
    status, answer = unfollowed(service, "POST", "/ui/login", urllib.parse.urlencode({"token": TOKEN}), headers)
    assert status == 302
    morsel = next(iter(SimpleCookie(answer["Set-Cookie"]).values()))
    return morsel.value, {k: v for k, v in morsel.items() if v}


def csrf_of(service: Service, cookie: str) -> str:
    _, _, page = service.request("GET", "/ui/", headers={"Cookie": f"katuna_session={cookie}"})
    return re.search(rb'<meta name="csrf-token" content="([^"]+)">', page).group(1).decode()


def _write(service: Service, cookie: str, name: str, **headers: str) -> int:
    body = json.dumps(study_definition(name=name, maxTrials=1, parallelism=1))
    return service.request("POST", "/studies", body, {"Content-Type": "application/json",
                                                      "Cookie": f"katuna_session={cookie}", **headers})[0]


def test_a_session_is_random_strict_and_known_to_every_worker(guarded: Service):
    first, attributes = login(guarded)
    second, _ = login(guarded)
    assert first != second and TOKEN not in first
    assert attributes["httponly"] and attributes["samesite"] == "Strict" and attributes["path"] == "/"
    for _ in range(8):
        assert guarded.request("GET", "/studies", headers={"Cookie": f"katuna_session={first}"})[0] == 200
    assert guarded.request("GET", "/studies", headers={"Cookie": "katuna_session=forged"})[0] == 401


def test_the_database_keeps_a_hash_of_each_session_never_its_id(guarded: Service):
    cookie, _ = login(guarded)
    assert guarded.request("GET", "/studies", headers={"Cookie": f"katuna_session={cookie}"})[0] == 200
    files = [path for path in guarded.workdir.iterdir() if path.name.startswith("katuna.db")]
    assert files and not any(cookie.encode() in path.read_bytes() for path in files), "readable from the database"
    with closing(sqlite3.connect(guarded.workdir / "katuna.db")) as db:
        kept = [row[0] for row in db.execute("SELECT id_sha256 FROM sessions")]
    assert hashlib.sha256(cookie.encode()).hexdigest() in kept


def test_a_cookie_write_needs_the_same_origin_and_the_csrf_token(guarded: Service):
    cookie, _ = login(guarded)
    csrf = csrf_of(guarded, cookie)
    assert _write(guarded, cookie, "no-origin", **{"X-CSRF-Token": csrf}) == 403
    assert _write(guarded, cookie, "no-csrf", Origin=guarded.base) == 403
    assert _write(guarded, cookie, "wrong-csrf", Origin=guarded.base, **{"X-CSRF-Token": "x" * 43}) == 403
    other_port = f"http://127.0.0.1:{guarded.port + 1}"
    assert _write(guarded, cookie, "other-port", Origin=other_port, **{"X-CSRF-Token": csrf}) == 403
    names = [s["name"] for s in guarded.json("GET", "/studies", headers={"Authorization": f"Bearer {TOKEN}"})[1]]
    assert not {"no-origin", "no-csrf", "wrong-csrf", "other-port"} & set(names)
    assert _write(guarded, cookie, "from-dashboard", Origin=guarded.base, **{"X-CSRF-Token": csrf}) == 201
    assert _write(guarded, cookie, "from-fetch", **{"Sec-Fetch-Site": "same-origin", "X-CSRF-Token": csrf}) == 201


def test_a_bearer_token_write_needs_no_origin_or_csrf(guarded: Service):
    body = json.dumps(study_definition(name="from-script", maxTrials=1, parallelism=1))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    assert guarded.request("POST", "/studies", body, headers)[0] == 201
    assert guarded.request("POST", "/studies", body, {**headers, "Host": "katuna.example"})[0] == 200


def test_a_session_works_only_on_the_host_it_was_issued_for(guarded: Service):
    cookie, _ = login(guarded)
    jar = {"Cookie": f"katuna_session={cookie}"}
    assert guarded.request("GET", "/studies", headers=jar)[0] == 200
    for host in (f"localhost:{guarded.port}", f"127.0.0.1:{guarded.port + 1}", "katuna.example"):
        assert guarded.request("GET", "/studies", headers={**jar, "Host": host})[0] == 401, host


def test_logout_revokes_the_session_everywhere(guarded: Service):
    cookie, _ = login(guarded)
    jar = {"Cookie": f"katuna_session={cookie}"}
    form = {"Content-Type": "application/x-www-form-urlencoded", **jar, "Origin": guarded.base}
    assert guarded.request("POST", "/ui/logout", "csrf=wrong", form)[0] == 403
    status, answer = unfollowed(guarded, "POST", "/ui/logout", urllib.parse.urlencode({"csrf": csrf_of(guarded, cookie)}),
                                form)
    assert status == 302 and "katuna_session=;" in answer["Set-Cookie"]
    for _ in range(4):
        assert guarded.request("GET", "/studies", headers=jar)[0] == 401, "a copy of the cookie is revoked too"


def test_behind_a_proxy_that_ends_tls_the_session_cookie_is_sent_over_https_alone(guarded: Service):
    """An nginx that ends TLS passes the login on as plain HTTP without saying so (it sends no
    ``X-Forwarded-Proto`` unless told): the page's ``Origin`` says the browser is on HTTPS, so
    the cookie is ``Secure`` and ``__Host-`` prefixed, which a browser never sends over plain
    HTTP, and it serves the requests the proxy passes on, until logout clears it."""
    site = {"Host": "katuna.example", "Origin": "https://katuna.example"}
    status, answer = unfollowed(guarded, "POST", "/ui/login", urllib.parse.urlencode({"token": TOKEN}),
                                {"Content-Type": "application/x-www-form-urlencoded", **site})
    assert status == 302, answer
    [morsel] = SimpleCookie(answer["Set-Cookie"]).values()
    assert (morsel.key, morsel["secure"], morsel["httponly"], morsel["samesite"], morsel["domain"]) == (
        "__Host-katuna_session", True, True, "Strict", ""), answer["Set-Cookie"]
    jar = {"Host": "katuna.example", "Cookie": f"__Host-katuna_session={morsel.value}"}
    assert guarded.request("GET", "/studies", headers=jar)[0] == 200
    _, _, page = guarded.request("GET", "/ui/", headers=jar)
    csrf = re.search(rb'<meta name="csrf-token" content="([^"]+)">', page).group(1).decode()
    status, answer = unfollowed(guarded, "POST", "/ui/logout", urllib.parse.urlencode({"csrf": csrf}),
                                {"Content-Type": "application/x-www-form-urlencoded", **site, "Cookie": jar["Cookie"]})
    assert status == 302 and answer["Set-Cookie"].startswith("__Host-katuna_session=;"), answer["Set-Cookie"]
    assert "Secure" in answer["Set-Cookie"]
    assert guarded.request("GET", "/studies", headers=jar)[0] == 401, "logged out"


def test_logout_revokes_the_session_of_each_cookie_the_browser_holds(guarded: Service):
    """A browser that logged in over plain HTTP and then over HTTPS holds both cookies: logging
    out ends both sessions and clears both cookies."""
    form = {"Content-Type": "application/x-www-form-urlencoded", "Host": "katuna.example"}
    cookies = {}
    for scheme in ("http", "https"):
        status, answer = unfollowed(guarded, "POST", "/ui/login", urllib.parse.urlencode({"token": TOKEN}),
                                    {**form, "Origin": f"{scheme}://katuna.example"})
        [morsel] = SimpleCookie(answer["Set-Cookie"]).values()
        cookies[morsel.key] = morsel.value
    assert set(cookies) == {"katuna_session", "__Host-katuna_session"}
    jar = {"Host": "katuna.example", "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    _, _, page = guarded.request("GET", "/ui/", headers=jar)
    csrf = re.search(rb'<meta name="csrf-token" content="([^"]+)">', page).group(1).decode()
    connection = http.client.HTTPConnection("127.0.0.1", guarded.port, timeout=30)
    try:
        connection.request("POST", "/ui/logout", urllib.parse.urlencode({"csrf": csrf}),
                           {**form, **jar, "Origin": "https://katuna.example"})
        answer = connection.getresponse()
        answer.read()
        cleared = sorted(c.partition("=")[0] for c in answer.headers.get_all("Set-Cookie"))
    finally:
        connection.close()
    assert (answer.status, cleared) == (302, ["__Host-katuna_session", "katuna_session"])
    for name, value in cookies.items():
        assert guarded.request("GET", "/studies", headers={"Host": "katuna.example", "Cookie": f"{name}={value}"}
                               )[0] == 401, name


def test_the_services_root_leads_a_browser_to_the_dashboard_through_the_login(guarded: Service):
    """``GET /`` (the address a user types) is the dashboard, not a 405 of the event receiver's
    ``POST /``; without a session it is the login form first, which then leads to the studies."""
    status, answer = unfollowed(guarded, "GET", "/", "", {})
    assert (status, answer["Location"]) == (302, "/ui/login?next=/")
    status, answer = unfollowed(guarded, "POST", "/ui/login", urllib.parse.urlencode({"token": TOKEN, "next": "/"}),
                                {"Content-Type": "application/x-www-form-urlencoded", "Origin": guarded.base})
    assert (status, answer["Location"]) == (302, "/ui/")
    cookie, _ = login(guarded)
    status, answer = unfollowed(guarded, "GET", "/", "", {"Cookie": f"katuna_session={cookie}"})
    assert (status, answer["Location"]) == (302, "/ui/")


def test_a_changed_api_token_ends_every_session_opened_with_the_old_one(tmp_path):
    """A restart with the same token keeps the sessions; one with another token (the old one
    leaked) ends them all, the reads and writes of a session copied by whoever had the old one."""
    first = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN)
    try:
        cookie, _ = login(first)
    finally:
        first.close()
    jar = {"Cookie": f"katuna_session={cookie}"}
    same = Service(tmp_path, workers=1, port=first.port, KATUNA_API_TOKEN=TOKEN)
    try:
        assert same.request("GET", "/studies", headers=jar)[0] == 200, "a restart alone ends no session"
        csrf = csrf_of(same, cookie)
    finally:
        same.close()
    rotated = Service(tmp_path, workers=1, port=first.port, KATUNA_API_TOKEN="rotated-token-9876543210")
    try:
        assert rotated.request("GET", "/studies", headers=jar)[0] == 401
        assert unfollowed(rotated, "GET", "/ui/", "", jar)[0] == 302
        assert _write(rotated, cookie, "after-rotation", Origin=rotated.base, **{"X-CSRF-Token": csrf}) == 401
        assert rotated.request("GET", "/studies", headers={"Authorization": "Bearer rotated-token-9876543210"})[0] == 200
    finally:
        rotated.close()


def test_a_session_expires(tmp_path):
    """A session serves requests until its time to live runs out (2 s: a loaded machine may take
    a while between the login and the first request), then none."""
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN, KATUNA_SESSION_TTL="2")
    try:
        cookie, attributes = login(service)
        assert attributes["max-age"] == "2"
        jar = {"Cookie": f"katuna_session={cookie}"}
        assert service.request("GET", "/studies", headers=jar)[0] == 200
        eventually(lambda: service.request("GET", "/studies", headers=jar)[0] == 401, "the session expires")
    finally:
        service.close()


def test_over_https_the_cookie_has_the_host_prefix(tmp_path):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", api_token=TOKEN))
    app = create_app(runtime)
    try:
        client = app.test_client()
        answer = client.post("/ui/login", data={"token": TOKEN}, base_url="https://127.0.0.1",
                             headers={"Origin": "https://127.0.0.1"})
        cookie = answer.headers["Set-Cookie"]
        assert cookie.startswith("__Host-katuna_session=") and "Secure" in cookie and "Domain" not in cookie
        session = cookie.split(";")[0].partition("=")[2]
        client.set_cookie("__Host-katuna_session", session, domain="127.0.0.1")
        assert client.get("/studies", base_url="https://127.0.0.1").status_code == 200
        plain = app.test_client()
        plain.set_cookie("katuna_session", session, domain="127.0.0.1")
        assert plain.get("/studies", base_url="https://127.0.0.1").status_code == 401, "not the plain cookie"
    finally:
        runtime.close()


@pytest.mark.parametrize("token", [None, TOKEN])
def test_login_goes_on_only_to_a_dashboard_path_a_location_header_carries(tmp_path, token: str | None):
    """Without a token the login page sends the browser straight on; with one, after the form."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", api_token=token))
    try:
        client = create_app(runtime).test_client()

        def goes_to(target: str) -> str:
            answer = (client.post("/ui/login", data={"token": token, "next": target}, headers=SAME_ORIGIN) if token
                      else client.get("/ui/login", query_string={"next": target}))
            assert answer.status_code == 302, (target, answer.text)
            return answer.headers["Location"]

        for kept in ("/ui/studies/demo", "/ui/studies/demo/trials?sort=param:x&desc=1", "/ui/studies/a%0ab",
                     "/ui/studies/a..b"):
            assert goes_to(kept) == kept
        for refused in ("/ui/\nx", "/ui/%0a\r\nSet-Cookie: a=b", "/ui/\x00", "/ui/\x1f", "/ui/\x7f", "/ui/\tx",
                        "/ui/\\evil.example", "/ui/../studies", "/ui/studies/%2e%2e/%2E./x", "/ui/..?x",
                        "//evil.example/ui/", "https://evil.example/ui/", "/studies", ""):
            assert goes_to(refused) == "/ui/", repr(refused)
    finally:
        runtime.close()


class _UncheckedHost(Request):
    """A request whose ``host`` is the ``Host`` header as the client sent it, as werkzeug before
    3.1.7 (which ``flask>=3`` allows) gives it: any text, not only an ASCII name."""

    @property
    def host(self) -> str:
        return self.environ["HTTP_HOST"]


def test_a_session_cookie_on_a_non_ascii_host_is_no_session_not_a_fault(tmp_path):
    """A session is looked up for a Host that is not ASCII (``café.example``, which a wildcard
    of ``KATUNA_ALLOWED_HOSTS`` may let through an older werkzeug): it is no session of that
    Host, where comparing the texts raised ``TypeError`` (a ``500``)."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", api_token=TOKEN))
    try:
        issued = _UncheckedHost(EnvironBuilder(headers={"Host": "katuna.example"}).get_environ())
        answer = Response()
        auth.start_session(issued, answer, runtime.store(), 60, TOKEN)
        cookie = answer.headers["Set-Cookie"].split(";")[0]
        for host, same in (("katuna.example", True), ("caf\u00e9.example", False), ("\u00e9", False)):
            environ = EnvironBuilder(headers={"Host": host.encode().decode("latin-1"), "Cookie": cookie}).get_environ()
            session = auth.current_session(_UncheckedHost(environ), runtime.store(), TOKEN)
            assert (session is not None) == same, host
    finally:
        runtime.close()
