"""The refusals of the checks in front of the routes, added to each operation's answers."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from functions.adapters.web.openapi._parts import TOO_MANY_ATTEMPTS, error

_OPEN = ("/healthz", "/readyz")
"""Paths no check of the app stands in front of (``functions.adapters.web.gate.OPEN_PATHS``): only
``katuna serve``'s worker's (:func:`_server_refusals`)."""

_EVENT_PATHS = ("/", "/functions/{function}", "/dead-letters")
"""Paths whose ``POST`` takes events (``functions.adapters.web.functions_ce.is_event_path``)."""

_PAGES = ("/",)
"""Paths a browser opens: a caller without the token is sent to the login form, not refused
(``functions.adapters.web.ui.is_page``)."""


def with_refusals(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with, on each operation, the refusals of the checks in front of it (``katuna
    serve``'s worker's, then the app's in the order they run: ``functions.adapters.web.gate.check_request``)
    and the database's ``503``."""
    paths = deepcopy(paths)
    for path, item in paths.items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, description in _refusals(path, method):
                _add(operation["responses"], status, description)
    return paths


def _refusals(path: str, method: str) -> list[tuple[str, str]]:
    """(status, description) of each refusal ``method path`` may get before its route runs, or
    in it, from a fault of katuna's own; ``/metrics`` has checks of its own after the local
    user's (``functions.adapters.web.callers.check_scraper``)."""
    local_user, *server = _server_refusals()
    cross_site = ("403", "a read another site's page asks for: an image, script, frame or fetch (cross_origin)")
    fault = ("500", "a fault of katuna's own, logged with its traceback (internal_server_error)")
    if path in _OPEN:
        return [local_user, *server]
    if path == "/metrics":
        return [local_user, *server, cross_site, fault]
    event = method == "post" and path in _EVENT_PATHS
    found = [local_user, ("400", "a Host that is not served (host_not_allowed)"), *server,
             ("413", "a body over KATUNA_MAX_BODY (request_entity_too_large)")]
    if not (path in _PAGES and method == "get"):
        found.append(("400", "a query parameter the operation does not take, or a body where it takes none "
                             "(malformed_request)"))
    if method == "get":
        found.append(cross_site)
    else:
        found += [("415", "a body of another content type (unsupported_media_type)"),
                  ("403", "a write from another site's Origin (cross_origin)")]
    if event:
        found += [("401", "neither the API token nor an accepted OIDC delivery token (unauthorized)"),
                  ("429", TOO_MANY_ATTEMPTS),
                  ("403", "an OIDC token of a sender not in KATUNA_OIDC_SUBJECTS (sender_not_allowed)")]
    elif path not in _PAGES:
        found += [("401", "missing or wrong bearer token, when KATUNA_API_TOKEN is set (unauthorized)"),
                  ("429", TOO_MANY_ATTEMPTS)]
        if method != "get":
            found.append(("403", "a dashboard session's write without its CSRF token (csrf)"))
    if (path == "/openapi.json" or path.startswith("/studies")) and method != "delete":
        found.append(("406", "an Accept that takes no type the operation answers with (not_acceptable, naming "
                             "it): application/json, or text/plain for a trial's log"))
    found.append(fault)
    if path != "/openapi.json":
        found.append(("503", "the database (temporary_error, storage_unavailable, storage_full) or the trial-log "
                             "folder (logs_unavailable) cannot be used now; retry after Retry-After seconds"))
    return found


def _server_refusals() -> list[tuple[str, str]]:
    """(status, description) of each refusal of ``katuna serve``'s worker
    (``functions.adapters.web.worker``), on every path before the app sees the request: another
    account's connection, a body cut short or late, and what gunicorn's parser does not take.
    The app checks the local user too on the paths it guards, for servers that do not."""
    return [("403", "without KATUNA_API_TOKEN, a caller of another account of the machine, or a request a "
                    "proxy says it passed on (local_user_not_allowed)"),
            ("400", "a body the client stopped sending before it was whole (incomplete_body)"),
            ("408", "a body not sent within KATUNA_CLIENT_TIMEOUT (request_timeout, katuna serve)"),
            ("417", "an Expect header other than 100-continue (http_error, katuna serve)"),
            ("414", "a request line over 4,094 bytes (uri_too_long, katuna serve)"),
            ("431", "over 100 header fields, or one over 8,190 bytes (request_header_fields_too_large, "
                    "katuna serve)")]


def _add(responses: dict[str, Any], status: str, description: str) -> None:
    """Document ``description`` as an ``Error`` answer of ``status``, beside what it has."""
    known = responses.get(status)
    if known is None:
        responses[status] = error(description)
    elif description not in known["description"]:
        responses[status] = error(f"{known['description']}; {description}")

