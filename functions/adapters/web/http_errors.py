"""The HTTP errors werkzeug or Flask raise, answered as every error of the service is: JSON with
``error``, ``message`` and ``retryable`` (:mod:`.errors`), or for a dashboard page its error
page. The app factory (:mod:`functions.adapters.web`) registers :func:`http_error`.
"""

from __future__ import annotations

from flask import current_app, jsonify, request
from werkzeug.exceptions import (
    BadRequest,
    ClientDisconnected,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)

from functions.adapters.web import guard, ui
from functions.adapters.web.gate import too_large
from functions.adapters.web.openapi import ERROR_CODES

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


def http_error(exc: HTTPException):
    """An HTTP error as JSON (the API's one shape); a dashboard page's as the dashboard's error
    page, whose links lead back. Either keeps the error's own headers, such as the methods a
    405 names in ``Allow``."""
    error = _http_error_code(exc)
    if isinstance(exc, RequestEntityTooLarge):
        return guard.refusal(request, 413, error, too_large(current_app.extensions["katuna"].settings.max_body))
    status = exc.code or 500
    message = _http_message(exc)
    if ui.is_page(request.path) and request.method == "GET":
        response = ui.error_page(message, status)
    else:
        response = jsonify(error=error, message=message, retryable=status == 503 or error == INCOMPLETE)
        response.status_code = status
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value  # a 405's Allow (RFC 9110 section 15.5.6)
    return response
