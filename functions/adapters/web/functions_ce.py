"""The CloudEvent functions: each handler reachable over HTTP, as Knative Triggers address them.

``POST /functions/<function>`` runs one function; ``POST /`` runs every function subscribed to
the event's type. Emitted events go, by ``KATUNA_EVENTS``, to the service's queue (``queue``),
or back to the broker (``reply``): as the response when there is exactly one, otherwise each
sent to ``K_SINK``.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request

from functions.adapters import cloudevents_http
from functions.adapters.web.errors import error_response
from functions.core.application import Application
from functions.core.errors import KatunaError, StudyNotFound
from functions.core.events import Event

blueprint = Blueprint("functions", __name__)
log = logging.getLogger("katuna.functions")


def is_event_path(path: str) -> bool:
    """Paths the broker posts to: they take the token, or Knative's OIDC delivery token."""
    return path == "/" or path.startswith("/functions/") or (path == "/dead-letters" and request.method == "POST")


@blueprint.post("/")
def any_function():
    return _handle(None)


@blueprint.post("/functions/<function>")
def one_function(function: str):
    return _handle(function)


def _handle(function: str | None):
    """Run the event; an event for a study that does not exist (or no longer does) is done, and
    answered as one that changed nothing, so the answer never tells whether a study name exists."""
    runtime: Application = current_app.extensions["katuna"]
    try:
        event = cloudevents_http.from_http(dict(request.headers), request.get_data())
        dispatcher = runtime.dispatcher()
        try:
            emitted = dispatcher.deliver(event) if function is None else dispatcher.deliver_to(function, event)
        except StudyNotFound as exc:
            log.info("dropped %s (%s): %s", event.type, event.id, exc)
            emitted = []
        return _emit(runtime, emitted)
    except KatunaError as exc:
        return error_response(exc, resource=False)


@blueprint.post("/dead-letters")
def dead_letter():
    """Where the broker sends an event whose delivery failed for good: kept (the newest
    ``KATUNA_MAX_DEAD_LETTERS``, each within ``KATUNA_MAX_BODY``), logged, and its study failed
    with the reason."""
    runtime: Application = current_app.extensions["katuna"]
    try:
        event, reason = cloudevents_http.dead_letter(dict(request.headers), request.get_data())
        runtime.fail_dead_letter(event, reason)
    except KatunaError as exc:
        return error_response(exc, resource=False)
    runtime.store().add_dead_letter(event, reason, keep=runtime.settings.max_dead_letters)
    log.error("dead letter %s (%s): %s", event.type, event.id, reason)
    return jsonify(recorded=event.id), 202


@blueprint.get("/dead-letters")
def list_dead_letters():
    return jsonify(current_app.extensions["katuna"].store().dead_letters())


def _emit(runtime: Application, emitted: list[Event]):
    if runtime.settings.events == "reply" and len(emitted) == 1:
        headers, body = cloudevents_http.to_http(emitted[0])
        return Response(body, status=200, headers=headers)
    for event in emitted:
        runtime.publish(event)
    return jsonify(emitted=[{"id": e.id, "type": e.type} for e in emitted]), 202
