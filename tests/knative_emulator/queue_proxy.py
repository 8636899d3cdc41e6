"""Queue-proxy's transport to the container, on loopback: a pool of kept-alive HTTP/1.1
connections, as Go's ``http.Transport`` keeps them.

Queue-proxy (knative/serving pkg/queue/sharedmain/main.go ``buildTransport``) proxies every
request to the container through a clone of Go's ``http.DefaultTransport`` (knative.dev/pkg
network/transports.go) keeping at most ``containerConcurrency`` idle connections (1,000 for no
limit), each for at most 90 s (``IdleConnTimeout``). Its rules, as :class:`Transport` keeps them
(net/http transport.go):

- a request goes out on the most recently used idle connection, or a new one where none is idle;
- an answer's connection goes back to the pool once its body was read to its end, unless the
  answer says ``Connection: close`` (or is HTTP/1.0 without ``keep-alive``), its body runs to
  the connection's end, or the pool is full: then it is closed;
- an idle connection the container closed, or sent bytes on that no request asked for, is
  dropped (Go's read loop sees the end, or logs "Unsolicited response received on idle HTTP
  channel" and closes it; :attr:`Transport.unsolicited` keeps those bytes);
- a request that fails on a reused connection before its answer's head came (the container
  closed it as the request went out) is sent again on another connection only where Go may
  replay it: a ``GET``, ``HEAD``, ``OPTIONS`` or ``TRACE`` without a body (or one carrying an
  ``Idempotency-Key``), or one without a body of which nothing was written
  (``shouldRetryRequest``). Any other failure is the proxy's ``502`` (:class:`UpstreamError`,
  whose words are the answer's body, as queue-proxy's error handler writes them).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterable

IDLE_CONN_TIMEOUT = 90.0
"""Seconds Go's ``http.DefaultTransport`` keeps an idle connection (``IdleConnTimeout``)."""
UNLIMITED_IDLE = 1000
"""Queue-proxy's idle connections where ``containerConcurrency`` is 0 (no limit)."""
REPLAYABLE = {"GET", "HEAD", "OPTIONS", "TRACE"}
BODY_SENT = {"POST", "PUT", "PATCH"}
"""Methods whose request Go sends ``Content-Length: 0`` for an empty body."""
READ_SIZE = 65536


class UpstreamError(Exception):
    """The transport could not get an answer: the proxy answers ``502`` with these words."""


class Closed(ConnectionError):
    """The container closed the connection (Go's ``io.EOF``)."""

    def __str__(self) -> str:
        return "EOF"


class Connection:
    """One connection to the container, with what was read of it past the last answer taken."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.reused = False
        self.idle_since = 0.0

    def send(self, data: bytes, deadline: float) -> int:
        """Write ``data``; the bytes written before a failure are on the exception (``written``)."""
        written = 0
        try:
            while written < len(data):
                self.sock.settimeout(_left(deadline))
                written += self.sock.send(data[written:])
        except OSError as error:
            error.written = written  # type: ignore[attr-defined]
            raise
        return written

    def fill(self, deadline: float) -> None:
        """Read what comes next into the buffer; :class:`Closed` at the connection's end."""
        self.sock.settimeout(_left(deadline))
        data = self.sock.recv(READ_SIZE)
        if not data:
            raise Closed()
        self.buffer += data

    def line(self, deadline: float) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self.fill(deadline)
        found = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return found

    def take(self, most: int, deadline: float) -> bytes:
        """Up to ``most`` bytes, waiting for some where none was read yet."""
        if not self.buffer:
            self.fill(deadline)
        found = bytes(self.buffer[:most])
        del self.buffer[:most]
        return found

    def stirred(self) -> bytes | None:
        """What an idle connection's read loop saw: None for nothing, else the bytes that came
        (``b""`` for the connection's end or a reset)."""
        if self.buffer:
            return bytes(self.buffer)
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            return self.sock.recv(READ_SIZE, socket.MSG_DONTWAIT) if readable else None
        except (OSError, ValueError):
            return b""

    def close(self) -> None:
        self.sock.close()


class Answer:
    """The container's answer: status, reason and headers, its body read by :meth:`read`; its
    connection goes back to the pool once the body ended (:meth:`close` closes it otherwise)."""

    def __init__(self, transport: Transport, connection: Connection, method: str, deadline: float) -> None:
        self.transport, self.connection = transport, connection
        version, self.status, self.reason = _status_line(connection.line(deadline))
        while 100 <= self.status < 200 and self.status != 101:
            _head(connection, deadline)
            version, self.status, self.reason = _status_line(connection.line(deadline))
        self.headers = _head(connection, deadline)
        tokens = {token.strip().lower() for token in self.header("connection").split(",")}
        self.keep_alive = "close" not in tokens and (version == "HTTP/1.1" or "keep-alive" in tokens)
        self._framing(method)
        self._chunk_left = 0

    def header(self, name: str) -> str:
        return ", ".join(value for key, value in self.headers if key.lower() == name)

    def _framing(self, method: str) -> None:
        """How the body ends (RFC 9112 section 6.3): none, chunked, at a length, or at the
        connection's end (which makes the connection unfit for another request)."""
        self.left: int | None = 0
        self.chunked = "chunked" in self.header("transfer-encoding").lower()
        length = self.header("content-length")
        if method == "HEAD" or 100 <= self.status < 200 or self.status in (204, 304) or self.chunked:
            return
        if length.isdigit():
            self.left = int(length)
        elif length:
            raise ValueError(f"bad Content-Length {length!r}")
        else:
            self.left, self.keep_alive = None, False

    @property
    def done(self) -> bool:
        return self.left == 0 and not self.chunked

    def read(self, deadline: float) -> bytes:
        """The next part of the body, ``b""`` at its end (the connection then goes back; with
        the last part, where its length is known)."""
        if self.chunked and self._chunk_left == 0:
            self._next_chunk(deadline)
        if self.done:
            self.close()
            return b""
        if self.chunked:
            part = self.connection.take(self._chunk_left, deadline)
            self._chunk_left -= len(part)
            if self._chunk_left == 0:
                self.connection.line(deadline)
            return part
        if self.left is None:
            try:
                return self.connection.take(READ_SIZE, deadline)
            except Closed:
                self.left = 0
                return self.read(deadline)
        part = self.connection.take(min(self.left, READ_SIZE), deadline)
        self.left -= len(part)
        if self.done:  # as Go's body reader gives the last bytes with EOF: back before they are relayed
            self.close()
        return part

    def _next_chunk(self, deadline: float) -> None:
        size = int(self.connection.line(deadline).split(b";", 1)[0], 16)
        if size == 0:
            while self.connection.line(deadline):
                pass
            self.chunked = False
        self._chunk_left = size

    def close(self) -> None:
        """The answer is done with: its connection back to the pool where the body ended and the
        answer keeps it alive, else closed."""
        if self.connection is None:
            return
        connection, self.connection = self.connection, None  # type: ignore[assignment]
        if self.done and self.keep_alive:
            self.transport.put(connection)
        else:
            connection.close()


class Transport:
    """Queue-proxy's transport to the container on ``port`` (loopback), keeping at most
    ``max_idle`` idle connections for ``idle_timeout`` seconds. ``dials`` counts the connections
    made, ``reuses`` the requests sent on a pooled one, ``retries`` those sent again, ``ended``
    the idle connections found closed by the container (after an answer that kept them alive)."""

    def __init__(self, port: int, max_idle: int, idle_timeout: float = IDLE_CONN_TIMEOUT) -> None:
        self.port, self.max_idle, self.idle_timeout = port, max_idle or UNLIMITED_IDLE, idle_timeout
        self.dials = self.reuses = self.retries = self.ended = 0
        self.unsolicited: list[bytes] = []
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def round_trip(self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes,
                   deadline: float) -> Answer:
        """The container's answer to a request (its head; the body to be read from it);
        ``TimeoutError`` at ``deadline``; :class:`UpstreamError` where Go's transport fails."""
        headers = list(headers)
        data = _request(method, target, headers, body, self.port)
        while True:
            connection = self._get(deadline)
            try:
                connection.send(data, deadline)
                return Answer(self, connection, method, deadline)
            except TimeoutError:
                connection.close()
                raise
            except (OSError, ValueError) as error:
                connection.close()
                nothing_written = getattr(error, "written", None) == 0
                if not (connection.reused and _replayable(method, headers, body, nothing_written)):
                    raise UpstreamError(str(error) or type(error).__name__) from error
                with self._lock:
                    self.retries += 1

    def _get(self, deadline: float) -> Connection:
        """The most recently used idle connection still open, or a new one."""
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                stirred = connection.stirred()
                if stirred is None and time.monotonic() - connection.idle_since < self.idle_timeout:
                    self.reuses += 1
                    connection.reused = True
                    return connection
                if stirred:
                    self.unsolicited.append(stirred)
                self.ended += stirred == b""
                connection.close()
            self.dials += 1
        try:
            return Connection(socket.create_connection(("127.0.0.1", self.port), timeout=_left(deadline)))
        except TimeoutError:
            raise
        except OSError as error:
            raise UpstreamError(f"dial tcp 127.0.0.1:{self.port}: {error}") from error

    def put(self, connection: Connection) -> None:
        """An answered connection back into the pool, or closed where the pool is full."""
        with self._lock:
            if len(self._idle) < self.max_idle:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _replayable(method: str, headers: list[tuple[str, str]], body: bytes, nothing_written: bool) -> bool:
    """Whether Go sends the request again after a reused connection failed it
    (``shouldRetryRequest``: nothing of it written and no body, or ``isReplayable``)."""
    if body:
        return False
    keyed = any(name.lower() in ("idempotency-key", "x-idempotency-key") for name, _ in headers)
    return nothing_written or method in REPLAYABLE or keyed


def _request(method: str, target: str, headers: list[tuple[str, str]], body: bytes, port: int) -> bytes:
    """The request as Go's transport writes it: HTTP/1.1, a ``Host``, and ``Content-Length``
    where there is a body (0 for an empty ``POST``, ``PUT`` or ``PATCH``)."""
    kept = [(name, value) for name, value in headers if name.lower() != "content-length"]
    if not any(name.lower() == "host" for name, _ in kept):
        kept.insert(0, ("Host", f"127.0.0.1:{port}"))
    if body or method in BODY_SENT:
        kept.append(("Content-Length", str(len(body))))
    head = "".join(f"{name}: {value}\r\n" for name, value in kept)
    return f"{method} {target} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body


def _status_line(line: bytes) -> tuple[str, int, str]:
    version, _, rest = line.decode("latin-1").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not (code.isdigit() and len(code) == 3):
        raise ValueError(f"malformed HTTP response {line[:40]!r}")
    return version, int(code), reason


def _head(connection: Connection, deadline: float) -> list[tuple[str, str]]:
    headers = []
    while line := connection.line(deadline):
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise ValueError(f"malformed MIME header line: {line[:40]!r}")
        headers.append((name.strip(), value.strip()))
    return headers
