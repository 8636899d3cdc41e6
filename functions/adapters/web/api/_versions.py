"""Conditional reads (RFC 9110 section 13): a study's view and its trials' listings carry a
weak ``ETag``, the store's version of what they show (:meth:`~functions.core.application.
ServiceStore.study_version`), and a request whose ``If-None-Match`` names it is answered ``304``
with no body, from that version alone: a client that polls a study reads nothing more until
it changes. Weak, as a body gzipped or not is the same answer, and as ``If-None-Match`` compares."""

from __future__ import annotations

from flask import Response, request


def unchanged(version: str | None) -> Response | None:
    """``304 Not Modified`` naming ``version`` when the request's ``If-None-Match`` names it (or
    is ``*``), with the ``Vary`` its ``200`` would have; None otherwise, or without a version."""
    if version is None or not request.if_none_match.contains_weak(version):
        return None
    response = Response(status=304)
    response.headers.pop("Content-Type", None)
    response.set_etag(version, weak=True)
    response.vary.add("Accept-Encoding")
    return response


def tagged(response: Response, version: str | None) -> Response:
    """``response`` with the weak ``ETag`` of ``version`` (read before its body was), if any."""
    if version is not None:
        response.set_etag(version, weak=True)
    return response
