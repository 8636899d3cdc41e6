"""The multi-tenant broker's ingress as HTTP sees it (eventing pkg/broker/ingress/ingress_handler.go
``ServeHTTP``): one server for every Broker of the cluster, each reached at its own path.

A Broker's address (``status.address.url``) is the ingress's with ``/<namespace>/<name>``:
``http://broker-ingress.knative-eventing.svc.cluster.local/katuna/katuna`` for katuna's. The
ingress checks, in this order, and answers with no body:

- the method: ``OPTIONS`` gets ``200`` (a CloudEvents webhook's ``WebHook-Allowed-Origin`` and
  ``WebHook-Allowed-Rate``), any other but ``POST`` gets ``405``; every answer carries
  ``Allow: POST, OPTIONS``;
- the request's target, as it came (a query string included): ``/`` alone is ``404``; one that is not
  ``/<namespace>/<name>`` (a trailing ``/`` aside) is ``400``;
- the event: one the CloudEvents SDK cannot read, or that lacks a required attribute, is ``400``;
- the Broker: a name the ingress knows no Broker by is ``404``;
- the TTL (``knativebrokerttl``): spent, ``400`` (:func:`.messages.admitted`).
"""

from __future__ import annotations

import select
import socket
from http.server import BaseHTTPRequestHandler

ALLOW = "POST, OPTIONS"


def broker_path(namespace: str, name: str) -> str:
    """The path of a Broker's address on the ingress."""
    return f"/{namespace}/{name}"


def refusal(method: str, target: str) -> int | None:
    """The ingress's answer before it reads the event (``200`` for ``OPTIONS``), or None to read it."""
    if method == "OPTIONS":
        return 200
    if method != "POST":
        return 405
    if target == "/":
        return 404
    return 400 if len(target.removesuffix("/").split("/")) != 3 else None


def named_broker(target: str) -> tuple[str, str]:
    """The namespace and name of the Broker a target that passed :func:`refusal` names."""
    _, namespace, name = target.removesuffix("/").split("/")
    return namespace, name


def answer(request: BaseHTTPRequestHandler, code: int) -> None:
    """An answer of the ingress's: a status, ``Allow`` and no body."""
    request.send_response(code)
    request.send_header("Allow", ALLOW)
    if request.command == "OPTIONS":
        request.send_header("WebHook-Allowed-Origin", "*")
        request.send_header("WebHook-Allowed-Rate", "*")
    request.send_header("Content-Length", "0")
    request.end_headers()


class RefusingMethods(BaseHTTPRequestHandler):
    """A handler answering every method it has no ``do_`` method for as the ingress does (``405``),
    where the standard library would answer ``501``."""

    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return lambda: answer(self, refusal(self.command, self.path) or 405)
        raise AttributeError(name)

    def do_OPTIONS(self) -> None:  # noqa: N802 (the stdlib's name)
        answer(self, 200)


def hung_up(connection: socket.socket) -> bool:
    """Whether the sender closed its end of ``connection`` (it gave up waiting for the answer); on
    a TLS connection, whether it closed the TCP connection under it (TLS cannot peek), so a
    sender sending TLS's ``close_notify`` first is not noticed; Python's senders close without."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and socket.socket.recv(connection, 1, socket.MSG_PEEK) == b""
    except OSError:
        return True
