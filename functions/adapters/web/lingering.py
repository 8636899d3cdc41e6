"""Closing a client's connection after its last answer without waiting on the client.

A server that closes a connection with unread bytes from the client in its buffer makes the
kernel send a reset, which may destroy the answer before the client has read it; so gunicorn
half-closes (``shutdown(SHUT_WR)``, the answer then ends in a FIN) and reads what the client
still sends until the client closes too, for up to two seconds (``util.close_graceful``, RFC
9112 section 9.6). gunicorn's threaded worker does that read on its main loop, blocking, for
every connection it does not keep alive (``finish_request``): a client that sends requests
with ``Connection: close`` on many connections at once, and then neither reads nor closes,
holds the loop two seconds for each, its heartbeat with it, and gets the worker killed, its
local trials too. Here the wait happens in the worker's poller instead: the half-closed socket
is read when the client sends more, and closed once the client closed its end, sent
:data:`MAX_DRAIN` bytes, or :data:`LINGER` seconds passed. A connection whose request's body
was refused unread (over ``KATUNA_MAX_BODY``) is given more of both, so that a client still
sending it reads its ``413`` rather than a reset, and still no thread waits for it; when the
worker holds every connection it may, the half-closed one closing last is closed first.
"""

from __future__ import annotations

import contextlib
import heapq
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

LINGER = 2.0
"""Seconds a half-closed connection waits for the client to close its end (gunicorn's own)."""
MAX_DRAIN = 65536
"""Bytes read from a half-closed connection before it is closed anyway (gunicorn's own)."""


@dataclass(eq=False)
class _Closing:
    sock: socket.socket
    deadline: float
    most: int = MAX_DRAIN
    drained: int = 0
    closed: bool = False

    def __lt__(self, other: _Closing) -> bool:
        return self.deadline < other.deadline


class Lingering:
    """The worker's half-closed connections; ``closed`` runs as each is finally closed (the
    worker counts it among its connections until then, so their number stays bounded). They
    are kept in a heap by deadline, which arrive out of order (a refused body's connection
    waits longer), so the worker's every turn looks at the one due first only."""

    def __init__(self, poller: selectors.BaseSelector, closed: Callable[[], None]) -> None:
        self._poller = poller
        self._closed = closed
        self._closing: list[_Closing] = []
        self._ended = 0
        """Connections of the heap closed before their deadline, left in it until they are due
        or outnumber the others (:meth:`_end_early`)."""

    def close(self, sock: socket.socket, most: int = MAX_DRAIN, seconds: float = LINGER) -> None:
        """Half-close ``sock`` now, and close it once the client is done with it: it closed its
        end, sent ``most`` bytes more, or ``seconds`` passed."""
        closing = _Closing(sock, time.monotonic() + seconds, most)
        try:
            sock.shutdown(socket.SHUT_WR)
            socket.socket.settimeout(sock, 0.0)
            self._poller.register(sock, selectors.EVENT_READ, lambda _fileobj: self._readable(closing))
        except (OSError, ValueError, KeyError):
            self._end(closing)
            return
        heapq.heappush(self._closing, closing)

    def sweep(self, force: bool = False) -> None:
        """Close the connections whose time is up (every one, with ``force``)."""
        now = time.monotonic()
        while self._closing and (force or self._closing[0].deadline <= now):
            closing = heapq.heappop(self._closing)
            if closing.closed:
                self._ended -= 1
            self._end(closing)

    def make_room(self) -> bool:
        """Close the half-closed connection due last, to make room for a new one; whether there
        was one."""
        waiting = [closing for closing in self._closing if not closing.closed]
        if not waiting:
            return False
        self._end_early(max(waiting, key=lambda closing: closing.deadline))
        return True

    def _readable(self, closing: _Closing) -> None:
        """Throw away what the client sent; close once it closed its end or sent too much."""
        try:
            received = socket.socket.recv(closing.sock, min(65536, closing.most))
        except BlockingIOError:
            return
        except OSError:
            received = b""
        closing.drained += len(received)
        if not received or closing.drained >= closing.most:
            self._end_early(closing)

    def _end_early(self, closing: _Closing) -> None:
        """Close a connection of the heap before its deadline. It stays in the heap, which drops
        the closed ones at once when they outnumber the others: each costs one look."""
        if closing.closed:
            return
        self._end(closing)
        self._ended += 1
        if 2 * self._ended > len(self._closing):
            self._closing = [waiting for waiting in self._closing if not waiting.closed]
            heapq.heapify(self._closing)
            self._ended = 0

    def _end(self, closing: _Closing) -> None:
        if closing.closed:
            return
        closing.closed = True
        with contextlib.suppress(OSError, ValueError, KeyError):
            self._poller.unregister(closing.sock)
        with contextlib.suppress(OSError):
            closing.sock.close()
        self._closed()
