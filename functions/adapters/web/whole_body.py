"""The whole request body read before the application sees the request: a client too slow to
send it gets ``408``, one that goes away part way gets ``400``, and the application never reads
a truncated body as if it were whole (:class:`WholeBody`, which
:class:`~functions.adapters.web.worker.Worker` puts in front of the application).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

from functions.adapters.web.client_socket import ClientSocket, ClientTimeout
from functions.adapters.web.framing import serve_unchunked
from functions.adapters.web.guard import BODY_LEFT

BODY_CHUNK = 64 * 1024
"""Bytes of a body read from the client at a time."""


class WholeBody:
    """The application behind a read of the whole request body: a body of at most ``limit``
    bytes (``Content-Length`` or chunked) is read from the client before the application sees
    the request, which then reads it from memory. A client that does not send it in time gets
    ``408``; one that closes before it is whole gets ``400`` (gunicorn would hand over the
    part it got as if it were the body). A larger body is left to the application (a ``413``)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        closing = getattr(start_response, "__self__", None)
        start_response = _closing(start_response)
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        expected = int(length) if length.isdigit() else None
        if expected is None and not chunked:
            return self.app(environ, start_response)
        sock = environ.get("gunicorn.socket")
        if chunked and isinstance(sock, ClientSocket) and sock.walk.refused == "large":
            environ.pop("HTTP_TRANSFER_ENCODING", None)  # its chunks carry more than the limit: refused unread
            environ["CONTENT_LENGTH"] = str(self.limit + 1)
            return self.app(_left(environ, closing), start_response)
        if expected is not None and expected > self.limit:
            return self.app(_left(environ, closing), start_response)
        try:
            body = _read(environ["wsgi.input"], self.limit + 1 if expected is None else expected)
        except ClientTimeout as exc:
            return _refuse(start_response, "408 Request Timeout", "request_timeout", str(exc))
        except (OSError, ValueError):
            return _refuse(start_response, "400 Bad Request", "incomplete_body",
                           "the connection ended before the request body was whole")
        if expected is not None and len(body) < expected:
            return _refuse(start_response, "400 Bad Request", "incomplete_body",
                           f"the connection ended after {len(body)} of the {expected} bytes of Content-Length")
        if len(body) > self.limit:
            environ["wsgi.input"] = _Rejoined(body, environ["wsgi.input"])
            return self.app(_left(environ, closing), start_response)
        if chunked:
            serve_unchunked(environ, body)
        else:
            environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


class _Rejoined:
    """A chunked body past the limit, as the application reads it to refuse it: the bytes
    already read, then the rest from the client (which the refusal drains)."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self.head = io.BytesIO(head)
        self.rest = rest

    def read(self, size: int = -1) -> bytes:
        return self.head.read(size) or self.rest.read(size)


def _left(environ: dict, response: Any) -> dict:
    """``environ`` of a request whose body, over the limit, is refused unread: no thread drains it
    (:func:`.guard.drain`), the connection's close after the answer (gunicorn's ``response``)
    does, in the worker's poller."""
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, ClientSocket) and response is not None:
        sock.body_left = True
        environ[BODY_LEFT] = True
        response.force_close()
    return environ


def _read(stream: Any, most: int) -> bytes:
    """Up to ``most`` bytes of ``stream``, fewer only where it ends."""
    body = bytearray()
    while len(body) < most:
        chunk = stream.read(min(BODY_CHUNK, most - len(body)))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _closing(start_response: Any) -> Any:
    """``start_response`` that ends the connection after an answer saying ``Connection: close``
    (a refusal of :mod:`.guard`, or of :class:`WholeBody`): gunicorn drops that header from an
    application's answer, as a hop-by-hop one, and says ``keep-alive`` itself; its response's
    ``force_close`` (``start_response`` is that response's method) makes it say ``close`` and
    close, as it does for its own reasons."""
    response = getattr(start_response, "__self__", None)

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if response is not None and any(name.lower() == "connection" and value.strip().lower() == "close"
                                        for name, value in headers):
            response.force_close()
        return start_response(status, headers, exc_info)

    return start


def _refuse(start_response: Any, status: str, error: str, message: str) -> list[bytes]:
    """Katuna's error answer (the client may send the request again: it was cut short or late)."""
    body = json.dumps({"error": error, "message": message, "retryable": True}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                            ("Connection", "close")])
    return [body]
