"""gunicorn's access log as katuna writes it: what a request's line may show, and nothing a
client can make look like something else.

A line is Apache's combined format, then three fields of katuna's: the CloudEvent's id and type
(``-`` for a request that is no event; the binary mode's ``ce-id`` and ``ce-type`` headers, or
the structured event's attributes once katuna read it) and the request's duration in
microseconds::

    127.0.0.1 - - [05/Dec/2026:10:26:26 +0000] "POST / HTTP/1.1" 202 0 "-" "Go-http-client/1.1" 6c1f… dev.katuna.trial.finished 5321

A request's path is the client's text, percent-decoded: ``/studies/x%0A127.0.0.1 - - ...`` would
write a second line of the client's choosing (a request that never happened, a 201 where it got
a 401), and ``%1b[...`` terminal escapes that repaint whatever shows the log. No token is needed
to send one. So each control character of a line's values is written as its escape (``\\n``, ``\\x1b``),
the way Python writes it in a string, and in the quoted fields (the path, the referrer, the
user agent) a backslash as ``\\\\`` (gunicorn escapes the quotes, as ``\\"``, but not a
backslash: a user agent of ``x\\" 999 5 "-" "evil" forged.id ...`` would have closed its field
and read as others). With
``KATUNA_LOG_FORMAT=json`` the line is the ``message`` of a JSON line whose ``httpRequest``
holds the same values by name (:mod:`functions.adapters.log_lines`).
"""

from __future__ import annotations

import re
import traceback
from typing import Any

from gunicorn.glogging import Logger

from functions.adapters import log_lines
from functions.adapters.log_lines import printable
from functions.core.log_context import of_event

__all__ = ["FORMAT", "EVENT", "AccessLogger", "printable", "unqueried"]

FORMAT = ('%(h)s %(l)s - %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s" '
          '%(ce_id)s %(ce_type)s %(D)s')
"""Apache's combined line without what may hold a credential sent the wrong way: the Basic
auth user name (``curl -u TOKEN:`` sends the token there) is always ``-``, and the path
(``%(U)s``) and the referrer are written without their query string (``?token=...``). katuna
reads a token only from ``Authorization: Bearer``, which is never logged. Then the event's id
and type, and the duration in microseconds."""

EVENT = "katuna.event"
"""The key of the WSGI environ where the event functions leave the event they read, for its line."""

KEPT = 256
"""Characters kept of an event's id or type, which a client chooses."""

QUERY = re.compile(r"\?[^\s'\"]*")
"""A query string in a line gunicorn writes of a request (``?token=...`` up to the next space or quote)."""


def unqueried(value: Any) -> Any:
    """``value`` with each query string in it written ``?…``, where it is text."""
    return QUERY.sub("?…", value) if isinstance(value, str) else value


QUOTED = ("m", "U", "H", "f", "a")
"""The values :data:`FORMAT` writes between quotes."""


def _quoted(value: str) -> str:
    """``value`` as a quoted field of the line holds it: its backslashes escaped, as Apache
    writes them (gunicorn's ``SafeAtoms`` then escapes its quotes)."""
    return value.replace("\\", "\\\\")


def _printable(atoms: dict[str, Any]) -> dict[str, Any]:
    """The line's values with their control characters escaped (:func:`printable`)."""
    return {key: printable(value) if isinstance(value, str) else value for key, value in atoms.items()}


def _event_atoms(environ: dict[str, Any]) -> dict[str, str]:
    """The request's CloudEvent id and type: its headers (binary mode), else the event the
    functions read (structured mode); ``-`` for neither."""
    event = environ.get(EVENT)
    found = {"ce_id": environ.get("HTTP_CE_ID") or getattr(event, "id", None),
             "ce_type": environ.get("HTTP_CE_TYPE") or getattr(event, "type", None)}
    return {key: str(value)[:KEPT].replace(" ", "%20") if value else "-" for key, value in found.items()}


def _named(event: Any) -> dict[str, Any]:
    """The study and trial the event the functions read names in its data, and the trace it came
    in, fields of a JSON line: one trial's events can be followed through every function that
    handled them, and from the trace that shows them."""
    if event is None:
        return {}
    return {key: value for key, value in of_event(event).items() if key in ("study", "trial", "traceId")}


def _http_request(atoms: dict[str, Any]) -> dict[str, Any]:
    """An access line's values as Cloud Logging's ``httpRequest`` names them."""
    return {"requestMethod": atoms["m"], "requestUrl": atoms["U"], "protocol": atoms["H"], "status": atoms["s"],
            "responseSize": atoms["b"], "referer": atoms["f"], "userAgent": atoms["a"], "remoteIp": atoms["h"],
            "latency": f"{atoms['D'] / 1e6:.6f}s"}


class AccessLogger(Logger):
    """gunicorn's logger, whose access lines hold no control character a client sent, and whose
    error lines hold no query string: gunicorn writes a request line it could not parse, and the
    path of a request it failed, whole (``Invalid request from ip=...: 'GET /studies?token=...'``).
    Both take katuna's log format (:func:`functions.adapters.log_lines.style_gunicorn`)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        log_lines.style_gunicorn(self.error_log, self.access_log)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        return _printable(self._read_atoms(resp, req, environ, request_time))

    def _read_atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        """gunicorn's values of the line, as the client sent them, without their queries."""
        found = super().atoms(resp, req, environ, request_time)
        if found["U"] is None:  # a request gunicorn refused before reading its path: what it read of it
            found["U"] = unqueried(environ.get("RAW_URI")) or "-"
        found["f"] = unqueried(found["f"])
        found.update(_event_atoms(environ))
        return found

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """gunicorn's access line, with its values by name for a JSON line."""
        if not self.access_log_enabled:
            return
        read = self._read_atoms(resp, req, environ, request_time)
        found = _printable(read)
        extra = {log_lines.HTTP_REQUEST: _http_request(found)}
        extra.update({"eventId": found["ce_id"], "eventType": found["ce_type"]} if found["ce_id"] != "-" else {})
        extra.update(_named(environ.get(EVENT)))
        line = {**found, **{key: printable(_quoted(read[key])) for key in QUOTED if isinstance(read.get(key), str)}}
        try:
            self.access_log.info(self.cfg.access_log_format, self.atoms_wrapper_class(line), extra=extra)
        except Exception:
            self.error(traceback.format_exc())

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().warning(unqueried(msg), *map(unqueried, args), **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().exception(unqueried(msg), *map(unqueried, args), **kwargs)
