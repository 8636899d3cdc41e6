"""The HTTP server of ``katuna optuna-dashboard``: the standard library's WSGI server, which
serves only this machine's own user and bounds how long one client may hold it.

optuna-dashboard has no sign-in, and every account of the machine can connect to loopback,
while the studies it shows (their parameters, results and notes) are this user's. So, as
``katuna serve`` does without its token (:mod:`.peers`), a connection of another account is
answered ``403`` and closed as it is accepted, before anything is read from it. The server
answers one connection at a time, so a client that sent part of a request and then nothing
would hold it for ever: a request must be whole within ``KATUNA_CLIENT_TIMEOUT`` seconds of
its accept, and no write waits longer than that for the client to take the answer.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from functions.adapters.web import peers


class _Bounded(socket.socket):
    """An accepted connection whose reads end at its deadline, and whose writes each wait at
    most ``limit`` seconds."""

    limit: float = 15.0
    deadline: float = 0.0

    @classmethod
    def adopt(cls, connection: socket.socket, limit: float) -> _Bounded:
        """``connection`` (which this takes over), to be read within ``limit`` seconds from now."""
        adopted = cls(connection.family, connection.type, connection.proto, fileno=connection.detach())
        adopted.limit, adopted.deadline = limit, time.monotonic() + limit
        adopted.settimeout(limit)
        return adopted

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(self._late())
        super().settimeout(min(self.limit, remaining))
        try:
            return super().recv_into(buffer, nbytes, flags)
        except TimeoutError:
            raise TimeoutError(self._late()) from None
        finally:
            super().settimeout(self.limit)

    def _late(self) -> str:
        return f"the client did not send its request within {self.limit:g} s (KATUNA_CLIENT_TIMEOUT)"


class _Handler(WSGIRequestHandler):
    """wsgiref's handler, which says in one line why a late client's connection was closed."""

    def handle(self) -> None:
        try:
            super().handle()
        except TimeoutError as late:
            self.log_error("%s", late)

    def address_string(self) -> str:
        return str(self.client_address[0])


def dashboard_server(client_timeout: float) -> dict[str, Any]:
    """The server and handler classes to serve the dashboard with (as bottle's ``run`` takes
    them): connections of other accounts turned away, each request due within ``client_timeout``."""

    class Server(WSGIServer):
        def get_request(self) -> tuple[socket.socket, Any]:
            connection, address = self.socket.accept()
            return _Bounded.adopt(connection, client_timeout), address

        def verify_request(self, request: Any, client_address: Any) -> bool:
            caller = peers.refused_caller(request)
            if caller is None:
                return True
            peers.turn_away(request, "optuna-dashboard has no sign-in, so katuna optuna-dashboard serves only its "
                                     f"own user on this machine (uid {os.geteuid()}), not a caller {caller}")
            return False

    return {"server_class": Server, "handler_class": _Handler}
