"""The CloudEvent functions: each handler reachable over HTTP, as Knative Triggers address them.

``POST /functions/<function>`` runs one function; ``POST /`` runs every function subscribed to
the event's type. Emitted events go, by ``KATUNA_EVENTS``, to the service's queue (``queue``),
or back to the broker (``reply``): as the response when there is exactly one, otherwise each
sent to ``K_SINK``.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from functions.adapters import cloudevents_http
from functions.adapters.web.errors import error_response
from functions.core.errors import KatunaError
from functions.core.events import Event
from functions.runtime import Runtime

blueprint = Blueprint("functions", __name__)


def is_event_path(path: str) -> bool:
    return path == "/" or path.startswith("/functions/")


@blueprint.post("/")
def any_function():
    return _handle(None)


@blueprint.post("/functions/<function>")
def one_function(function: str):
    return _handle(function)


def _handle(function: str | None):
    runtime: Runtime = current_app.extensions["katuna"]
    try:
        event = cloudevents_http.from_http(request.headers, request.get_data())
        dispatcher = runtime.dispatcher()
        emitted = dispatcher.deliver(event) if function is None else dispatcher.deliver_to(function, event)
        return _emit(runtime, emitted)
    except KatunaError as exc:
        return error_response(exc, resource=False)


def _emit(runtime: Runtime, emitted: list[Event]):
    if runtime.settings.events == "reply" and len(emitted) == 1:
        headers, body = cloudevents_http.to_http(emitted[0])
        return Response(body, status=200, headers=headers)
    for event in emitted:
        runtime.publish(event)
    return jsonify(emitted=[{"id": e.id, "type": e.type} for e in emitted]), 202
