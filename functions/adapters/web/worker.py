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

Here every client connection is bounded (:class:`.client_socket.ClientSocket`). What has come
of a request is gathered without waiting, and the connection goes back to the main loop until
the rest comes (closed unanswered after gunicorn's ``keepalive`` seconds of silence, or answered
at the request's deadline if that is sooner, as below; a new connection's starts as it is
accepted): a thread takes it only once its head and its body, ``Content-Length`` or chunked (up
to ``KATUNA_MAX_BODY``), are here (:mod:`.framing`). A request must be whole within
``KATUNA_CLIENT_TIMEOUT`` seconds of its first read, and no write to the client may wait longer
than that for it to take more. The body is read whole before the application sees the request
(:class:`.whole_body.WholeBody`), so a client too slow to send it gets ``408`` and one that goes
away part way gets ``400``, never a truncated body. Without ``KATUNA_API_TOKEN``, a connection of
another account of the machine is answered ``403`` and closed as it is accepted, before anything
is read from it (:mod:`.peers`); with ``KATUNA_METRICS_TOKEN`` set, whose ``/metrics`` another
account may scrape, it is read, and the application refuses its other requests.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import time
from typing import Any

from gunicorn.http.errors import InvalidChunkSize, InvalidHeader, LimitRequestHeaders
from gunicorn.workers.gthread import _DEFER

from functions.adapters.web import guard, peers
from functions.adapters.web.client_socket import ClientSocket
from functions.adapters.web.framing import GATHER_LIMIT, head_too_large
from functions.adapters.web.lingering import Lingering
from functions.adapters.web.parse_errors import JsonErrors
from functions.adapters.web.whole_body import WholeBody
from functions.adapters.web.worker_signals import SignalledWorker


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
            if getattr(conn.sock, "body_left", False):
                self.lingering.close(conn.sock, guard.DRAIN_LIMIT, guard.LINGER_SECONDS)
            else:
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

    def _cap_keepalive(self, deadline: float) -> None:
        """gunicorn's, as the worker begins to stop: its kept-alive connections close by
        ``deadline`` (a request arriving meanwhile is still answered); so do the connections
        that have sent nothing since they were accepted or last answered (an HTTP client's
        spare one, dialled for a request that went on another). gunicorn's stop waits until
        every connection is closed: each of those held the worker, its runtime not yet closed,
        until its ``KATUNA_CLIENT_TIMEOUT``, and past gunicorn's graceful timeout the arbiter
        killed it, its runtime never closed. A request begun keeps its deadline."""
        super()._cap_keepalive(deadline)
        pending = self.pending_conns
        for conn in pending:
            if isinstance(conn.sock, ClientSocket) and not conn.sock.gathered:
                conn.timeout = min(conn.timeout, deadline)
        ordered = sorted(pending, key=lambda conn: conn.timeout)  # kept in the order they are due
        pending.clear()
        pending.extend(ordered)

    def murder_pending(self) -> None:
        """gunicorn's close of the connections silent for its ``keepalive`` before their request
        was whole, but one due at its request's deadline (:meth:`_due_by_deadline`) goes to a
        thread, which answers it as a request late in coming (``408`` for a body, closed
        unanswered for a head: :meth:`ClientSocket.gather`); the half-closed connections
        whose time is up are closed; and a connection waiting to be accepted gets room
        (:meth:`_make_room`)."""
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
        self._make_room()

    def _make_room(self) -> None:
        """When the worker holds every connection it may (gunicorn's ``worker_connections``,
        1,000) and a new one waits to be accepted, close the connection idle longest since its
        answer (kept alive) or, without one, the one nearest its deadline of those waiting for
        the rest of a request. gunicorn stops accepting at the bound, so one client holding that
        many connections open (sending nothing, or a byte now and then) kept every other client,
        the readiness probe and every token holder among them, waiting until its connections
        timed out, and could open them again; now a client that sends its request at once is
        served whoever holds the rest. With neither, a half-closed connection goes (:mod:`.lingering`)."""
        if self.nr_conns < self.worker_connections or not _waiting(self.sockets):
            return
        for held in (self.keepalived_conns, self.pending_conns):
            if held:
                conn = held.popleft()
                with contextlib.suppress(OSError, KeyError, ValueError):
                    self.poller.unregister(conn.sock)
                self.nr_conns -= 1
                conn.close()
                return
        self.lingering.make_room()

    def murder_keepalived(self, force: bool = False) -> None:
        """gunicorn's; forced as the worker ends, it closes the half-closed connections too."""
        super().murder_keepalived(force)
        if force:
            self.lingering.sweep(force=True)

    def handle_request(self, req: Any, conn: Any) -> Any:
        """gunicorn's, but a request waiting for ``100 Continue`` (``Expect: 100-continue``)
        whose ``Content-Length`` is over ``KATUNA_MAX_BODY`` is not told to send its body: its
        ``413`` comes first, and the connection closes after it (RFC 9110 section 10.1.1), where
        gunicorn would invite the body and throw it away; nor is one whose client the worker's
        poller already told, as it gathered the body (:meth:`.ClientSocket.gather`). A request that
        gives a CloudEvents attribute header twice is refused (``400``)."""
        if (repeated := _repeated_event_attribute(req)) is not None:
            raise RepeatedAttribute(repeated, req)
        if getattr(conn.sock, "continued", False):
            req._expected_100_continue = False
        if req._expected_100_continue and _declared_length(req) > self.body_limit:
            req._expected_100_continue = False
            req.force_close()
        return super().handle_request(req, conn)

    def accept(self, listener: socket.socket) -> None:
        super().accept(_Screened(listener, self))

    def handle(self, conn: Any) -> Any:
        """Serve a request once it is here: until then the connection goes back to the main
        loop, which closes it after gunicorn's ``keepalive`` seconds of silence. A request the
        parser already holds (sent behind the last) is served at once. A head larger than the
        poller gathers is answered ``431`` unread, where a thread would wait for its end, and a
        chunked body framed as the poller does not gather ``400`` (:attr:`.framing.Walk.refused`)."""
        sock = conn.sock
        if not isinstance(sock, ClientSocket):
            return super().handle(conn)
        if conn.parser is not None and conn.parser.unreader.buf.getvalue():
            sock.start()
        elif not sock.gather():
            return _DEFER
        conn.data_ready = True
        if head_too_large(sock.gathered):
            self.handle_error(None, sock, conn.client, LimitRequestHeaders(
                f"the request's head passes {GATHER_LIMIT:,} bytes: send fewer or smaller header fields"))
            return False
        if sock.walk.refused == "framing":
            self.handle_error(None, sock, conn.client, InvalidChunkSize(
                "a chunked body framed as katuna does not take: a bad or over 1 KiB chunk size line, or over 64 KiB "
                "of chunk framing or trailer"))
            return False
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


def _waiting(listeners: list[Any]) -> bool:
    """Whether a connection waits to be accepted on one of ``listeners``."""
    return bool(listeners) and bool(select.select(listeners, [], [], 0)[0])


class RepeatedAttribute(InvalidHeader):
    """A CloudEvents attribute header given twice: gunicorn's ``400``, in katuna's words."""

    def __str__(self) -> str:
        return f"the header {self.hdr} is given twice; a CloudEvents attribute has one value: send it once"


def _repeated_event_attribute(req: Any) -> str | None:
    """The first CloudEvents attribute header (``ce-*``) the request gives twice, or None. An
    attribute has one value, and its header is no list (RFC 9110 section 5.3 lets a recipient join
    repeated lines only for a list): gunicorn would join the two lines into one value, ``a,b``,
    read as one event ``id`` that neither sender meant, so the request is refused (``400``)."""
    seen: set[str] = set()
    for name, _ in req.headers:
        if name.startswith("CE-"):
            if name in seen:
                return name.lower()
            seen.add(name)
    return None


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
