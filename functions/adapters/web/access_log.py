"""gunicorn's access log as katuna writes it: what a request's line may show, and nothing a
client can make look like something else.

A request's path is the client's text, percent-decoded: ``/studies/x%0A127.0.0.1 - - ...`` would
write a second line of the client's choosing (a request that never happened, a 201 where it got
a 401), and ``%1b[...`` terminal escapes that repaint whatever shows the log. No token is needed
to send one. So each control character of a line's values is written as its escape (``\\n``, ``\\x1b``),
the way Python writes it in a string; gunicorn escapes the quotes itself.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

FORMAT = '%(h)s %(l)s - %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"'
"""gunicorn's default access log line without what may hold a credential sent the wrong way:
the Basic auth user name (``%(u)s``; ``curl -u TOKEN:`` sends the token there), the query
string (``%(r)s`` is the whole request line, ``?token=...`` included; ``%(U)s`` is the path
alone) and the referrer, a page's URL with its query. katuna reads a token only from
``Authorization: Bearer``, which is never logged."""

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters that end a line or steer a terminal: C0, DEL, C1, and Unicode's line and
paragraph separators."""


def printable(text: str) -> str:
    """``text`` with each control character written as its escape (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


QUERY = re.compile(r"\?[^\s'\"]*")
"""A query string in a line gunicorn writes of a request (``?token=...`` up to the next space or quote)."""


def unqueried(value: Any) -> Any:
    """``value`` with each query string in it written ``?…``, where it is text."""
    return QUERY.sub("?…", value) if isinstance(value, str) else value


class AccessLogger(Logger):
    """gunicorn's logger, whose access lines hold no control character a client sent, and whose
    error lines hold no query string: gunicorn writes a request line it could not parse, and the
    path of a request it failed, whole (``Invalid request from ip=...: 'GET /studies?token=...'``)."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        return {key: printable(value) if isinstance(value, str) else value
                for key, value in super().atoms(resp, req, environ, request_time).items()}

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().warning(unqueried(msg), *map(unqueried, args), **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().exception(unqueried(msg), *map(unqueried, args), **kwargs)
