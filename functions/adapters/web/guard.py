"""What a request must show before any route sees it: an allowed Host, a body within the limit,
a content type that no cross-site form or no-cors fetch can send, a same-origin Origin for
writes, and a caller the service knows.

A study is a command, so a write is code execution: a page on another site (or a host name
rebound to the loopback address) must not be able to make one. Every refusal first reads and
discards the request body up to a bound, as nginx's lingering close does, so the client sees the
answer instead of a broken pipe.
"""

from __future__ import annotations

import ipaddress
import time
from urllib.parse import urlsplit

from flask import Request, Response, jsonify

from functions.adapters.web.framing import serve_unchunked
from functions.core import content_modes

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
STUDY_TYPES = ("application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
"""The types a study is taken in: JSON, and YAML under each name clients send it by (RFC 9512's
``application/yaml``, and the older ``application/x-yaml``, ``text/yaml`` and ``text/x-yaml``).
None is one a cross-site form or a no-cors fetch may send: only ``text/plain``, form and
multipart bodies go without a CORS preflight, which katuna grants none."""
FORM_TYPES = ("application/x-www-form-urlencoded",)
BODY_LEFT = "katuna.body_left"
"""The WSGI environ's key by which ``katuna serve``'s worker says it drains a body over the limit
itself, as the connection closes (:mod:`.whole_body`)."""
DRAIN_LIMIT = 64 << 20
"""The most body bytes read and discarded before a refusal; a larger body is cut off."""
DRAIN_CHUNK = 64 * 1024
LINGER_READ_SECONDS = 2.0
"""How long draining waits for more of the body before giving up (nginx's lingering_timeout)."""
LINGER_SECONDS = 15.0
"""How long draining may take in all (nginx's lingering_time)."""


def host_name(host: str) -> str:
    """The name in a ``Host`` header, lowercased, without its port (``[::1]:80`` is ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_loopback(name: str) -> bool:
    """Whether ``name`` is a loopback name or address (``127.0.0.2``; never a name that only
    begins like one, ``127.example.org``, which resolves wherever its owner wants)."""
    host = host_name(name)
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``host`` names this service: a loopback name or address (any the service may
    listen on, ``127.0.0.2`` too: an address names no host a rebinding could point elsewhere), or
    one of ``allowed`` (where ``*.example.org`` stands for every subdomain of example.org)."""
    name = host_name(host)
    if not name or is_loopback(name):
        return bool(name)
    for pattern in (p.lower() for p in allowed):
        if name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


def named_host(request: Request) -> str:
    """The host ``request`` names (its ``Host``, as :func:`host_allowed` takes it), or "" where it
    names none to trust (:func:`host_naming_problem`), which no host check allows."""
    return "" if host_naming_problem(request) else request.host


def host_naming_problem(request: Request) -> str | None:
    """Why ``request`` names no host to check, or None. Without a ``Host`` header (HTTP/1.0 lets
    a client leave it out) werkzeug takes the address the server listens on, which every check
    allows; an absolute request target (``GET http://other.example/studies``) names the host
    that, by RFC 9112 section 3.2.2, replaces ``Host``, which the WSGI servers drop, serving the
    ``Host`` instead. So neither is served: a request is checked by a ``Host`` header that no
    target contradicts. The target is the one the server read (gunicorn's ``RAW_URI``, another
    server's ``REQUEST_URI``), or the path wsgiref passes on as it came."""
    host = request.environ.get("HTTP_HOST")
    if host is None:
        return "send a Host header naming this service: a request naming no host is not served"
    environ = request.environ
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO") or ""
    if target.startswith("/") or "://" not in target:
        return None
    authority = urlsplit(target).netloc
    if authority.lower() == host.strip().lower():
        return None
    return (f"the request target names {authority!r:.100} and the Host header {host!r:.100}: send the path alone, "
            "or a target naming the Host's own host")


def exposure_problem(allowed_hosts: tuple[str, ...], api_token: str | None, bind: str | None = None) -> str | None:
    """Why serving this way would let anyone reach the API unauthenticated, or None."""
    if api_token:
        return None
    if bind is not None and not is_loopback(bind):
        return (f"refusing to listen on {bind} without an API token: anyone who can reach it could run "
                "commands here. Set KATUNA_API_TOKEN (e.g. export KATUNA_API_TOKEN=$(openssl rand -hex 32)) "
                "or listen on 127.0.0.1")
    if allowed_hosts:
        return ("KATUNA_ALLOWED_HOSTS names hosts other than loopback, but no KATUNA_API_TOKEN is set: "
                "anyone who can reach the service could run commands. Set KATUNA_API_TOKEN")
    return None


def same_origin(request: Request) -> bool | None:
    """True when the browser says the request comes from this origin, False when it says
    otherwise, None when it says nothing (a script, not a browser).

    ``Origin`` decides where it names an origin. ``Origin: null`` names none: a browser sends it
    from a sandboxed frame, after a redirect from another site, and also from katuna's own page
    where the user's browser sends no referrer (``no-referrer``, which empties ``Origin`` on a
    POST as well); ``Sec-Fetch-Site``, which no referrer setting changes, then tells (a sandboxed
    frame or a redirect is ``cross-site`` there), and without it the request is refused.

    ``Origin`` is compared by its host and port alone, as behind a proxy that ends TLS the
    service cannot tell its own scheme; so an ``Origin`` naming this host is taken only where
    ``Sec-Fetch-Site``, which the browser computes with the scheme, says ``same-origin`` (or is
    absent): a page on ``http://`` of the host posting to its ``https://`` service (one a network
    attacker can serve) is cross-site there, and refused."""
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if origin is not None and origin != "null":
        return urlsplit(origin).netloc.lower() == request.host.lower() and site in (None, "same-origin")
    if site is not None:
        return site == "same-origin"
    return None if origin is None else False


def cross_site_read(request: Request) -> bool:
    """Whether a browser says this read is another site's page asking for what it embeds or
    fetches (an image, a script, a frame, a ``fetch``), not the user's own visit: such a request
    carries the user's own connection and cookies, and with no token set, any page the user
    opens could have the service build charts and exports for it, its answers unread. Reads from
    the service's own pages (``same-origin``), visits (``none``, or a navigation to a document)
    and clients that are no browser (no ``Sec-Fetch-Site``) are taken.

    A browser without Fetch Metadata (Safari before 16.4) sends no ``Sec-Fetch-Site``: a
    ``fetch`` it makes for another site's page still names that page's origin in ``Origin``
    (which a read of the service's own page, a visit or a script leaves out), and is refused by
    it (:func:`same_origin`); an image or script such a browser embeds names none, and is taken
    as a script's read is."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is None:
        return request.headers.get("Origin") is not None and same_origin(request) is False
    if site in ("same-origin", "none"):
        return False
    visit = request.headers.get("Sec-Fetch-Mode") == "navigate" and request.headers.get("Sec-Fetch-Dest") in (
        None, "document")
    return not visit


def content_type_problem(request: Request, kind: str) -> str | None:
    """Why a write's content type is refused, or None. ``kind`` is ``event``, ``form`` or ``api``.
    A body in a coding katuna does not decode (``Content-Encoding: gzip``, or a transfer coding
    besides ``chunked``) is refused by name: read as it is, it would be refused as text that is
    not UTF-8, or taken as plain where the header said otherwise."""
    coded = _codings_problem(request)
    if coded:
        return coded
    mimetype = request.mimetype
    if kind == "event":
        return _event_type_problem(request)
    accepted = FORM_TYPES if kind == "form" else STUDY_TYPES
    if mimetype in accepted or (not mimetype and not _has_body(request)):
        return None
    return f"send the body as one of {', '.join(accepted)}, not {mimetype or 'no content type'}"


def _event_type_problem(request: Request) -> str | None:
    """Why an event's content type is refused, or None. Its content mode is told by the
    ``Content-Type`` alone (:mod:`functions.core.content_modes`): batched mode, where each event's
    answer (a reply, a refusal, a retry) would not be its own, is not taken, nor is structured mode
    in a format other than JSON; binary mode needs ``ce-specversion`` (a body of any type without
    it is no CloudEvent)."""
    mode, mimetype = content_modes.content_mode(request.mimetype), request.mimetype
    if mode == "batched":
        return (f"batched mode ({mimetype}) is not taken: post each event on its own, in structured mode as "
                f"{content_modes.STRUCTURED_JSON} or in binary mode")
    if mode == "structured":
        return None if mimetype == content_modes.STRUCTURED_JSON else (
            f"structured mode in the event format of {mimetype} is not taken: katuna reads the JSON format, "
            f"{content_modes.STRUCTURED_JSON}, or binary mode")
    if "ce-specversion" in request.headers:
        return None
    return (f"send a CloudEvent: structured mode as {content_modes.STRUCTURED_JSON}, or binary mode with "
            f"ce-specversion, ce-type, ce-source and ce-id headers (got {mimetype or 'no content type'})")


def _codings_problem(request: Request) -> str | None:
    """Why the body's codings are refused, or None for a body sent as it is (or chunked)."""
    content = request.headers.get("Content-Encoding", "").strip().lower()
    if content not in ("", "identity"):
        return f"send the body as it is, with no Content-Encoding: katuna decodes none (got {content!r:.60})"
    transfer = [c.strip() for c in request.headers.get("Transfer-Encoding", "").lower().split(",") if c.strip()]
    if any(coding != "chunked" for coding in transfer):
        return ("send the body as it is, or chunked: katuna decodes no other transfer coding "
                f"(got {', '.join(transfer)!r:.60})")
    return None


def _has_body(request: Request) -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def buffer_chunked(environ: dict, limit: int) -> bool:
    """Read a chunked body (one without Content-Length) into memory, so that it is served like
    any other; False, with the body left unread, once it passes ``limit`` bytes."""
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return True
    stream, body = environ["wsgi.input"], bytearray()
    while len(body) <= limit:
        chunk = stream.read(min(DRAIN_CHUNK, limit + 1 - len(body)))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        return False
    serve_unchunked(environ, bytes(body))
    return True


def drain(request: Request) -> None:
    """Read and discard what is left of the body (up to ``DRAIN_LIMIT`` bytes, while it keeps
    coming), so that closing the connection after the answer does not reset it under a client
    still sending. Behind ``katuna serve``'s worker, a body over the limit is left to the
    connection's close, which the worker's poller drains within the same bounds, no thread
    waiting on a client that trickles it (:mod:`.whole_body`)."""
    if not _has_body(request) or _continue_withheld(request) or request.environ.get(BODY_LEFT):
        return
    stream = request.environ["wsgi.input"]  # every WSGI server provides it
    sock = request.environ.get("gunicorn.socket")
    previous = sock.gettimeout() if sock is not None else None
    remaining, deadline = DRAIN_LIMIT, time.monotonic() + LINGER_SECONDS
    try:
        if sock is not None:
            sock.settimeout(LINGER_READ_SECONDS)
        while remaining > 0 and time.monotonic() < deadline:
            chunk = stream.read(min(DRAIN_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
    except (OSError, ValueError):
        return
    finally:
        if sock is not None:
            sock.settimeout(previous)


def _continue_withheld(request: Request) -> bool:
    """Whether the client waits for a ``100 Continue`` it will not get, and so sends no body to
    drain: ``katuna serve``'s worker sends none to a request whose ``Content-Length`` is over the
    limit (:meth:`.worker.Worker.handle_request`)."""
    limit = request.max_content_length
    return (request.headers.get("Expect", "").strip().lower() == "100-continue" and limit is not None
            and (request.content_length or 0) > limit)


def refusal(request: Request, status: int, error: str, message: str, retryable: bool = False) -> Response:
    """A JSON refusal, sent after the body was drained; the connection closes after it (``katuna
    serve``'s worker ends it on ``Connection: close``, which gunicorn would drop:
    :func:`.whole_body._closing`). Nothing the guard refuses changes by trying again (``retryable``
    false) but a client's wait out its failed attempts (:mod:`.attempts`)."""
    drain(request)
    response = jsonify(error=error, message=message, retryable=retryable)
    response.status_code = status
    response.headers["Connection"] = "close"
    return response
