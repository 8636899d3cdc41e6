"""The service's Host, Origin and framing checks (:mod:`.guard`) around a WSGI app that has none
of its own: Optuna's dashboard, served by ``katuna optuna-dashboard`` on loopback.

Listening on loopback keeps other machines out, not web pages: a host name an attacker rebinds
to 127.0.0.1 makes their page same-origin with whatever answers there. So a request naming a
Host other than a loopback name is refused (400), a write a browser says comes from another
site is refused (403), and so is a read another site's page asks for (an image, script, frame
or fetch: :func:`guard.cross_site_read`), which the page could make again and again with the
user's own connection, each one having Optuna's dashboard compute parameter importances or
build a chart while the user's own page waits behind it. No page of another site may frame the
dashboard. A request a proxy says it passed on (:func:`.forwarded.proxy_header`) is refused
(403): a proxy of this user's own connects as this user whoever its client is, and the dashboard
has no sign-in. Requests the caller names are refused too (403, with the reason as Optuna's
dashboard gives its own).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from flask import Request

from functions.adapters.web import SAFETY_HEADERS, forwarded, guard

PROXIED = ("optuna-dashboard has no sign-in, so katuna optuna-dashboard serves only its own user on this machine, "
           "and this request came through a proxy (its {header} header says so), whose clients are whoever can reach "
           "the proxy: reach the dashboard through a tunnel instead (ssh -L 8081:127.0.0.1:8081 HOST)")


def _none(method: str, path: str) -> str | None:
    return None


def guarded(app: WSGIApplication, refused: Callable[[str, str], str | None] = _none,
            max_body: int = 1 << 20) -> WSGIApplication:
    """``app`` answering only requests that name a loopback Host and that no proxy passed on,
    and reads and writes only from its own pages, visits or scripts, with bodies of at most
    ``max_body`` bytes (``KATUNA_MAX_BODY``: a note of 50 MB was taken, and every later load of
    Optuna's storage replayed it); every answer forbids framing. ``refused(method, path)`` says why a request is refused before
    ``app`` sees it (403, ``{"reason": ...}``), or None."""

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if not guard.host_allowed(guard.named_host(request), ()):
            return _refuse(start_response, "400 Bad Request", "host_not_allowed", guard.host_naming_problem(request)
                           or f"Host {request.host!r} is not served here: open the dashboard at 127.0.0.1 or localhost")
        if (header := forwarded.proxy_header(request)) is not None:
            return _refuse(start_response, "403 Forbidden", "local_user_not_allowed", PROXIED.format(header=header))
        chunked = request.content_length is None and "chunked" in (request.headers.get("Transfer-Encoding") or "").lower()
        if chunked or (request.content_length or 0) > max_body:
            return _refuse(start_response, "413 Request Entity Too Large", "request_entity_too_large",
                           f"expected a body of at most {max_body} bytes (KATUNA_MAX_BODY), with its Content-Length")
        if request.method in guard.WRITE_METHODS and guard.same_origin(request) is False:
            return _refuse(start_response, "403 Forbidden", "cross_origin", "writes from another site are refused")
        if request.method not in guard.WRITE_METHODS and guard.cross_site_read(request):
            return _refuse(start_response, "403 Forbidden", "cross_origin",
                           "reads another site's page asks for are refused: open the dashboard at its own address")
        reason = refused(request.method, request.path)
        if reason is not None:
            return answer(start_response, "403 Forbidden", {"reason": reason})

        def with_safety_headers(status: str, headers: list[tuple[str, str]], exc_info=None):
            named = {name.lower() for name, _ in headers}
            return start_response(status, [*headers, *((name, value) for name, value in SAFETY_HEADERS.items()
                                                       if name.lower() not in named)], exc_info)

        return app(environ, with_safety_headers)

    return serve


def _refuse(start_response: StartResponse, status: str, error: str, message: str) -> list[bytes]:
    return answer(start_response, status, {"error": error, "message": message, "retryable": False})


def answer(start_response: StartResponse, status: str, body_json: dict[str, object]) -> list[bytes]:
    """A JSON answer of its own, which no page of another site may frame."""
    body = json.dumps(body_json).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                            *SAFETY_HEADERS.items()])
    return [body]
