"""katuna's log lines: one line per record, with its time, level, logger and process id, as
text or as JSON (``KATUNA_LOG_FORMAT``), katuna's own loggers at ``KATUNA_LOG_LEVEL``.

A collector reads a line at a time: a record's line ends and control characters are written as
their escapes (a traceback is part of its record's one line), so neither a client's text nor
an exception can forge or split a line. A JSON line holds ``time``, ``severity`` (the field
Cloud Logging and most collectors take the level from: on GKE every line on stderr that is not
JSON with it counts as ERROR), ``logger``, ``pid``, ``message``, and where the call gave them the
study, trial and event it is about (:mod:`functions.core.log_context`), which a text line gives
as ``name=value`` after its message. A line that may repeat
for as long as a condition lasts (a database that stays unusable, a client that keeps sending
malformed requests or a refused token) is written once a minute at most, word for word
(:class:`Repeats`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from functions.core.log_context import CONTEXT

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

HTTP_REQUEST = "httpRequest"
"""The field of an access line, as Cloud Logging names a request's method, path, status and so on."""

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters that end a line or steer a terminal: C0, DEL, C1, and Unicode's line and
paragraph separators."""

REPEATING = ("katuna.runtime", "katuna.oidc", "katuna.web", "gunicorn.error")
"""The loggers whose lines may come once a request or once a second for as long as a condition
lasts (the broker thread's retries of an unusable database, refused delivery tokens and senders,
gunicorn's malformed requests): :class:`Repeats` holds back their repeats. Every other line is
about one event, trial or study, and is written."""

OURS = "_katuna"
"""The attribute marking the handler :func:`configure` installed (replaced, never doubled)."""


def printable(text: str) -> str:
    """``text`` with each control character written as its escape (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


def _whole(record: logging.LogRecord, formatter: logging.Formatter, context: str = "") -> str:
    """The record's message and ``context``, its traceback (if any) after them."""
    message = record.getMessage() + context
    if record.exc_info:
        message += "\n" + formatter.formatException(record.exc_info)
    if record.stack_info:
        message += "\n" + formatter.formatStack(record.stack_info)
    return message


def _time(record: logging.LogRecord) -> str:
    """The record's time in UTC, RFC 3339 with milliseconds."""
    return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class TextLines(logging.Formatter):
    """``time level logger pid message``, the message on the same line, escaped, then what the
    record is about as ``name=value`` (:data:`CONTEXT`: ``study=s trial=17 eventId=...``), before
    any traceback: ``grep trial=17`` finds every line about a trial."""

    def format(self, record: logging.LogRecord) -> str:
        context = "".join(f" {key}={_word(getattr(record, key))}" for key in CONTEXT if hasattr(record, key))
        return (f"{_time(record)} {record.levelname} {record.name} {record.process} "
                f"{printable(_whole(record, self, context))}")


_WORD = re.compile(r"[\w.:/@+\-]+")
"""A value a text line writes as it is; any other is written as a JSON string, so that no value
(a client's study name or event id) reads as another ``name=value``."""


def _word(value: object) -> str:
    text = str(value)
    return text if _WORD.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class JsonLines(logging.Formatter):
    """One JSON object per line: ``time``, ``severity``, ``logger``, ``pid``, ``message`` and the
    record's context (:data:`CONTEXT`, :data:`HTTP_REQUEST`)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": _time(record), "severity": record.levelname, "logger": record.name, "pid": record.process,
                "message": _whole(record, self)}
        line.update({key: getattr(record, key) for key in (*CONTEXT, HTTP_REQUEST) if hasattr(record, key)})
        return json.dumps(line, ensure_ascii=False, default=str).translate(_SEPARATORS)


_SEPARATORS = {0x2028: "\\u2028", 0x2029: "\\u2029", 0x85: "\\u0085"}
"""Characters JSON leaves as they are that some readers take for a line end."""


class TerminalLines(logging.Formatter):
    """``warning: message``, as a command's own warnings read, for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {_whole(record, self)}"


class Repeats(logging.Filter):
    """Lets a message of the ``loggers`` through at most once per ``window`` seconds; the next
    one let through after that says how many were held back. Keyed by logger, level and the
    whole message, so that distinct messages are all written; at most ``keep`` are remembered."""

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic, keep: int = 1000,
                 loggers: tuple[str, ...] = REPEATING) -> None:
        super().__init__()
        self.window, self._clock, self._keep, self._loggers = window, clock, keep, loggers
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name not in self._loggers:
            return True
        message = record.getMessage()
        key, now = (record.name, record.levelno, message), self._clock()
        with self._lock:
            first, held = self._seen.pop(key, (None, 0))
            if first is not None and now - first < self.window:
                self._seen[key] = (first, held + 1)
                return False
            self._seen[key] = (now, 0)
            while len(self._seen) > self._keep:
                del self._seen[next(iter(self._seen))]
        if held:
            record.msg, record.args = f"{message} ({held} more like it in the {self.window:g} s before not logged)", ()
        return True


class Stderr(logging.StreamHandler):
    """A handler writing to ``sys.stderr`` as it is when a record comes (as Python's last resort
    does), not as it was when the handler was made."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Kept as ``sys.stderr``, whatever ``logging`` sets."""


def configure(log_format: str, level: str) -> logging.Handler:
    """Write every record of WARNING and up, and katuna's own from ``level``, to stderr in
    ``log_format``, a repeating message (:data:`REPEATING`) at most once a minute. Done
    once where the service starts; a second call replaces the first's handler."""
    handler = Stderr()
    handler.setFormatter(JsonLines() if log_format == "json" else TextLines())
    handler.addFilter(Repeats())
    _install(handler)
    logging.getLogger("katuna").setLevel(level)
    return handler


def for_terminal() -> None:
    """A command run by a person (``katuna run``, ``katuna show``): katuna's warnings and
    errors read ``warning: ...``, as the command's own do, and nothing below WARNING."""
    handler = Stderr()
    handler.setFormatter(TerminalLines())
    _install(handler)
    logging.getLogger("katuna").setLevel(logging.WARNING)


def _install(handler: logging.Handler) -> None:
    setattr(handler, OURS, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, OURS, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def installed() -> logging.Handler | None:
    """The handler :func:`configure` installed, if any."""
    return next((h for h in logging.getLogger().handlers if getattr(h, OURS, False)), None)


def style_gunicorn(error_log: logging.Logger, access_log: logging.Logger) -> None:
    """Give gunicorn's own error lines the format and repeat filter of katuna's, and its access
    lines too where that format is JSON (a text access line is the access format itself,
    :mod:`functions.adapters.web.access_log`). Nothing before :func:`configure` is called."""
    ours = installed()
    if ours is None or isinstance(ours.formatter, TerminalLines):
        return
    for handler in error_log.handlers:
        handler.setFormatter(ours.formatter)
        for found in ours.filters:
            handler.addFilter(found)
    if isinstance(ours.formatter, JsonLines):
        for handler in access_log.handlers:
            handler.setFormatter(ours.formatter)
