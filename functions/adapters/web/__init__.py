"""The HTTP service: the study API, the CloudEvent functions, health, and the OpenAPI document.

``create_app`` is a Flask app factory over a :class:`functions.runtime.Runtime`;
``from_environment`` builds both from ``KATUNA_*`` settings, for gunicorn in a container.
"""

from __future__ import annotations

from flask import Flask, current_app, jsonify, redirect, request, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from functions.adapters.web import api, functions_ce, ui
from functions.adapters.web.auth import authorized
from functions.adapters.web.errors import error_response
from functions.core.errors import KatunaError
from functions.runtime import Runtime
from functions.settings import Settings

OPEN_PATHS = ("/healthz", "/readyz")


def create_app(runtime: Runtime) -> Flask:
    """The WSGI application over ``runtime`` (whose broker thread it starts)."""
    app = Flask("katuna")
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body
    app.extensions["katuna"] = runtime
    app.register_blueprint(api.blueprint)
    app.register_blueprint(functions_ce.blueprint)
    app.register_blueprint(ui.blueprint)
    app.before_request(_authorize)
    app.register_error_handler(KatunaError, error_response)
    app.register_error_handler(HTTPException, _http_error)
    runtime.start()
    return app


def from_environment() -> Flask:
    """The application configured from the environment (gunicorn's entry point in a container)."""
    return create_app(Runtime(Settings.from_env()))


def _authorize():
    """With ``KATUNA_API_TOKEN`` set, the API needs ``Authorization: Bearer <token>`` (or the
    dashboard's session cookie); dashboard pages send a browser without either to the login form.

    Health checks and the CloudEvent functions stay open: probes and the Knative broker carry
    no token (deploy the functions cluster-local).
    """
    token = current_app.extensions["katuna"].settings.api_token
    path = request.path
    if not token or path in OPEN_PATHS or functions_ce.is_event_path(path) or ui.is_open_path(path):
        return None
    if authorized(request, token):
        return None
    if ui.is_page(path):
        return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))
    response = jsonify(error="unauthorized", message="send Authorization: Bearer <KATUNA_API_TOKEN>")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="katuna"'
    return response


def _http_error(exc: HTTPException):
    message = exc.description
    if isinstance(exc, RequestEntityTooLarge):
        limit = current_app.extensions["katuna"].settings.max_body
        message = f"the request body is too large: at most {limit} bytes (KATUNA_MAX_BODY) are accepted"
    response = jsonify(error=(exc.name or "error").lower().replace(" ", "_"), message=message)
    response.status_code = exc.code or 500
    return response
