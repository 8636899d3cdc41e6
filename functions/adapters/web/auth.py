"""Who may use the service when ``KATUNA_API_TOKEN`` is set.

Scripts send ``Authorization: Bearer <token>``. The dashboard's login form trades the token for
a session: a random id in an HttpOnly, SameSite=Strict cookie (``Secure`` and ``__Host-`` prefixed
where the browser is on HTTPS: :func:`on_https`), kept in the database so every worker knows it, bound to the Host (with port) it was issued for,
expiring after ``KATUNA_SESSION_TTL`` and ended by logging out. Each session has its own CSRF
token, which the dashboard's forms and fetches send with every write.

A session is bound to the token it was opened with: the database keeps an HMAC of the session id
keyed with the token (neither the token nor anything that tells it without the id), and a
session whose mark does not match the current token is no session. Changing
``KATUNA_API_TOKEN`` (a leaked token) so ends every session opened with the old one at once, on
every worker and across restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from flask import Request
from werkzeug.wrappers import Response

from functions.core.application import ServiceStore

COOKIE = "katuna_session"
SECURE_COOKIE = "__Host-katuna_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def bearer(request: Request) -> str | None:
    """The bearer credential the request carries, if any."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def has_token(request: Request, token: str) -> bool:
    given = bearer(request)
    return given is not None and token_matches(given, token)


def on_https(request: Request) -> bool:
    """Whether the browser that posts the login form is on HTTPS: the request came over TLS as
    the server sees it, or the page's ``Origin`` says ``https``. A proxy that ends TLS passes the
    request on as plain HTTP, and the server sees HTTPS only where the proxy says so in
    ``X-Forwarded-Proto`` and gunicorn trusts it (from loopback alone, by default): nginx does
    not say so unless told, and a proxy on another host is not trusted. Its session cookie
    would then go without ``Secure``, and the browser would send it over plain HTTP to that
    host (any port) whenever the user opens an ``http://`` address of it, for anyone on the
    way to read."""
    return request.is_secure or request.headers.get("Origin", "").lower().startswith("https://")


def session_id_of(request: Request) -> str:
    """The session id the request's cookie carries: the ``__Host-`` cookie (which a browser sends
    over HTTPS alone, whatever plain hop follows a proxy), else the plain one on a request the
    server sees as plain HTTP."""
    return request.cookies.get(SECURE_COOKIE) or ("" if request.is_secure else request.cookies.get(COOKIE, ""))


def token_mac(session_id: str, token: str) -> str:
    """What binds a session to the API token: the HMAC-SHA256 of its id keyed with the token."""
    return hmac.new(token.encode(), session_id.encode(), hashlib.sha256).hexdigest()


def current_session(request: Request, store: ServiceStore, token: str) -> Session | None:
    """The request's unexpired session, if it was issued for this very Host with this ``token``.
    The Hosts are compared as bytes: ``compare_digest`` takes ASCII text alone, and a Host is
    whatever the client sent where werkzeug passes it on unchecked (before 3.1.7, which
    ``flask>=3`` allows), so a name such as ``café.example`` would be a ``500``."""
    session_id = session_id_of(request)
    if not session_id:
        return None
    row = store.session(session_id)
    if row is None or not hmac.compare_digest(row["host"].encode(), request.host.lower().encode()):
        return None
    if not hmac.compare_digest(row["token_mac"], token_mac(session_id, token)):
        return None
    return Session(session_id, row["csrf"])


def csrf_matches(request: Request, session: Session) -> bool:
    given = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
    return bool(given) and token_matches(given, session.csrf)


def start_session(request: Request, response: Response, store: ServiceStore, ttl: float, token: str) -> None:
    """A new session for this Host and ``token``, set as the response's cookie (``Secure`` and
    ``__Host-`` prefixed where the browser is on HTTPS)."""
    session_id = secrets.token_urlsafe(32)
    store.add_session(session_id, secrets.token_urlsafe(32), request.host.lower(), time.time() + ttl,
                      token_mac(session_id, token))
    secure = on_https(request)
    response.set_cookie(SECURE_COOKIE if secure else COOKIE, session_id, max_age=int(ttl), httponly=True,
                        samesite="Strict", secure=secure, path="/")


def end_session(request: Request, response: Response, store: ServiceStore) -> None:
    """Revoke the sessions of the cookies the request came with (whatever Host each names) and
    clear those cookies (the one a login would set, where it came with none)."""
    held = [name for name in (SECURE_COOKIE, COOKIE) if request.cookies.get(name)]
    for name in held:
        store.delete_session(request.cookies[name])
    for name in held or [SECURE_COOKIE if on_https(request) else COOKIE]:
        response.delete_cookie(name, path="/", secure=name == SECURE_COOKIE, httponly=True, samesite="Strict")
