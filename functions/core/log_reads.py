"""A trial's log read in part, for the API and the dashboard: its two ends, or a window of it
from a byte offset on.

A log may hold gigabytes, and one request must not cost more than what it returns: where the
log is a local file it is read at the offsets asked for (:mod:`functions.adapters.local_log_reads`),
never from its start. Offsets are bytes of the log. A window never begins or ends inside a
UTF-8 character, so each piece decodes whole, and the offset after it is where the next begins.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, groupby
from operator import itemgetter
from typing import NamedTuple, Protocol

from functions.core.disruptions import MESSAGE_CHARS, Disruption
from functions.core.errors import LogGone, OutputLost
from functions.core.kept_tails import KeptTail, kept_lines, nothing_kept
from functions.core.launch import TrialLaunch
from functions.core.live_log import LiveLogs, LogMark, after_mark
from functions.core.overwrites import overwritten, overwritten_lines

_CONTINUATION = 0b1100_0000
"""Masks the top two bits: UTF-8 bytes ``10xxxxxx`` continue a character, any other starts one."""


class LogWindow(NamedTuple):
    """Log text from a byte offset: the offset after it, whether more of the log follows
    already, how many bytes came before where it began (0 unless read from the end), and where
    the next poll may go on from without reading the log from its start
    (:mod:`functions.core.live_log`; None where it may not)."""

    text: str
    offset: int
    more: bool
    skipped: int
    mark: LogMark | None = None


class LogReads(Protocol):
    """A trial attempt's log, read in part. Each read raises ``LogGone`` when the attempt has no
    log to read (none yet, or none left): only the reader knows whether the attempt has ended."""

    def ends(self, launch: TrialLaunch, head: int, tail: int, overwrite: bool = False) -> Iterator[str]:
        """The log's lines, or, when it is longer than ``head`` and ``tail`` bytes together, its
        first ``head`` and last ``tail`` bytes with a note of what was left out between them.
        Each ``\\r`` breaks a line, as metrics are read; with ``overwrite``, the lines are as a
        terminal shows them (:func:`~functions.core.overwrites.overwritten_lines`)."""

    def window(self, launch: TrialLaunch, offset: int, limit: int, mark: LogMark | None = None) -> LogWindow:
        """At most ``limit`` bytes of the log from ``offset`` on; ``-1`` reads its last ``limit``.
        A ``mark`` the window ending at ``offset`` carried may spare reading what comes before."""


def char_start(data: bytes) -> int:
    """How many bytes at the start of ``data`` continue a character begun before it (at most 3)."""
    count = 0
    while count < min(len(data), 3) and data[count] & _CONTINUATION == 0x80:
        count += 1
    return count


def whole_chars(data: bytes) -> int:
    """The length of ``data`` without a character it ends in the middle of (one its writer has
    not finished, or a window cut); bytes that start no character are kept."""
    for back in range(1, min(len(data), 4) + 1):
        byte = data[-back]
        if byte & _CONTINUATION != 0x80:
            needed = 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4 if byte >> 3 == 0b11110 else 1
            return len(data) - back if needed > back else len(data)
    return len(data)


def as_text(data: bytes) -> str:
    """Log bytes as a terminal shows them (:func:`~functions.core.overwrites.overwritten`: a
    line redrawn with ``\\r`` shows its last state; ``\\r\\n`` ends a line as ``\\n`` does),
    without terminal escape sequences (:func:`without_escapes`); undecodable bytes are replaced."""
    return overwritten(without_escapes(data.decode("utf-8", errors="replace").replace("\r\n", "\n")))


_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[\]PX^_][^\x07\x1b\n]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-OQ-WYZ\\`-~]")
"""A terminal's escape sequences: colours and cursor moves (CSI), strings with what they hold
(OSC's window titles and links, DCS's requests, SOS, PM, APC), and the others (a character
set's, a reset)."""

_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]")
"""The control characters a page would show as boxes or not at all (a bell, a backspace, a
shift out, an escape that begins no sequence, C1's): all but the tab and the line breaks."""


def without_escapes(text: str) -> str:
    """``text`` without the escape sequences a training logger colours its output with, nor
    other control characters, which a page would show as raw control characters."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


SEQUENCE_MOST = 256
"""How far before a window's cut an escape sequence the cut may fall inside is looked for (a
colour code takes a few bytes, a hyperlink's the length of its address)."""

_BYTE_ESCAPES = re.compile(_ESCAPES.pattern.encode())


def uncut(piece: bytes) -> int:
    """The length of ``piece``, a window cut at its limit, without an escape sequence or a
    ``\\r\\n`` the cut may fall inside (the last escape of its last :data:`SEQUENCE_MOST` bytes,
    when it begins no sequence that ends before the cut, or a ``\\r`` last): the next window
    reads it whole, so no page shows a bare escape and then the code's tail as text
    (``32mINFO``), nor a line break twice."""
    last = piece.rfind(b"\x1b", max(len(piece) - SEQUENCE_MOST, 1))
    if last > 0 and b"\n" not in piece[last:]:
        whole = _BYTE_ESCAPES.match(piece, last)
        if whole is None or whole.end() == len(piece):
            return last
    return len(piece) - 1 if piece.endswith(b"\r") and len(piece) > 1 else len(piece)


def window_of(data: bytes, offset: int, limit: int, from_end: bool) -> LogWindow:
    """The window of the bytes ``data`` read at ``offset`` (``limit + 1`` of them when more
    follow): it begins after a character cut at its start and ends before one cut at its end
    (and, when more follow, before an escape sequence or line break it cuts: :func:`uncut`)."""
    lead = char_start(data) if offset else 0
    piece = data[lead:limit]
    piece = piece[:whole_chars(piece)]
    if len(data) > limit:
        piece = piece[:uncut(piece)]
    return LogWindow(as_text(piece), offset + lead + len(piece), len(data) > limit, offset + lead if from_end else 0)


def note(left_out: int, head: int, tail: int) -> str:
    """The line that stands where the middle of a long log is left out."""
    return (f"[katuna: {left_out} bytes left out here; the first {head} and the last {tail} bytes "
            "of the log are shown]\n")


def lost_run(pod: str, disruption: Disruption | None, replacement: str) -> str:
    """The line that stands in a log a person reads (not the output metrics are read from)
    between what a pod lost to a disruption printed and the log of the pod that replaced it,
    which ran the trial again from its start: so the lost run's last lines are not read as
    leading into the next run's first. Its words are katuna's (no ``name=value`` of its own)."""
    why = "disrupted" if disruption is None else disruption.cause + (
        f": {' '.join(disruption.message.split())[:MESSAGE_CHARS]}" if disruption.message.strip() else "")
    return f"[katuna: the run in pod {pod} was lost ({why}); pod {replacement} ran the trial again from its start]\n"


def earlier_run(pod: str, restarts: int, code: int | None, reason: str | None) -> str:
    """The line that stands in a log a person reads before the log of the run of the trial's
    container in ``pod`` before its current one, which its kubelet ran again in place
    (``restartPolicy: OnFailure``, ``restarts`` times so far): the kubelet keeps that run's
    log only, so any before it is said to be gone."""
    ended = f"exit code {code}" + (f", {reason}" if reason else "")
    gone = "" if restarts == 1 else f"; the {restarts - 1} run(s) before it are not kept by the kubelet"
    return (f"[katuna: the trial's container in pod {pod} was run again in place ({restarts} restart(s)); "
            f"its previous run's log follows, which ended ({ended}){gone}]\n")


def this_run(pod: str) -> str:
    """The line that stands after the previous run's log (:func:`earlier_run`), before the current run's."""
    return f"[katuna: the current run of the trial's container in pod {pod} follows]\n"


def joined(head: Iterable[str], left_out: int, head_size: int, tail: Iterable[str], tail_size: int) -> Iterator[str]:
    """The head's lines, then, when bytes were left out, the note on a line of its own and the tail's lines."""
    last = "\n"
    for line in head:
        last = line
        yield line
    if left_out:
        yield ("" if last.endswith("\n") else "\n") + note(left_out, head_size, tail_size)
    yield from tail


LIVE_READ_BYTES = 1024 * 1024
"""Bytes of a running container's log one poll reads at most from a mark (what was written in
the seconds before it, and since): a trial printing faster than that between two polls has its
window read from the offset, which the page, more than a window behind, reads from the end."""


class StreamedLogReads:
    """A log that can only be read as a stream of lines from its start (pods' logs from the
    Kubernetes API): each read goes through it, bounded in memory, not in work. The window's
    offsets are bytes of the UTF-8 text of its lines. Once the stream is gone (the pods deleted
    as katuna ended the trial), what ``kept`` has of it is read instead (:mod:`functions.core.kept_tails`)."""

    def __init__(self, output: Callable[[TrialLaunch], Iterator[str]],
                 kept: Callable[[TrialLaunch], KeptTail | None], live: LiveLogs | None = None) -> None:
        self._output = output
        self._kept = kept
        self._live = live

    def ends(self, launch: TrialLaunch, head: int, tail: int, overwrite: bool = False) -> Iterator[str]:
        """Whole lines: those of the first ``head`` bytes, then those of the last ``tail``, held
        while the stream goes on (memory is bounded by ``tail`` plus one line). The stream's
        lines keep their carriage returns: each is a line break here, unless ``overwrite``
        shows the head and the tail each as a terminal shows it."""
        parts = _ends(self._left(launch), head, tail)
        if not overwrite:
            return (line.replace("\r", "\n") for _, line in parts)
        return chain.from_iterable(overwritten_lines(line for _, line in part) for _, part in groupby(parts, itemgetter(0)))

    def _left(self, launch: TrialLaunch) -> Iterator[str]:
        """The log's lines, ending where the rest of the output is lost (what the lost runs of
        a Job printed stays in sight); when there is none at all, the lines kept of it as
        katuna stopped the attempt, else ``LogGone``."""
        return (line for line, _ in self._marked(launch, False))

    def _marked(self, launch: TrialLaunch, marks: bool = True) -> Iterator[tuple[str, LogMark | None]]:
        """:meth:`_left`'s lines, each with the mark past it (:meth:`LiveLogs.marked`) where
        ``marks`` asks for them and the log has them."""
        lines = self._live.marked(launch) if marks and self._live is not None else \
            ((line, None) for line in self._output(launch))
        shown = False
        try:
            for line, mark in lines:
                shown = True
                yield line, mark
        except OutputLost as lost:
            if shown:
                return
            tail = self._kept(launch)
            if tail is None:
                raise LogGone(str(lost)) from lost
            if not tail.text:
                raise LogGone(nothing_kept(tail, launch)) from lost
            yield from ((line, None) for line in kept_lines(tail, launch))

    def window(self, launch: TrialLaunch, offset: int, limit: int, mark: LogMark | None = None) -> LogWindow:
        """The window from ``offset``: with a ``mark``, the lines written since it alone, where
        they can be read so (:func:`~functions.core.live_log.after_mark`), else read from the
        log's start. A window that ends where the log ends, after a line of the container run
        still written to, carries the mark past it."""
        if mark is not None and offset >= 0 and self._live is not None:
            read = self._live.since(launch, mark, LIVE_READ_BYTES)
            followed = None if read is None else after_mark(read, mark, limit)
            if followed is not None:
                return LogWindow(as_text(followed.text.encode()), offset + len(followed.text.encode()), followed.more,
                                 0, followed.mark)
        if offset < 0:
            return self._last(launch, limit)
        data = bytearray()
        position, last = 0, None
        for line, mark_past in self._marked(launch):
            raw, last = line.encode(), mark_past
            if position + len(raw) > offset:
                data += raw[max(offset - position, 0):]
            position += len(raw)
            if len(data) > limit:
                break
        window = window_of(bytes(data[:limit + 1]), offset, limit, False)
        return window._replace(mark=last) if window.offset == position and not window.more else window

    def _last(self, launch: TrialLaunch, limit: int) -> LogWindow:
        """The window of the log's last ``limit`` bytes, in one pass over the stream, holding
        only the lines that may end within them."""
        kept: deque[bytes] = deque()
        kept_size = total = 0
        last = None
        for line, mark_past in self._marked(launch):
            raw, last = line.encode(), mark_past
            kept.append(raw)
            kept_size += len(raw)
            total += len(raw)
            while kept_size - len(kept[0]) >= limit:
                kept_size -= len(kept.popleft())
        start = max(total - limit, 0)
        window = window_of(b"".join(kept)[kept_size - (total - start):], start, limit, True)
        return window._replace(mark=last) if window.offset == total else window


def _ends(lines: Iterable[str], head: int, tail: int) -> Iterator[tuple[int, str]]:
    """The lines of ``lines`` that :meth:`StreamedLogReads.ends` serves, each with its part
    (0 the head, 1 the note of what was left out, 2 the tail)."""
    shown = 0
    kept: deque[str] = deque()
    kept_size = left_out = 0
    for line in lines:
        size = len(line.encode())
        if shown + size <= head and not kept:
            shown += size
            yield 0, line
            continue
        kept.append(line)
        kept_size += size
        while kept_size > tail:
            dropped = len(kept.popleft().encode())
            kept_size -= dropped
            left_out += dropped
    if left_out:
        yield 1, note(left_out, shown, kept_size)
    yield from ((2, line) for line in kept)
