"""The gunicorn worker ``katuna serve`` and the image run: gunicorn's threaded worker, made safe
to face clients directly.

A worker owns the local trials it started, and gunicorn kills a worker whose heartbeat stops for
its ``timeout``: the trials die with it. gunicorn's ``sync`` worker sends that heartbeat only
between requests and reads a request with no time limit (``workers/sync.py``: ``accept`` makes
the socket blocking, ``handle`` parses it), so one client that sent half a request and then
nothing got the worker, and its trials, killed. The threaded worker (``workers/gthread.py``)
beats in its main loop, whatever its threads are doing; but its threads read a request with
no limit either, once its first bytes have come (``handle``: ``wait_for_data``, then a blocking
``next(conn.parser)``), so a few such clients could hold every thread for ever.

Here every client connection is bounded (:class:`ClientSocket`). What has come of a request
is gathered without waiting, and the connection goes back to the main loop until the rest
comes (closed unanswered after gunicorn's ``keepalive`` seconds of silence, or answered at the
request's deadline if that is sooner, as below; a new connection's starts as it is accepted): a
thread takes it only once
its head and its body, ``Content-Length`` or chunked (up to ``KATUNA_MAX_BODY``), are here
(:mod:`.framing`). A request must be
whole within ``KATUNA_CLIENT_TIMEOUT`` seconds of its first read, and no write to the client may
wait longer than that for it to take more. The body is read whole before the application sees
the request (:class:`WholeBody`), so a client too slow to send it gets ``408`` and one that goes
away part way gets ``400``, never a truncated body. Without ``KATUNA_API_TOKEN``, a connection of
another account of the machine is answered ``403`` and closed as it is accepted, before anything
is read from it (:mod:`.peers`); with ``KATUNA_METRICS_TOKEN`` set, whose ``/metrics`` another
account may scrape, it is read, and the application refuses its other requests.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import socket
import time
from collections.abc import Iterable
from typing import Any

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import _DEFER

from functions.adapters.web import peers
from functions.adapters.web.framing import GATHER_LIMIT, Walk, request_size, serve_unchunked
from functions.adapters.web.lingering import Lingering
from functions.adapters.web.parse_errors import JsonErrors
from functions.adapters.web.worker_signals import SignalledWorker

BODY_CHUNK = 64 * 1024


class ClientTimeout(NoMoreData):
    """The client did not send its request in time. A kind of gunicorn's own "no more data",
    which its workers take as a client that went away: the connection is closed quietly."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def __str__(self) -> str:
        return f"the client did not send its request within {self.seconds:g} s (KATUNA_CLIENT_TIMEOUT)"


class ClientSocket(socket.socket):
    """A client's connection whose request must arrive by a deadline, and whose blocking
    operations each wait at most ``limit`` seconds.

    What has come of a request is first gathered without waiting (:meth:`gather`), while the
    worker's main loop, not a thread, waits for more: a thread reads the request only once its
    head, and a body of at most ``body_limit`` bytes, are here (:func:`.framing.request_size`).
    The rest of a request (a larger body) is read by the thread with the deadline. gunicorn makes
    the socket blocking before it reads or writes (``setblocking(True)``) and restores a timeout
    it changed by ``settimeout(None)``: both mean ``limit`` here. ``sendall`` is bounded by the
    client's progress, not in all: a large answer to a slow reader goes on while it reads."""

    limit: float = 15.0
    body_limit: int = 1 << 20
    deadline: float | None = None
    gathered: bytearray
    """What has come of the request so far, taken off the socket; appended to and handed out
    in place, so that a request sent in many small pieces costs its length once."""
    walk: Walk
    """How far the walk of the request's chunked body got (:class:`.framing.Walk`)."""

    @classmethod
    def adopt(cls, connection: socket.socket, limit: float, body_limit: int) -> ClientSocket:
        """``connection`` (an accepted socket, which this takes over) as a ClientSocket."""
        adopted = cls(connection.family, connection.type, connection.proto, fileno=connection.detach())
        adopted.limit, adopted.body_limit, adopted.walk, adopted.gathered = limit, body_limit, Walk(), bytearray()
        adopted.setblocking(True)
        return adopted

    def start(self) -> None:
        """A request is being read: it must be here within ``limit`` seconds of its first read."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.limit

    def gather(self) -> bool:
        """Take what has come of the request without waiting, and nothing past its end; True
        once a thread may read it (all of it is here, or it cannot all come: the client closed,
        the deadline passed, or the head is larger than :data:`.framing.GATHER_LIMIT`), False while
        more is to come."""
        self.start()
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return True
        super().settimeout(0.0)
        while True:
            try:
                peeked = super().recv(GATHER_LIMIT, socket.MSG_PEEK)
            except BlockingIOError:
                return False
            except OSError:
                return True
            if not peeked:
                return True
            mark = len(self.gathered)
            self.gathered += peeked
            size = request_size(self.gathered, self.body_limit, self.walk)
            del self.gathered[mark:]
            wanted = len(peeked) if size is None else min(len(peeked), size - mark)
            if wanted > 0:  # none once a body gathered in part goes to the thread after all
                self.gathered += super().recv(wanted)
            if size is not None and len(self.gathered) >= size:
                return True

    def served(self) -> None:
        """The request was read and answered: the next one on the connection has its own
        deadline, and its own walk of a chunked body."""
        self.deadline = None
        self.walk = Walk()

    def setblocking(self, flag: bool) -> None:
        super().settimeout(self.limit if flag else 0.0)

    def settimeout(self, value: float | None) -> None:
        super().settimeout(self.limit if value is None else value)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self.gathered:
            taken = bytes(self.gathered[:bufsize])
            del self.gathered[:bufsize]
            return taken
        configured = self.gettimeout()
        if self.deadline is None or configured == 0.0:
            return self._recv(bufsize, flags)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ClientTimeout(self.limit)
        super().settimeout(remaining if configured is None else min(configured, remaining))
        try:
            return self._recv(bufsize, flags)
        finally:
            super().settimeout(configured)

    def _recv(self, bufsize: int, flags: int) -> bytes:
        try:
            return super().recv(bufsize, flags)
        except TimeoutError:
            raise ClientTimeout(self.limit) from None

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send all of ``data``, waiting at most the socket's timeout each time the client takes
        none of it (the socket's own ``sendall`` would bound the whole answer by it)."""
        with memoryview(data) as whole, whole.cast("B") as view:
            sent = 0
            while sent < len(view):
                sent += self.send(view[sent:], flags)


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
        start_response = _closing(start_response)
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        expected = int(length) if length.isdigit() else None
        if (expected is None and not chunked) or (expected is not None and expected > self.limit):
            return self.app(environ, start_response)
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
            return self.app(environ, start_response)
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


class Worker(SignalledWorker):
    """gunicorn's threaded worker with every client connection bounded (see the module), taking
    its stopping signals as :mod:`.worker_signals` says."""

    wsgi: Any
    lingering: Lingering
    """The connections closed after their answers, until each client closes its end too."""

    def load_wsgi(self) -> None:
        """Load the application, then take what the connections are bounded by from its
        settings, and put the whole-body read in front of it."""
        super().load_wsgi()
        app: Any = self.wsgi
        self.runtime = app.extensions["katuna"]
        settings = self.runtime.settings
        self.client_timeout = settings.client_timeout
        self.local_only = not (settings.api_token or settings.metrics_token) and peers.can_tell()
        self.body_limit = settings.max_body
        self.wsgi = WholeBody(app, settings.max_body)

    def run(self) -> None:
        """Serve until told to stop, then close the runtime, whichever way the worker ends (its
        loop done, or gunicorn's quick exit from a signal handler): the worker's local trials
        are killed, to be relaunched once nothing owns them, its senders stop, and its last
        connection folds the write-ahead log into the database. Here rather than in a gunicorn
        hook, so that the image's CMD, which sets no hooks, does it as ``katuna serve`` does. A
        worker that failed to load its app has no runtime, and no trials."""
        self.lingering = Lingering(self.poller, self._connection_closed)
        try:
            super().run()
        finally:
            if self.runtime is not None:
                self.runtime.close()

    def finish_request(self, conn: Any, fs: Any) -> None:
        """gunicorn's, but a connection it would close after its answer (not kept alive) is
        half-closed and left to the poller until the client closes too (:mod:`.lingering`),
        where gunicorn waits for that on the main loop, up to 2 s for each connection."""
        if fs.cancelled() or (fs.exception() is None and not fs.result()):
            self.lingering.close(conn.sock)
            return
        super().finish_request(conn, fs)
        if self.pending_conns and self.pending_conns[-1] is conn:
            self._due_by_deadline(conn)

    def _due_by_deadline(self, conn: Any) -> None:
        """A connection deferred to wait for the rest of its request is due at the request's
        deadline (``KATUNA_CLIENT_TIMEOUT``) when that comes before gunicorn's ``keepalive``
        (120 s in the image), where gunicorn gives a pending connection its whole keepalive. It
        moves up the pending queue, kept in the order its connections are due
        (:meth:`murder_pending`)."""
        deadline = getattr(conn.sock, "deadline", None)
        if deadline is None or deadline >= conn.timeout:
            return
        pending = self.pending_conns
        pending.pop()
        conn.timeout = deadline
        place = len(pending)
        while place and pending[place - 1].timeout > deadline:
            place -= 1
        pending.insert(place, conn)

    def _connection_closed(self) -> None:
        self.nr_conns -= 1

    def murder_pending(self) -> None:
        """gunicorn's close of the connections silent for its ``keepalive`` before their request
        was whole, but one due at its request's deadline (:meth:`_due_by_deadline`) goes to a
        thread, which answers it as a request late in coming (``408`` for a body, closed
        unanswered for a head: :meth:`ClientSocket.gather`); and the half-closed connections
        whose time is up are closed."""
        now = time.monotonic()
        pending = self.pending_conns
        while pending and pending[0].timeout <= now:
            conn = pending.popleft()
            with contextlib.suppress(OSError, KeyError, ValueError):
                self.poller.unregister(conn.sock)
            if getattr(conn.sock, "deadline", None) == conn.timeout:
                conn.data_ready = True
                self.enqueue_req(conn)
            else:
                self.nr_conns -= 1
                conn.close()
        self.lingering.sweep()

    def murder_keepalived(self, force: bool = False) -> None:
        """gunicorn's; forced as the worker ends, it closes the half-closed connections too."""
        super().murder_keepalived(force)
        if force:
            self.lingering.sweep(force=True)

    def handle_request(self, req: Any, conn: Any) -> Any:
        """gunicorn's, but a request waiting for ``100 Continue`` (``Expect: 100-continue``)
        whose ``Content-Length`` is over ``KATUNA_MAX_BODY`` is not told to send its body: its
        ``413`` comes first, and the connection closes after it (RFC 9110 section 10.1.1), where
        gunicorn would invite the body and throw it away."""
        if req._expected_100_continue and _declared_length(req) > self.body_limit:
            req._expected_100_continue = False
            req.force_close()
        return super().handle_request(req, conn)

    def accept(self, listener: socket.socket) -> None:
        super().accept(_Screened(listener, self))

    def handle(self, conn: Any) -> Any:
        """Serve a request once it is here: until then the connection goes back to the main
        loop, which closes it after gunicorn's ``keepalive`` seconds of silence. A request the
        parser already holds (sent behind the last) is served at once."""
        sock = conn.sock
        if not isinstance(sock, ClientSocket):
            return super().handle(conn)
        if conn.parser is not None and conn.parser.unreader.buf.getvalue():
            sock.start()
        elif not sock.gather():
            return _DEFER
        conn.data_ready = True
        try:
            return super().handle(conn)
        finally:
            sock.served()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's answer to a request it could not parse, or to a fault, as katuna's JSON
        error (:mod:`.parse_errors`)."""
        super().handle_error(req, JsonErrors(client), addr, exc)

    def take(self, connection: socket.socket) -> ClientSocket | None:
        """An accepted connection, bounded; None when it was refused (and closed)."""
        if self.local_only:
            problem = peers.stranger(connection)
            if problem is not None:
                peers.turn_away(connection, problem)
                return None
        return ClientSocket.adopt(connection, self.client_timeout, self.body_limit)


def _declared_length(req: Any) -> int:
    """The request's ``Content-Length`` as gunicorn's parser took it (0 where it has none)."""
    value = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), "0")
    return int(value) if value.isdigit() else 0


class _Screened:
    """A listener whose ``accept`` hands the worker only the connections it takes, bounded; a
    refused one is, to gunicorn, no connection at all (``EAGAIN``)."""

    def __init__(self, listener: socket.socket, worker: Worker) -> None:
        self.listener = listener
        self.worker = worker

    def accept(self) -> tuple[socket.socket, Any]:
        connection, address = self.listener.accept()
        taken = self.worker.take(connection)
        if taken is None:
            raise BlockingIOError(errno.EAGAIN, "connection refused at accept")
        return taken, address

    def getsockname(self) -> Any:
        return self.listener.getsockname()
