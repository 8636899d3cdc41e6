"""A client's connection bounded in time, for :class:`~functions.adapters.web.worker.Worker`.

A request must be whole within ``KATUNA_CLIENT_TIMEOUT`` seconds of its first read, and no
read or write may wait longer than that for the client. What has come of a request is gathered
without waiting, so that the worker's main loop, not one of its threads, waits for the rest:
a client that sends half a request and then nothing holds no thread
(:mod:`functions.adapters.web.worker` tells why that matters).
"""

from __future__ import annotations

import socket
import time
from typing import Any

from gunicorn.http.errors import NoMoreData

from functions.adapters.web.framing import CONTINUE_ANSWER, GATHER_LIMIT, Walk, request_size, waits_to_continue

MIN_SEND_RATE = 4096
"""Bytes a second an answer must reach the client at, on average, once its first ``limit``
seconds are spent (32 kbit/s, below what a GPRS link carries): one answer takes at most
``limit`` seconds plus its size at this rate, so a client that reads at a trickle holds a thread
for a bounded time (a 1.5 MB plotly.js, about six minutes), where each write alone waited
``limit`` for the client's progress and the whole answer had no bound."""


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
    it changed by ``settimeout(None)``: both mean ``limit`` here. An answer's writes go on while
    the client reads, each waiting at most ``limit`` for its progress, and all of them within
    ``limit`` seconds of the first plus the bytes sent at ``min_rate`` (:data:`MIN_SEND_RATE`)."""

    limit: float = 15.0
    body_limit: int = 1 << 20
    deadline: float | None = None
    min_rate: float = MIN_SEND_RATE
    answer_started: float | None = None
    """When the answer to the request being served began to be sent."""
    answer_sent: int = 0
    """Bytes of that answer the client took so far."""
    gathered: bytearray
    """What has come of the request so far, taken off the socket; appended to and handed out
    in place, so that a request sent in many small pieces costs its length once."""
    walk: Walk
    """How far the walk of the request's chunked body got (:class:`.framing.Walk`)."""
    continued: bool = False
    """Whether the client was told to continue (``100 Continue``) as its request's head was gathered."""
    body_left: bool = False
    """Whether a body over the limit was left unread behind its refusal: the connection's close
    throws its bytes away in the worker's poller (:mod:`.lingering`), no thread waiting for them."""

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
            if not self.continued and waits_to_continue(self.gathered):
                self._continue()

    def _continue(self) -> None:
        """Tell the client waiting for it to send its body, without waiting: one that does not
        take these few bytes at once has read none of its earlier answers, and its request is
        left to end at its deadline."""
        self.continued = True
        try:
            sent = super().send(CONTINUE_ANSWER, socket.MSG_DONTWAIT)
        except OSError:
            sent = 0
        if sent < len(CONTINUE_ANSWER):
            self.deadline = time.monotonic()

    def served(self) -> None:
        """The request was read and answered: the next one on the connection has its own
        deadline, and its own walk of a chunked body."""
        self.deadline, self.continued = None, False
        self.walk = Walk()
        self.answer_started, self.answer_sent = None, 0

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
        none of it (the socket's own ``sendall`` would bound the whole answer by it), and
        ``TimeoutError`` once the answer is behind its due time (:data:`MIN_SEND_RATE`). The
        socket's timeout is changed only for a write the due time cuts shorter, and put back
        once: a client that keeps up costs no system call but its writes."""
        if self.answer_started is None:
            self.answer_started = time.monotonic()
        started, configured = self.answer_started, self.gettimeout()
        with memoryview(data) as whole, whole.cast("B") as view:
            sent, waiting = 0, configured
            try:
                while sent < len(view):
                    wait = self._send_wait(started, configured)
                    if wait != waiting:
                        super().settimeout(wait)
                        waiting = wait
                    taken = self.send(view[sent:], flags)
                    sent += taken
                    self.answer_sent += taken
            finally:
                if waiting != configured:
                    super().settimeout(configured)

    def _send_wait(self, started: float, configured: float | None) -> float | None:
        """How long the next write may wait: the socket's timeout, cut at the answer's due time
        (an answer begun at ``started``)."""
        due = started + self.limit + self.answer_sent / self.min_rate - time.monotonic()
        if due <= 0:
            raise TimeoutError(f"the client read the answer slower than {self.min_rate:g} bytes a second after "
                               f"its first {self.limit:g} s (KATUNA_CLIENT_TIMEOUT)")
        return due if configured is None else min(configured, due)
