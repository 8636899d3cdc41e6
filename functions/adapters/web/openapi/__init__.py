"""The OpenAPI 3.1 document of the HTTP service, served at ``/openapi.json``.

Each operation lists every status the service answers it with: its own, and those of the checks
every request passes first (:func:`._refusals.with_refusals`: the ``Host``, the local user, the body's size
and type, the origin of a write, the caller), and ``503`` where the database is read. Every error
body is an ``Error``, whose ``error`` is one of :data:`ERROR_CODES`. An object schema that names
its fields takes no other (:func:`._parts.closed`). The health probes and ``GET /`` answer every
caller (``security: []``); the event paths take a bearer token alone, never a dashboard session;
a ``401``, ``429`` or ``503`` names the header it comes with (:data:`._parts.ANSWER_HEADERS`).
"""

from __future__ import annotations

from typing import Any

from functions.adapters.web.openapi._codes import ERROR_CODES
from functions.adapters.web.openapi._parts import closed, with_answer_headers
from functions.adapters.web.openapi._refusals import with_refusals
from functions.adapters.web.openapi._schemas import SCHEMAS
from functions.adapters.web.openapi._service import service_paths
from functions.adapters.web.openapi._studies import study_paths

__all__ = ["ERROR_CODES", "document"]


def document() -> dict[str, Any]:
    """The whole document."""
    paths = study_paths()
    paths.update(service_paths())
    paths = closed(with_answer_headers(with_refusals(paths)))
    return {"openapi": "3.1.0",
            "info": {"title": "katuna", "version": "1", "description": "Hyperparameter tuning as event-driven functions."},
            "components": {"schemas": closed(SCHEMAS),
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                               "dashboardSession": {"type": "apiKey", "in": "cookie",
                                                                    "name": "katuna_session"}}},
            "security": [{"bearer": []}, {"dashboardSession": []}],
            "paths": paths}
