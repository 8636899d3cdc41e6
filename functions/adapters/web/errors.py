"""katuna's errors as HTTP answers: permanent ones 4xx, temporary ones 503 with Retry-After."""

from __future__ import annotations

from flask import jsonify

from functions.core.errors import (
    FollowsResource,
    ForgedEvent,
    InvalidStudy,
    KatunaError,
    MalformedRequest,
    StudyConflict,
    StudyNotFound,
    TemporaryError,
    UnparseableStudy,
)

RETRY_AFTER_SECONDS = 2


def status_of(exc: KatunaError, resource: bool = True) -> int:
    """The status for ``exc``; ``resource=False`` (event functions) never answers 404 or 409,
    which Knative would retry."""
    if isinstance(exc, TemporaryError):
        return 503
    if isinstance(exc, (UnparseableStudy, MalformedRequest)):
        return 400
    if isinstance(exc, ForgedEvent):
        return 403
    if resource and isinstance(exc, StudyNotFound):
        return 404
    if resource and isinstance(exc, (StudyConflict, FollowsResource)):
        return 409
    return 422


def error_response(exc: KatunaError, resource: bool = True):
    body = {"error": type(exc).__name__, "message": str(exc), "retryable": exc.retryable}
    if isinstance(exc, InvalidStudy):
        body["message"] = "invalid study"
        body["problems"] = [{"path": p.path, "message": p.message} for p in exc.problems]
    if isinstance(exc, StudyConflict):
        body["changed"] = list(exc.changed)
    response = jsonify(body)
    response.status_code = status_of(exc, resource)
    if exc.retryable:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
