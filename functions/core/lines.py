"""Output as lines, in bounded memory, however the producer wrote it.

A trial may print a gigabyte, or a single line of hundreds of megabytes (a progress bar that
never ends its line, a dumped array). Readers split raw bytes into lines themselves, as text
files would (``\\n``, ``\\r\\n`` and ``\\r``), and cut a line longer than ``max_line``
characters into pieces: no line, and so no reader, ever holds more than that.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Generator, Iterable, Iterator

from functions.core.errors import OutputLost

MAX_LINE = 64 * 1024
"""Characters of one line; a longer line arrives in pieces of at most this size."""

_BREAK = re.compile(r"\r\n|\r|\n")


def bounded_lines(chunks: Iterable[bytes], max_line: int = MAX_LINE) -> Iterator[str]:
    """Lines (with their ``\\n``) from chunks of UTF-8 bytes; undecodable bytes are replaced."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        pending = yield from _complete_lines(pending, max_line)
    pending += decoder.decode(b"", final=True)
    pending = yield from _complete_lines(pending, max_line)
    if pending:
        yield pending[:-1] + "\n" if pending.endswith("\r") else pending


def _complete_lines(text: str, max_line: int) -> Generator[str, None, str]:
    """Yield the complete (or overlong) lines of ``text``; return the unfinished rest."""
    start = 0
    while True:
        match = _BREAK.search(text, start, start + max_line + 1)
        if match is not None and not (match.group() == "\r" and match.end() == len(text)):
            yield text[start:match.start()] + "\n"
            start = match.end()
        elif len(text) - start > max_line:
            yield text[start:start + max_line]
            start += max_line
        else:
            return text[start:]


def what_is_left(lines: Iterable[str]) -> Iterator[str]:
    """The lines, ending quietly where the rest of the output is lost: a view of a trial's log
    shows what is left (none for a trial whose pods are gone or not yet scheduled)."""
    try:
        yield from lines
    except OutputLost:
        return
