"""The HTTP service: the study API, the CloudEvent functions, health, metrics, and the OpenAPI document.

``create_app`` is a Flask app factory over an :class:`functions.core.application.Application`,
which the composition root (:mod:`functions.runtime`) builds and hands in.
"""

from __future__ import annotations

import logging
import re
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, Response, current_app, g, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import (
    BadRequest,
    ClientDisconnected,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)

from functions.adapters.web import api, compression, forwarded, functions_ce, guard, peers, takes, tick_floor, ui
from functions.adapters.web.attempts import ATTEMPTS, Attempts, client_of, refusal_wait
from functions.adapters.web.auth import bearer, csrf_matches, current_session, has_token
from functions.adapters.web.errors import error_response
from functions.adapters.web.json_provider import StrictJSONProvider
from functions.adapters.web.openapi import ERROR_CODES
from functions.core import senders
from functions.core.application import Application, ServiceSettings
from functions.core.errors import KatunaError

if TYPE_CHECKING:
    from functions.adapters.web.oidc import Verifier

OPEN_PATHS = ("/healthz", "/readyz")
SAFETY_HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
                  "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
"""On every answer: no page of another site may frame the dashboard (where a click it hides
under its own could press Stop or submit a study: clickjacking), no answer is read as another
type than it says, and no URL of the service leaves it in a Referer."""
STATIC_PREFIXES = ("/ui/static/", "/ui/vendor/")
"""The dashboard's scripts and styles: the same for everyone, cached by the browser as they say."""
NO_STORE = "no-store"
"""``Cache-Control`` of every other answer: pages, fragments, charts, JSON, CSV and logs carry a
study's data, and a browser that kept them would show them again after **Log out** (the Back
button), without asking the server."""
METRICS_PATH = "/metrics"
log = logging.getLogger("katuna.web")


def create_app(runtime: Application) -> Flask:
    """The WSGI application over ``runtime`` (whose broker thread it starts). Its files are the
    dashboard's own (:mod:`.ui`'s folders): Flask's default static and template folders would be
    those of the process's working directory, served and rendered whatever they hold."""
    app = Flask("katuna", root_path=str(Path(__file__).parent), static_folder=None, template_folder=None)
    app.json = StrictJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body
    app.extensions["katuna"] = runtime
    app.extensions[ATTEMPTS] = Attempts()
    app.url_map.merge_slashes = False  # /studies//x is no path, not a redirect to one in an HTML page
    if runtime.settings.oidc_audience:
        from functions.adapters.web.oidc import Verifier  # PyJWT and its cryptography: only where tokens come

        app.extensions["katuna_oidc"] = Verifier(runtime.settings.oidc_audience, runtime.settings.oidc_issuer_url)
    elif runtime.settings.events == "reply":
        log.warning("the event paths take any sender: set KATUNA_OIDC_AUDIENCE when the cluster enables "
                    "Knative Eventing's authentication-oidc, and keep the service cluster-local%s",
                    "" if runtime.settings.api_token else "; without KATUNA_API_TOKEN, katuna's events are not "
                                                          "signed either, and any sender's are believed")
    app.url_map.converters["trial"] = api.TrialNumber
    app.register_blueprint(api.blueprint)
    app.register_blueprint(functions_ce.blueprint)
    app.register_blueprint(ui.blueprint)
    app.add_url_rule(METRICS_PATH, "metrics", _metrics)
    app.add_url_rule("/", "home", _home, methods=["GET"])
    app.before_request(_guard)
    app.before_request(_takes)
    app.after_request(_safety_headers)
    app.after_request(_untyped_when_empty)
    app.after_request(_compressed)
    app.register_error_handler(KatunaError, error_response)
    app.register_error_handler(HTTPException, _http_error)
    runtime.start()
    return app


def _guard():
    """Every request but the health probes: an allowed Host, a body within the limit, no read
    another site's page asks for (:func:`guard.cross_site_read`), then for writes an accepted
    content type and no cross-site Origin (for the dashboard's forms, this origin, said), then a
    known caller."""
    settings = current_app.extensions["katuna"].settings
    path = request.path
    if path in OPEN_PATHS:
        if path == api.READY_PATH:
            setattr(g, api.TOLD_WHY, partial(_may_be_told_why, settings))
        return None
    if not settings.api_token and not (path == METRICS_PATH and settings.metrics_token):
        refused = _check_local_user()
        if refused is not None:
            return refused
    if path == METRICS_PATH:
        return _check_scraper(settings)
    if not guard.host_allowed(request.host, settings.allowed_hosts):
        return _host_refused()
    if not guard.buffer_chunked(request.environ, settings.max_body) or (request.content_length or 0) > settings.max_body:
        return guard.refusal(request, 413, "request_entity_too_large", _too_large(settings.max_body))
    event_path = functions_ce.is_event_path(path)
    if request.method not in guard.WRITE_METHODS and guard.cross_site_read(request):
        return _cross_site_read_refused()
    if request.method in guard.WRITE_METHODS:
        kind = "event" if event_path else "form" if ui.is_form_path(path) else "api"
        problem = guard.content_type_problem(request, kind)
        if problem:
            return guard.refusal(request, 415, "unsupported_media_type", problem)
        same = guard.same_origin(request)
        if same is False:
            return guard.refusal(request, 403, "cross_origin",
                                 "writes from another site are refused, whatever token they carry (the Origin or "
                                 "Sec-Fetch-Site header names another site): send them from this service's own "
                                 "pages, or from a script that sends neither header, with Authorization: Bearer "
                                 "<KATUNA_API_TOKEN>")
        if same is None and kind == "form":
            return guard.refusal(request, 403, "cross_origin", FORM_UNPLACED)
    if event_path:
        return _check_event_sender(settings)
    return _check_caller(settings, path)


def _may_be_told_why(settings: ServiceSettings) -> bool:
    """Whether ``/readyz`` may tell this caller why the service is not ready: the reason may name
    the database's path and what is wrong with it, which the probes (a kubelet, Knative's
    queue-proxy) need not know, and which any caller could read, a page another site rebinds
    to the service's address included. So it is told to a caller with the API token (a wrong one
    counts against its client, as anywhere: no oracle for guessing the token), or, without a
    token, to one the service would let read its studies; everyone else gets the status alone,
    and the log has the reason."""
    token = settings.api_token
    if token:
        if bearer(request) is None or _too_many_attempts() is not None:
            return False
        if has_token(request, token):
            return True
        _failed_attempt()
        return False
    return (_check_local_user() is None and guard.host_allowed(request.host, settings.allowed_hosts)
            and not guard.cross_site_read(request))


FORM_UNPLACED = ("the dashboard's forms (log in, log out) are taken only from its own pages, which a browser names "
                 "in the Origin or Sec-Fetch-Site header; this request names no origin: log in from the dashboard's "
                 "page, and script the API with Authorization: Bearer <KATUNA_API_TOKEN>")
"""The refusal of a form post that says nothing of where it comes from. Only a browser posts the
dashboard's forms (the login form needs no session, so no CSRF token guards it), and every
browser that keeps ``SameSite`` cookies names the origin of a POST: one naming none is another
site's page in a browser too old to say, or a script, which has the API. So a form, as every
write made with a session (:func:`_check_caller`), needs the browser to say it comes from this
origin, whatever other header (``Referer``) it carries."""


def _takes():
    """Once the caller is known: a query parameter or a body the operation does not take is
    refused, naming it (:mod:`.takes`)."""
    takes.check(request, current_app.view_functions.get(request.endpoint or ""))


def _check_local_user():
    """Without the API token, a request only from a socket of the service's own user (or
    root): any account of the machine can connect to loopback (:mod:`.peers`). ``katuna
    serve``'s worker refuses other connections before reading them (:mod:`.worker`); this
    check stands for servers that do not. A server that does not hand over the connection
    (tests' clients) is taken as before. Whatever the connection, a request a proxy says it
    passed on is refused: its client is whoever reached the proxy (:func:`forwarded.proxy_header`)."""
    connection = request.environ.get("gunicorn.socket")
    problem = None if connection is None else peers.stranger(connection)
    if problem is None and (header := forwarded.proxy_header(request)) is not None:
        problem = PROXIED.format(header=header)
    return None if problem is None else guard.refusal(request, 403, "local_user_not_allowed", problem)


PROXIED = ("without KATUNA_API_TOKEN this service takes requests only from its own user on this machine, and this "
           "one came through a proxy (its {header} header says so), whose clients are whoever can reach the proxy: "
           "set KATUNA_API_TOKEN to serve through a proxy (its clients then send Authorization: Bearer <token>)")
"""The refusal, by a service without a token, of a request a proxy passed on."""


DASHBOARD_POLICY = "frame-ancestors 'none'; script-src 'self' 'unsafe-eval'; object-src 'none'; base-uri 'none'"
"""katuna's own pages run only the scripts the service serves (a text that slipped past
escaping runs nothing: no inline script or event handler); plotly's WebGL charts (parallel
coordinates) compile their shaders' glue with ``Function``, hence ``'unsafe-eval'``."""


def _safety_headers(response: Response) -> Response:
    for name, value in {**SAFETY_HEADERS, "Content-Security-Policy": DASHBOARD_POLICY}.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith(STATIC_PREFIXES):
        response.headers["Cache-Control"] = NO_STORE
    return response


def _untyped_when_empty(response: Response) -> Response:
    """An answer with no content (a ``204``, an event path's empty ``202``, an ``OPTIONS``'s
    ``Allow``) names no media type: Flask would label it ``text/html``, a type for a body that is
    not there."""
    empty_kind = response.status_code in (202, 204) or request.method == "OPTIONS"
    if empty_kind and not response.is_streamed and not response.get_data():
        response.headers.pop("Content-Type", None)
    return response


def _compressed(response: Response) -> Response:
    return compression.compressed(request, response)


def _home():
    """The service's address, opened in a browser: the dashboard (``POST /`` takes events)."""
    return redirect(url_for("ui.studies"))


def _metrics():
    """The service's metrics for Prometheus: the text format, or OpenMetrics when asked (a type
    the client refuses, ``q=0``, is no asking: prometheus-client takes any type it names);
    ``Vary`` says the format follows ``Accept``."""
    accept = ",".join(kind for kind in request.headers.get("Accept", "").split(",") if not _REFUSED.search(kind))
    body, content_type = current_app.extensions["katuna"].metrics(accept)
    response = Response(body, content_type=content_type)
    response.vary.add("Accept")
    return response


_REFUSED = re.compile(r";\s*q\s*=\s*0(?:\.0{0,3})?\s*(?:;|$)", re.IGNORECASE)
"""A media range's weight of zero (RFC 9110 section 12.4.2): the type is not acceptable."""


def _cross_site_read_refused():
    """The refusal of a read another site's page asks for (:func:`guard.cross_site_read`)."""
    return guard.refusal(request, 403, "cross_origin", "reads another site's page asks for are refused: open "
                                                       "this service's pages from its own address")


def _host_refused():
    return guard.refusal(request, 400, "host_not_allowed",
                         f"Host {request.host!r} is not served here: add its name to KATUNA_ALLOWED_HOSTS "
                         "(comma-separated; loopback names and addresses are always served)")


def _check_scraper(settings: ServiceSettings):
    """``/metrics`` takes ``KATUNA_METRICS_TOKEN`` (which reaches nothing else) or the API token,
    whatever the Host: Prometheus scraping a pod names the pod's address. With neither token
    set it is served like every other read: to loopback Host names only, and not to another
    site's page (which, with no token to send, could otherwise have every scrape's reads of the
    database made again and again with the user's own connection)."""
    tokens = [token for token in (settings.metrics_token, settings.api_token) if token]
    if not tokens:
        if not guard.host_allowed(request.host, settings.allowed_hosts):
            return _host_refused()
        return _cross_site_read_refused() if guard.cross_site_read(request) else None
    if (waited := _too_many_attempts()) is not None:
        return waited
    if any(has_token(request, token) for token in tokens):
        return None
    _failed_attempt()
    return _unauthorized("send Authorization: Bearer <KATUNA_METRICS_TOKEN> (or <KATUNA_API_TOKEN>)")


def _check_event_sender(settings: ServiceSettings):
    """The event paths take the API token, or Knative's OIDC delivery token when
    ``KATUNA_OIDC_AUDIENCE`` is set, from a sender of ``KATUNA_OIDC_SUBJECTS`` when that is set
    (another sender's valid token: 403, naming it); behind a broker without OIDC
    (``KATUNA_EVENTS=reply``) they take any sender, and rely on the service being cluster-local.
    Whoever delivers it, an event of katuna's own types is believed without the API token only
    with katuna's signature (:data:`functions_ce.API_CALLER`): a broker, OIDC or not, passes on
    what any sender its policy admits posted to it."""
    verifier: Verifier | None = current_app.extensions.get("katuna_oidc")
    checked = settings.api_token or verifier is not None
    if checked and (waited := _too_many_attempts()) is not None:
        return waited
    if settings.api_token and has_token(request, settings.api_token):
        setattr(g, functions_ce.API_CALLER, True)
        return None
    if verifier is None:
        if settings.events == "reply":
            setattr(g, tick_floor.ANONYMOUS, True)
        if settings.events == "reply" or not settings.api_token:
            return None
        _failed_attempt()
        return _unauthorized()
    given = bearer(request)
    subject = verifier.subject(given) if given is not None else None
    if subject is None:
        _failed_attempt()
        return _unauthorized()
    if settings.oidc_subjects and not senders.allowed(subject, settings.oidc_subjects):
        log.warning("refused an event delivery from %s: not one of KATUNA_OIDC_SUBJECTS", subject)
        return guard.refusal(request, 403, "sender_not_allowed",
                             f"events from {subject!r} are refused: katuna takes events only from the senders of "
                             "KATUNA_OIDC_SUBJECTS (the Triggers' OIDC accounts)")
    return None


def _check_caller(settings: ServiceSettings, path: str):
    """With ``KATUNA_API_TOKEN`` set, the bearer token, or a dashboard session whose writes
    come from this origin with the session's CSRF token; pages send a browser to the login."""
    token = settings.api_token
    if not token or ui.is_open_path(path):
        return None
    if (waited := _too_many_attempts()) is not None:
        return waited
    if has_token(request, token):
        return None
    _failed_attempt()
    session = current_session(request, current_app.extensions["katuna"].store(), token)
    if session is not None:
        g.katuna_session = session
        if request.method in guard.WRITE_METHODS and not (guard.same_origin(request) and csrf_matches(request, session)):
            return guard.refusal(request, 403, "csrf",
                                 "a write with the dashboard's session needs a same-origin request carrying the "
                                 "page's CSRF token (X-CSRF-Token)")
        return None
    if ui.is_page(path) and request.method == "GET":
        return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))
    return _unauthorized()


def _too_many_attempts():
    """The refusal of a request carrying a bearer token from a client past its failed attempts
    (:mod:`.attempts`): the token is not even compared. None where there is no token to refuse."""
    if bearer(request) is None:
        return None
    wait = refusal_wait(current_app.extensions[ATTEMPTS], request)
    return None if wait is None else _waiting(wait)


def _waiting(wait: int) -> Response:
    """``429 too_many_attempts`` with ``Retry-After``: the client failed too often of late."""
    response = guard.refusal(request, 429, "too_many_attempts", TOO_MANY.format(wait=wait), retryable=True)
    response.headers["Retry-After"] = str(wait)
    return response


TOO_MANY = ("too many wrong tokens from this client of late: no token it sends is looked at for {wait} s "
            "(Retry-After); check the token it sends (KATUNA_API_TOKEN)")


def _failed_attempt() -> None:
    """Count the request's bearer token, which the service does not take, against its client."""
    if bearer(request) is not None:
        current_app.extensions[ATTEMPTS].failed(client_of(request))


def _unauthorized(message: str = "send Authorization: Bearer <KATUNA_API_TOKEN>"):
    response = guard.refusal(request, 401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="katuna"'
    return response


def _too_large(limit: int) -> str:
    return f"the request body is too large: at most {limit} bytes (KATUNA_MAX_BODY) are accepted"


INCOMPLETE = "incomplete_body"


def _http_error_code(exc: HTTPException) -> str:
    """The ``error`` of an HTTP error werkzeug or Flask raised, one of :data:`ERROR_CODES`: its
    name in snake_case (``not_found``, ``internal_server_error``); a body the client stopped
    sending is ``incomplete_body``, as ``katuna serve``'s worker names it, and any other request
    werkzeug could not read ``malformed_request``; an error of no listed name ``http_error``."""
    if isinstance(exc, ClientDisconnected):
        return INCOMPLETE
    if isinstance(exc, BadRequest):
        return "malformed_request"
    name = (exc.name or "").lower().replace(" ", "_")
    return name if name in ERROR_CODES else "http_error"


def _http_message(exc: HTTPException) -> str:
    """What was refused and what is expected: a path that does not exist is named, and a method a
    path does not take is named with those it takes; werkzeug's own words otherwise."""
    if isinstance(exc, NotFound):
        where = "" if ui.is_page(request.path) else " (GET /openapi.json lists the service's paths)"
        return f"no such path: {request.path}{where}"
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        return f"{request.method} is not taken by {request.path}: it takes {', '.join(sorted(exc.valid_methods))}"
    return exc.description or exc.name


def _http_error(exc: HTTPException):
    """An HTTP error as JSON (the API's one shape); a dashboard page's as the dashboard's error
    page, whose links lead back. Either keeps the error's own headers, such as the methods a
    405 names in ``Allow``."""
    error = _http_error_code(exc)
    if isinstance(exc, RequestEntityTooLarge):
        return guard.refusal(request, 413, error, _too_large(current_app.extensions["katuna"].settings.max_body))
    status = exc.code or 500
    message = _http_message(exc)
    if ui.is_page(request.path) and request.method == "GET":
        response = Response(render_template("error.html", message=f"{exc.name}: {message}"), status,
                            mimetype="text/html")
    else:
        response = jsonify(error=error, message=message, retryable=status == 503 or error == INCOMPLETE)
        response.status_code = status
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value  # a 405's Allow (RFC 9110 section 15.5.6)
    return response
