"""The service's own operations: the health probes and the OpenAPI document."""

from __future__ import annotations

from flask import g, jsonify

from functions.adapters.web.api._blueprint import blueprint, runtime
from functions.adapters.web.errors import RETRY_AFTER_SECONDS
from functions.adapters.web.openapi import document


@blueprint.get("/healthz")
def healthz():
    return jsonify(status="ok")


READY_PATH = "/readyz"
TOLD_WHY = "katuna_told_why"
"""The key of Flask's ``g`` where the guard leaves the question whether ``/readyz`` may tell its
caller why the service is not ready (:func:`functions.adapters.web.callers.may_be_told_why`): asked only
on a ``503``, so a ready service's probes pay for no peer lookup or token comparison."""
UNTOLD = "not ready: the service's log says why, as this answer does to a caller who may read the studies"
"""``/readyz``'s reason to any other caller: the status alone."""


@blueprint.get(READY_PATH)
def readyz():
    """Ready, or ``503 not_ready`` with ``Retry-After`` as every ``503`` has it, saying why to a
    caller who may read the studies (:data:`TOLD_WHY`), and only that it is not to any other."""
    reason = runtime().not_ready()
    if reason:
        told_why = g.get(TOLD_WHY)
        message = reason if told_why is not None and told_why() else UNTOLD
        return (jsonify(status="not ready", error="not_ready", message=message, retryable=True), 503,
                {"Retry-After": str(RETRY_AFTER_SECONDS)})
    return jsonify(status="ready")


@blueprint.get("/openapi.json")
def openapi():
    return jsonify(document())
