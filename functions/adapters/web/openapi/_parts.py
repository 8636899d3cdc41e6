"""Building blocks of the document: answers, the page of a listing and its parameters."""

from __future__ import annotations

from typing import Any

TOO_MANY_ATTEMPTS = ("a bearer token from a client that sent 10 wrong ones within 60 s: no token it sends is "
                     "looked at until Retry-After seconds have passed (too_many_attempts)")
"""The refusal of a client past its failed attempts (``functions.adapters.web.attempts``)."""


def json_body(schema_ref: str, description: str) -> dict[str, Any]:
    """An answer whose JSON body is the schema ``schema_ref``."""
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


def error(description: str) -> dict[str, Any]:
    """A refusal: an ``Error`` body."""
    return json_body("Error", description)


def located(response: dict[str, Any], what: str) -> dict[str, Any]:
    """``response`` with its ``Location`` header, the path of ``what``."""
    return {**response, "headers": {"Location": {"description": what, "schema": {"type": "string"}}}}


IF_NONE_MATCH = {"name": "If-None-Match", "in": "header",
                 "description": "the ETag of an earlier answer: 304, with no body, while it is still the answer",
                 "schema": {"type": "string"}}
"""The condition of a conditional read (``functions.adapters.web.api._versions``)."""


def tagged(response: dict[str, Any], what: str) -> dict[str, Any]:
    """``response`` with its weak ``ETag``, the version of ``what``."""
    return {**response, "headers": {**response.get("headers", {}), "ETag": {
        "description": f"weak: the version of {what}, for If-None-Match", "schema": {"type": "string"}}}}


def not_modified(what: str) -> dict[str, Any]:
    """The answer to an ``If-None-Match`` that names the version of ``what`` as it is."""
    return tagged({"description": f"{what} unchanged since the ETag If-None-Match names: no body"}, what)


def status_body(*values: str) -> dict[str, Any]:
    """The body of a health probe's answer: its ``status``, one of ``values``."""
    return {"content": {"application/json": {"schema": {"type": "object", "required": ["status"], "properties": {
        "status": {"enum": list(values)}}}}}}


def limit(default: int, maximum: int, what: str) -> dict[str, Any]:
    """A listing's ``limit`` parameter: how many ``what`` a page holds."""
    return {"name": "limit", "in": "query", "description": f"{what} in the page (it also ends at 8 MiB)",
            "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}}


def cursor(name: str, description: str) -> dict[str, Any]:
    """A listing's parameter ``name`` naming where its page starts."""
    return {"name": name, "in": "query", "description": description,
            "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}


def page(item: str, what: str) -> dict[str, Any]:
    """A page of a listing (:mod:`functions.adapters.web.paging`)."""
    return {"description": f"a page of {what}", "headers": {"Link": {
                "description": "the next page's path, as <path>; rel=\"next\" (RFC 8288); absent on the last page",
                "schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {"type": "array",
                                                        "items": {"$ref": f"#/components/schemas/{item}"}}}}}



ANSWER_HEADERS = {
    "401": {"WWW-Authenticate": {"description": 'the scheme the service takes: Bearer realm="katuna"',
                                 "schema": {"type": "string"}}},
    "429": {"Retry-After": {"description": "seconds until a token from this client is looked at again",
                            "schema": {"type": "integer", "minimum": 0}}},
    "503": {"Retry-After": {"description": "seconds to wait before sending the request again",
                            "schema": {"type": "integer", "minimum": 0}}},
}
"""The headers every answer of a status carries, whoever answers: the challenge of a ``401``
(:func:`functions.adapters.web.callers._unauthorized`), the wait of a ``429`` and of a ``503``
(:func:`functions.adapters.web.errors.error_response`, ``/readyz``)."""


def with_answer_headers(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with each answer of a status in :data:`ANSWER_HEADERS` naming its headers, so a
    client generated from the document reads the wait it is told to keep."""
    for item in paths.values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if status in ANSWER_HEADERS:
                    response["headers"] = {**response.get("headers", {}), **ANSWER_HEADERS[status]}
    return paths


def closed(node: Any) -> Any:
    """``node`` with every object schema that names its properties taking no other: the service
    sends no field its document leaves out, and a client may rely on that
    (``tests/test_openapi_conformance.py`` checks each answer so)."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: closed(value) for key, value in node.items()}
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    return node
