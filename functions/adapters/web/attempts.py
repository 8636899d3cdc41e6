"""A bound on the wrong tokens one client may try: guessing a token takes attempts without end.

A request that carries a credential the service does not take (a bearer token that is neither
the API token nor, where one is set, the metrics token or an accepted OIDC token; a token typed
into the dashboard's login form) is a failed attempt of its client. A client that failed
:data:`FAILURES` times within :data:`WINDOW` seconds is answered ``429 too_many_attempts``, with
``Retry-After`` the seconds until its oldest failure of them leaves the window, for every
request carrying a credential, which is not even compared: a guess that happens to be right is
refused as well, so the answer tells nothing. A request carrying none (a health check, a page
that sends the browser to the login form) and one with a dashboard session are served as ever.

Who a client is, as far as the service can tell: a peer on another host is its address. A peer
on loopback is either a proxy on this machine (it says so in a forwarding header,
:data:`~.forwarded.PROXY_HEADERS`: nginx, or Knative's queue-proxy, in front of every request)
whose client is named by those headers, each a count of its own; or a connection of this
machine. One of the service's own user (or one whose owner cannot be looked up: a server that
does not hand over its socket) is never refused, so nobody can lock the service's user out of
its own service from loopback; another account's connection is counted by its address.

A proxy that passes on what its client sent in ``X-Forwarded-For`` lets a client that varies
that header start a count afresh: the proxy's own limits (nginx's ``limit_req``) bound those.
Each worker counts its own clients, at most :data:`CLIENTS` of them (the oldest forgotten).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from flask import Request

from functions.adapters.web import forwarded, peers

FAILURES = 10
"""Failed attempts a client may make within :data:`WINDOW` seconds."""
WINDOW = 60.0
"""Seconds over which a client's failed attempts are counted."""
ATTEMPTS = "katuna_attempts"
"""The app's extension holding its :class:`Attempts`."""
CLIENTS = 10_000
"""Clients a worker keeps counts of at most: an attacker naming ever new clients (forged
forwarding headers) costs the worker this much memory, not more."""


class Attempts:
    """The failed attempts of each client within the window, in one worker."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failed: OrderedDict[str, deque[float]] = OrderedDict()

    @property
    def counting(self) -> bool:
        """Whether any client has failed attempts counted: where none has, no client need be
        looked up (:func:`client_of`) to serve a request."""
        return bool(self._failed)

    def wait(self, client: str | None) -> int | None:
        """Seconds until ``client`` may try a credential again, or None when it may now."""
        if client is None or not self._failed:
            return None
        with self._lock:
            times = self._recent(client)
            if times is None or len(times) < FAILURES:
                return None
            return max(1, math.ceil(times[0] + WINDOW - self._clock()))

    def failed(self, client: str | None) -> None:
        """Count a failed attempt of ``client`` (none for the service's own user on loopback)."""
        if client is None:
            return
        with self._lock:
            times = self._recent(client) or deque(maxlen=FAILURES)
            times.append(self._clock())
            self._failed[client] = times
            self._failed.move_to_end(client)
            while len(self._failed) > CLIENTS:
                self._failed.popitem(last=False)

    def _recent(self, client: str) -> deque[float] | None:
        """``client``'s failures within the window, older ones dropped; None when it has none."""
        times = self._failed.get(client)
        if times is None:
            return None
        while times and times[0] <= self._clock() - WINDOW:
            times.popleft()
        if not times:
            del self._failed[client]
            return None
        return times


def refusal_wait(attempts: Attempts, request: Request) -> int | None:
    """Seconds until ``request``'s client may try a credential again, or None when it may now."""
    return attempts.wait(client_of(request)) if attempts.counting else None


def client_of(request: Request) -> str | None:
    """Who ``request``'s client is, as a key of its count; None for a connection of the
    service's own user on loopback, which no count refuses."""
    peer = request.remote_addr or ""
    if not _loopback(peer):
        return peer
    header = forwarded.proxy_header(request)
    if header is not None:
        said = "; ".join(f"{name}: {request.headers.get(name, '')[:forwarded.KEPT]}"
                         for name in forwarded.PROXY_HEADERS if name in request.headers)
        return f"through a proxy at {peer} ({said})"
    connection = request.environ.get("gunicorn.socket")
    if connection is None or peers.stranger(connection) is None:
        return None
    return peer


def _loopback(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(parsed, "ipv4_mapped", None)
    return (mapped or parsed).is_loopback
