"""The HTTP server of the tests' loopback stand-ins."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any

CLOSE_WAIT = 10.0
"""How long a closing stand-in waits for each of its handlers to end, once their connections
are shut down (a handler that does not read or write its connection ends only when it returns)."""


class StandInServer(ThreadingHTTPServer):
    """A threaded HTTP server for which a client gone mid-request (a killed process, a client's
    timeout, a kept-alive connection reset) is no error: the real servers these stand in for
    log nothing of it either. Any other failure of a handler prints its traceback, as
    ``socketserver``'s does.

    Closed (:meth:`server_close`), it also ends the connections still open, as a server that
    goes away does: a client's kept-alive connection held its handler's thread, blocked reading
    the next request, for the rest of the test process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: dict[Any, threading.Thread | None] = {}
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open[request] = None
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open[request] = threading.current_thread()
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.pop(request, None)

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:
            held = list(self._open.items())
        for request, _ in held:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)
        for _, thread in held:
            if thread is not None and thread is not threading.current_thread():
                thread.join(CLOSE_WAIT)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
