"""Who may use the service when ``KATUNA_API_TOKEN`` is set.

The API takes ``Authorization: Bearer <token>``; the dashboard's login form trades the token
for an HttpOnly, SameSite=Strict cookie holding a value derived from it (never the token
itself, and never a token in a URL), which the dashboard's own fetches to the API carry too.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Request

COOKIE = "katuna_session"
COOKIE_MAX_AGE = 7 * 24 * 3600


def session_value(token: str) -> str:
    """The cookie value for ``token``: the same in every worker, useless as a bearer token."""
    return hmac.new(token.encode(), b"katuna dashboard session", hashlib.sha256).hexdigest()


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def authorized(request: Request, token: str) -> bool:
    """Whether the request carries the bearer token or the dashboard's session cookie."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token_matches(given, token):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and token_matches(cookie, session_value(token))
