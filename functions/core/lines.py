"""Output as lines, in bounded memory, however the producer wrote it.

A trial may print a gigabyte, or a single line of hundreds of megabytes (a progress bar that
never ends its line, a dumped array). Readers split raw bytes into lines themselves, as text
files would (``\\n``, ``\\r\\n`` and ``\\r``), and cut a line longer than ``max_line``
characters (a mebibyte: a JSON line of a model's predictions fits) into pieces: no line, and so
no reader, ever holds more than that. Each reader parses each piece as a line, so a cut falls
where it splits no ``name=value``: just before the last name followed by ``=`` or ``:`` (spaces
around them included, as Katib's rule and Keras' ``loss: 0.3`` have them) within
:data:`CUT_SLACK` characters of the limit, so that name goes with its value; with none that
near, just after the last separator there (a character that is none of a name's or a number's,
``\\w|+-.=``: a space, a comma, a brace...); with none either, just before the last ``=``
there (the name stays with one piece, its value with the next, and neither reads as a metric);
with none of them, at the limit, which then splits a name or a number 4 KiB long at least. So a
value is read whole or not at all, never as a different one.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Generator, Iterable, Iterator

MAX_LINE = 1024 * 1024
"""Characters of one line; a longer line arrives in pieces of at most this size."""

CUT_SLACK = 4 * 1024
"""How far before :data:`MAX_LINE` a piece may end, at a separator, so no value is split."""

_BREAK = re.compile(r"\r\n|\r|\n")
_FEED = re.compile(r"\r?\n")
"""What ends a line that keeps its carriage returns (``returns``)."""
_LAST_SEPARATOR = re.compile(r"[^\w|+\-.=][\w|+\-.=]*\Z")
_NAME = re.compile(r"(?<![\w|+\-.=:])(?<![=:]\s)[A-Za-z_][\w|+\-.]*\s*[=:]")
"""A name with its ``=`` or ``:`` (a metric's start): not the tail of a longer name, nor a value
run together with the name after it (``acc=0.9loss=0.3``)."""


def bounded_lines(chunks: Iterable[bytes], max_line: int = MAX_LINE, returns: bool = False) -> Iterator[str]:
    """Lines (with their ``\\n``) from chunks of UTF-8 bytes; undecodable bytes are replaced.
    The unfinished line is searched for a line break only where it grew, so output without
    line breaks costs time in proportion to its length, whatever the size of its chunks. With
    ``returns``, a lone ``\\r`` is a character of its line, not a break (a log shown as a
    terminal shows it: :mod:`functions.core.overwrites`); the lines are as long either way."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    breaks = _FEED if returns else _BREAK
    pending, scanned = "", 0
    for chunk in chunks:
        pending += decoder.decode(chunk)
        pending, scanned = yield from _complete_lines(pending, scanned, max_line, breaks)
    pending += decoder.decode(b"", final=True)
    pending, _ = yield from _complete_lines(pending, scanned, max_line, breaks)
    if pending:
        yield pending[:-1] + "\n" if pending.endswith("\r") and not returns else pending


def _complete_lines(text: str, scanned: int, max_line: int,
                    breaks: re.Pattern[str] = _BREAK) -> Generator[str, None, tuple[str, int]]:
    """Yield the complete (or overlong) lines of ``text``, whose first ``scanned`` characters
    hold no line break (but a last ``\\r``, which may begin a ``\\r\\n``); return the
    unfinished rest and how many of its characters are searched so."""
    start = 0
    while True:
        end = start + max_line + 1
        match = breaks.search(text, max(start, scanned), end)
        if match is not None and not (match.group() == "\r" and match.end() == len(text)):
            yield text[start:match.start()] + "\n"
            start = match.end()
            continue
        scanned = match.start() if match is not None else min(end, len(text) - text.endswith("\r"))
        if len(text) - start <= max_line:
            return text[start:], scanned - start
        cut = _cut(text, start, max_line)
        yield text[start:cut]
        start = cut


def _cut(text: str, start: int, max_line: int) -> int:
    """Where the piece of an overlong line from ``start`` ends: just before its last name with
    its ``=`` or ``:`` within :data:`CUT_SLACK` of the limit, else just after its last separator
    there, else just before its last ``=`` there, else at the limit."""
    limit = start + max_line
    low = max(start + 1, limit - CUT_SLACK)
    names = [match.start() for match in _NAME.finditer(text, low, limit) if match.start() > low]
    if names:
        return names[-1]
    separator = _LAST_SEPARATOR.search(text, low, limit)
    if separator is not None:
        return separator.start() + 1
    equals = text.rfind("=", low, limit)
    return equals if equals >= 0 else limit
