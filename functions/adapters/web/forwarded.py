"""Who sent a request, as a log line names it: the peer's address, and what the proxies in
between say of the client.

Behind Knative's queue-proxy every request comes from 127.0.0.1, so the address alone names no
one. The ``X-Forwarded-For`` and ``Forwarded`` headers a proxy adds say more, but anyone may send
them: they are written as reported (cut to :data:`KEPT` characters, control characters escaped)
and never trusted to name the client.

Their presence alone says something a service without a token must not ignore: a proxy passed the
request on (:func:`proxy_header`). Such a service takes requests only from its own user's
connections (:mod:`.peers`), and a proxy run as that user (or root) on this machine connects as
that user whoever its client is: an nginx that sets ``Host`` to its upstream, as it does unless
told otherwise, would give anyone who reaches it the service's writes, and so its user's
commands. A client that sends such a header itself is refused, which costs nobody else anything.
"""

from __future__ import annotations

from typing import Any

from functions.adapters.log_lines import printable

KEPT = 200
"""Characters kept of each forwarding header."""

HEADERS = ("X-Forwarded-For", "Forwarded")

PROXY_HEADERS = (*HEADERS, "X-Real-IP", "X-Forwarded-Host", "X-Forwarded-Proto", "Via")
"""The headers by which a proxy says it passed a request on: ``X-Forwarded-For`` (Apache, Caddy,
Traefik and Envoy by default; nginx as usually configured), ``Forwarded`` (RFC 7239),
``X-Real-IP`` (nginx's usual configuration), ``X-Forwarded-Host`` and ``X-Forwarded-Proto``
(Apache and Caddy by default) and ``Via`` (RFC 9110)."""


def sender(request: Any) -> str:
    """``request``'s peer address, then each forwarding header it came with, as reported:
    ``127.0.0.1 (X-Forwarded-For: "10.4.0.7")``."""
    reported = [f'{name}: "{_cut(value)}"' for name in HEADERS if (value := request.headers.get(name))]
    return f"{request.remote_addr} ({'; '.join(reported)})" if reported else str(request.remote_addr)


def _cut(value: str) -> str:
    """``value`` cut, its control characters and double quotes escaped."""
    return printable(value[:KEPT] + ("…" if len(value) > KEPT else "")).replace('"', '\\"')


def proxy_header(request: Any) -> str | None:
    """The first header of :data:`PROXY_HEADERS` that ``request`` carries, or None: a request
    that names one comes through a proxy, whose clients its connection does not show."""
    return next((name for name in PROXY_HEADERS if name in request.headers), None)
