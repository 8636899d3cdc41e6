"""Telling a Kubernetes API server's answer from any other web server's, before the client reads it.

An address that is not the API's (``KATUNA_K8S_API`` set to an ordinary web server, a proxy
answering its sign-in page) answers a page where the API answers JSON: the client would make
of it a string where a model is expected, or fail deep in its models, and a study would be
refused as invalid, or failed, for the service's configuration. Such an answer is refused here,
naming the address, where it was configured and what came (status and content type), as a
temporary error (:class:`NotKubernetesAnswer`): as with credentials not taken, nothing in the
request is to blame, and the calls go on once the operator points katuna at the API.
"""

from __future__ import annotations

import re
from typing import Any

from urllib3.exceptions import HTTPError

JSON = re.compile(r"^application/(json|[\w!#$&.+\-^_]+\+json)\s*(;|$)", re.IGNORECASE)
"""The content types the client reads as JSON (its own test, ``ApiClient.deserialize``)."""
HTML = re.compile(r"^\s*(text/html|application/xhtml\+xml)\s*(;|$)", re.IGNORECASE)
"""A web page's content types, which no Kubernetes API server answers with, whatever the status."""
_JSON_START = re.compile(rb"[ \t\r\n]*[{\[]")
"""The start of a JSON object or list, after JSON's own whitespace."""
NOT_JSON = (None, "str", "bytearray", "bytes", "file")
"""The client's response types that are no JSON object: a pod's log (``text/plain``), none."""


class NotKubernetesAnswer(HTTPError):
    """An answer no Kubernetes API server gives (a web page, a body that is not JSON where an
    object was asked for): an ``HTTPError``, as an API that cannot be reached raises, so each
    call's translation makes it temporary (:func:`functions.adapters.kubernetes_client.translate`)."""


def check_answer(response: Any, response_type: str | None, source: str) -> None:
    """Raise :class:`NotKubernetesAnswer` for ``response`` (the client's ``RESTResponse``, read)
    when it is not a Kubernetes API server's: of a web page's content type, or, for a call that
    expects a JSON object (``response_type``), of a 2xx answer that is not JSON. ``source`` names
    the address and where it was configured."""
    content_type = response.headers.get("content-type")
    if HTML.match(content_type or ""):
        raise NotKubernetesAnswer(_refusal(response, content_type, source))
    if response_type in NOT_JSON or not 200 <= response.status <= 299:
        return
    if not JSON.match(content_type or "") or not _json(response.data):
        raise NotKubernetesAnswer(_refusal(response, content_type, source))


def _json(body: bytes | None) -> bool:
    """Whether ``body`` begins as a JSON object or list does, which the client then reads whole
    (read here too, every answer of the API, thousands of objects a page, would be read twice)."""
    return _JSON_START.match(body or b"") is not None


def _refusal(response: Any, content_type: str | None, source: str) -> str:
    """What was answered, by whom, and what to do about it."""
    answered = f"{response.status} {response.reason or ''}".strip()
    kind = f"{content_type} content" if content_type else "content of no type"
    return (f"{source} answered {answered} with {kind}, not as a Kubernetes API server answers (JSON): it is "
            "not the API server or a proxy to it (an ordinary web server, or a proxy's sign-in page); point it "
            "at the API, such as `kubectl proxy`'s address; tried again later")
