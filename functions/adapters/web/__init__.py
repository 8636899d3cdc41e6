"""The HTTP service: the study API, the CloudEvent functions, health, metrics, and the OpenAPI document.

``create_app`` is a Flask app factory over an :class:`functions.core.application.Application`,
which the composition root (:mod:`functions.runtime`) builds and hands in. It puts the request
checks (:mod:`.gate`) in front of every route, and the headers every answer carries after it;
HTTP errors are answered by :mod:`.http_errors`, katuna's own by :mod:`.errors`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from flask import Flask, Response, current_app, redirect, request, url_for
from werkzeug.exceptions import HTTPException

from functions.adapters.web import api, compression, functions_ce, ui
from functions.adapters.web.attempts import ATTEMPTS, Attempts
from functions.adapters.web.errors import error_response
from functions.adapters.web.gate import METRICS_PATH, check_request, check_takes
from functions.adapters.web.http_errors import http_error
from functions.adapters.web.json_provider import StrictJSONProvider
from functions.core.application import Application
from functions.core.errors import KatunaError

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
    app.url_map.converters["study"] = api.StudyName
    app.register_blueprint(api.blueprint)
    app.register_blueprint(functions_ce.blueprint)
    app.register_blueprint(ui.blueprint)
    app.add_url_rule(METRICS_PATH, "metrics", _metrics)
    app.add_url_rule("/", "home", _home, methods=["GET"])
    app.before_request(check_request)
    app.before_request(check_takes)
    app.after_request(_safety_headers)
    app.after_request(_untyped_when_empty)
    app.after_request(_compressed)
    app.register_error_handler(KatunaError, error_response)
    app.register_error_handler(HTTPException, http_error)
    runtime.start()
    return app


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
