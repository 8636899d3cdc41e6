"""The writes of one request to a WSGI app held in one transaction of katuna's database: all
of them land, or none. For ``katuna optuna-dashboard``, whose notes are several writes each.

optuna-dashboard saves a note as several writes (its version, then its text in parts, then
the parts of a longer earlier text emptied). Made one at a time, they could stop part way (the
database busy past the busy timeout between two of them): the version raised over the old text,
which the page then takes for an edit made elsewhere. In one transaction, the write lock is
taken before anything is read, so the version the note is checked against is the one it
replaces, too. A transaction that cannot begin or commit is answered ``503`` with the reason
(``{"reason": ...}``, which optuna-dashboard's page shows), and an answer other than 2xx
undoes whatever the request wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from functions.adapters.web.wsgi_guard import answer
from functions.core.errors import KatunaError


class _Undone(Exception):
    """The app answered other than 2xx: what the request wrote is rolled back."""


def whole_writes(app: WSGIApplication, writes: Callable[[str, str], bool],
                 transaction: Callable[[], AbstractContextManager[object]], undone: str) -> WSGIApplication:
    """``app`` with each request that ``writes(method, path)`` served inside ``transaction()``
    (which raises katuna's error for a database that cannot take it: answered ``503``, the
    reason after ``undone``), its answer held until the transaction ends."""

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not writes(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")):
            return app(environ, start_response)
        held: list = []
        body: list[bytes] = []
        try:
            with transaction():
                held, body = _served(app, environ)
                if not held[0].startswith("2"):
                    raise _Undone
        except _Undone:
            pass
        except KatunaError as exc:
            return answer(start_response, "503 Service Unavailable", {"reason": f"{undone}: {exc}"})
        start_response(*held)
        return body

    return serve


def _served(app: WSGIApplication, environ: WSGIEnvironment) -> tuple[list, list[bytes]]:
    """The status and headers ``app`` answered ``environ`` with, and its whole body."""
    held: list = []
    body: list[bytes] = []

    def hold(status: str, headers: list[tuple[str, str]], exc_info=None) -> Callable[[bytes], object]:
        held[:] = [status, headers]
        return body.append

    result = app(environ, hold)
    try:
        body.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return held, body
