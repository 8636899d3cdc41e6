"""The HTTP server of the tests' loopback stand-ins."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class StandInServer(ThreadingHTTPServer):
    """A threaded HTTP server for which a client gone mid-request (a killed process, a client's
    timeout, a kept-alive connection reset) is no error: the real servers these stand in for
    log nothing of it either. Any other failure of a handler prints its traceback, as
    ``socketserver``'s does."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
