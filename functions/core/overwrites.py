"""Log text as a terminal shows it: a carriage return (``\\r``) not followed by a line feed
takes the cursor back to the start of its line, and what follows is written over the line. A
progress bar (tqdm, Keras) redraws its line so at each update: read with each ``\\r`` a line
break, a log lists every update; shown as a terminal shows it, a line holds its last state.

A line shows the text after its last ``\\r`` that some text follows, or its text before any
``\\r`` where none does (a ``\\r`` just before a line feed, or at the log's end, erases
nothing). A terminal would also show what that last text did not cover of the text it
overwrote; progress bars rewrite their whole line, so for them it is the same. Terminal
escape sequences are left as they are (:func:`functions.core.log_reads.without_escapes`
removes them).

Metrics are not read so: the collector takes each ``\\r`` as a line break
(:mod:`functions.core.lines`), so every ``name=value`` a progress line printed is read,
the values it overwrote included.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from functions.core.lines import MAX_LINE


def overwritten(text: str) -> str:
    """``text``, a window of a log whose line breaks are ``\\n`` (``\\r\\n`` read as one), with
    the carriage returns of each line applied, in time and memory in proportion to its length.
    What the windows before and after decide is kept for them: a first line that overwrites
    the line the window before left unfinished begins with ``\\r``, and a last line that ends
    in ``\\r`` (what the next window brings overwrites it, unless it is a line feed) keeps it."""
    lines = text.split("\n")
    return "\n".join(_line(line, index == 0, index == len(lines) - 1) for index, line in enumerate(lines))


def _line(line: str, first: bool, last: bool) -> str:
    """One line of :func:`overwritten`."""
    if "\r" not in line:
        return line
    body = line.rstrip("\r")
    cut = body.rfind("\r")
    shown = ("\r" if first else "") + body[cut + 1:] if cut >= 0 else body
    return shown + ("\r" if last and len(body) < len(line) else "")


def overwritten_lines(pieces: Iterable[str], max_line: int = MAX_LINE) -> Iterator[str]:
    """The lines of ``pieces`` (lines that keep their carriage returns, each ending in
    ``\\n`` but a piece of a longer line and the last: :func:`~functions.core.lines.bounded_lines`
    with ``returns``) as a terminal shows them. Only the line being read is held, its shown text
    at most ``max_line`` characters: a longer one without a ``\\r`` comes in pieces, as it was
    read. So a progress line redrawn a million times costs time in proportion to its length,
    and memory for one state of it."""
    held, back = "", False
    for piece in pieces:
        ends = piece.endswith("\n")
        text = piece[:-1] if ends else piece
        body = text.rstrip("\r")
        cut = body.rfind("\r")
        if cut >= 0:
            held = body[cut + 1:]
        elif body:
            held = body if back else held + body
        back = (back and not body) or len(body) < len(text)
        if ends:
            yield held + "\n"
            held, back = "", False
        elif len(held) > max_line:
            yield held
            held = ""
    if held:
        yield held
