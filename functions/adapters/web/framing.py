"""Where an HTTP/1.1 request ends in the bytes received so far, so that ``katuna serve``'s worker
can gather a whole request without a thread (:class:`~functions.adapters.web.client_socket.ClientSocket`).

A head past :data:`GATHER_LIMIT` is refused (``431``) as it is gathered, no thread waiting for
the rest. A request whose end these bytes cannot tell cheaply is handed to a thread sooner, which
reads the rest under the client's deadline: a body past the body
limit (refused ``413`` at once, its bytes thrown away by the worker's poller), a chunked body
whose client waits for ``100 Continue``, and framing that gunicorn refuses (a bad chunk size, both ``Content-Length`` and ``Transfer-Encoding``).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

GATHER_LIMIT = 64 * 1024
"""The most of a request's head gathered before a thread takes it: a head larger than this
(gunicorn allows 100 fields of 8 KiB) is read by the thread, with the deadline."""
CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*(\d{1,19})[ \t]*(?:\r|$)")
CHUNKED = re.compile(rb"\ntransfer-encoding:[ \t]*chunked[ \t]*(?:\r|$)")
CONTINUE = re.compile(rb"\nexpect:[ \t]*100-continue[ \t]*(?:\r|$)")
CONTINUE_ANSWER = b"HTTP/1.1 100 Continue\r\n\r\n"
"""What tells a client waiting for it to send its body (RFC 9110 section 15.2.1)."""
SIZE_LINE = re.compile(rb"([0-9a-fA-F]{1,16})[ \t]*(?:;[^\r\n]*)?\r\n")
"""A chunk's size line: its size in hex, then any extensions."""
SIZE_LINE_LIMIT = 1024
"""The longest chunk size line (with its extensions) gathered; a longer one goes to the thread."""


@dataclass
class Walk:
    """How far the walk of a chunked body got, past its last whole chunk: each call for more
    bytes of the same request goes on from there, so a body sent a chunk at a time costs its
    length once, not once for every piece that came."""

    position: int = 0
    carried: int = 0
    """Bytes of the chunks walked."""
    framing: int = 0
    """Bytes of their size lines and line ends."""
    refused: str | None = None
    """Why the walk gave up before the body's end: ``large`` (its chunks carry more than the body
    limit) or ``framing`` (framing katuna does not gather: a bad or 1 KiB size line, 64 KiB of
    framing or trailer); the worker then refuses the request unread, no thread waiting for it."""


def serve_unchunked(environ: dict[str, Any], body: bytes) -> None:
    """Serve ``body``, read whole from a chunked request, as a body of its length. ``chunked``
    leaves the request's transfer codings; any other (``gzip, chunked``) stays named, for the
    body to be refused as one katuna does not decode, never taken as plain."""
    others = [c.strip() for c in environ.pop("HTTP_TRANSFER_ENCODING", "").split(",")
              if c.strip() and c.strip().lower() != "chunked"]
    if others:
        environ["HTTP_TRANSFER_ENCODING"] = ", ".join(others)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input"] = io.BytesIO(body)


def request_size(data: bytes | bytearray, body_limit: int, walk: Walk | None = None) -> int | None:
    """How many bytes from the request's start a thread waits for: its head, and a body of at
    most ``body_limit`` bytes (``Content-Length``, whether or not the client waits for ``100
    Continue`` before sending it, or chunked with its trailer); None while that cannot be told yet: the head, or a chunked body,
    is not all here (and within the bounds above). ``walk`` keeps a chunked body's walk from one
    call to the next, ``data`` having grown."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return GATHER_LIMIT if len(data) >= GATHER_LIMIT else None
    fields = bytes(data[:end]).lower()
    body_start = end + 4
    length = CONTENT_LENGTH.search(fields)
    encodings = fields.count(b"\ntransfer-encoding:")
    if length is not None and encodings:
        return body_start
    if b"\nexpect:" in fields and not CONTINUE.search(fields):
        return body_start
    if length is not None:
        size = int(length.group(1))
        return body_start + size if size <= body_limit else body_start
    if encodings == 1 and CHUNKED.search(fields):
        return chunked_end(data, body_start, body_limit, walk or Walk())
    return body_start


def head_too_large(data: bytes | bytearray) -> bool:
    """Whether ``data``, the start of a request, holds :data:`GATHER_LIMIT` bytes and no end of
    its head: refused, never handed to a thread to wait for the rest."""
    return len(data) >= GATHER_LIMIT and data.find(b"\r\n\r\n") < 0


def waits_to_continue(data: bytes | bytearray) -> bool:
    """Whether the request whose start is ``data`` has a whole head saying its client waits for
    ``100 Continue`` before it sends its body."""
    end = data.find(b"\r\n\r\n")
    return end >= 0 and CONTINUE.search(bytes(data[:end]).lower()) is not None


def chunked_end(data: bytes | bytearray, start: int, body_limit: int, walk: Walk) -> int | None:
    """Where a chunked body that begins at ``start`` ends (past its last chunk and its trailer);
    None while it is not all here. ``start`` itself where a thread should read it instead: its
    framing is bad, its chunks carry more than ``body_limit`` bytes, or its framing takes more
    than :data:`GATHER_LIMIT` bytes besides. The walk goes on from ``walk``, which it advances."""
    walk.position = max(walk.position, start)
    while True:
        line = SIZE_LINE.match(data, walk.position)
        if line is None:
            rest = data[walk.position:walk.position + SIZE_LINE_LIMIT + 1]
            return None if b"\n" not in rest and len(rest) <= SIZE_LINE_LIMIT else _refused(walk, "framing", start)
        size = int(line.group(1), 16)
        carried, framing = walk.carried + size, walk.framing + len(line.group(0)) + 2
        if carried > body_limit or framing > GATHER_LIMIT:
            return _refused(walk, "large" if carried > body_limit else "framing", start)
        if size == 0:
            end_of_trailer = _trailer_end(data, line.end(), start)
            return _refused(walk, "framing", start) if end_of_trailer == start else end_of_trailer
        end = line.end() + size
        if len(data) < end + 2:
            return None
        if data[end:end + 2] != b"\r\n":
            return _refused(walk, "framing", start)
        walk.position, walk.carried, walk.framing = end + 2, carried, framing


def _refused(walk: Walk, why: str, start: int) -> int:
    """``start``, the walk having given up for ``why`` (:attr:`Walk.refused`)."""
    walk.refused = why
    return start


def _trailer_end(data: bytes | bytearray, begins: int, start: int) -> int | None:
    """Where the trailer after the last chunk ends (its empty line), from ``begins``; None while
    more is to come, ``start`` when it is longer than :data:`GATHER_LIMIT`."""
    position = begins
    while position - begins <= GATHER_LIMIT:
        end = data.find(b"\r\n", position)
        if end < 0:
            return None if len(data) - begins <= GATHER_LIMIT else start
        if end == position:
            return end + 2
        position = end + 2
    return start
