"""The last lines of a cluster trial's log, kept in the store as katuna ends the trial.

When katuna ends a running trial itself (its study stopped or done, the trial pruned, or failed
past its timeout) it deletes the trial's Job with its pods, or suspends it (``retain``), and the
log the Kubernetes API served goes with the pods. So, just before, it reads the last
:data:`KEPT_BYTES` of the attempt's log and keeps them (a :class:`KeptTail`); a person asking
for the log once the pods are gone is served those, behind a line of katuna's saying what they
are (:func:`kept_lines`), and, where nothing could be kept, told that katuna deleted the Job
rather than left to blame its ``ttlSecondsAfterFinished`` (:func:`nothing_kept`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from functions.core.launch import TrialLaunch
from functions.core.lines import bounded_lines

KEPT_BYTES = 64 * 1024
"""Bytes of an attempt's log kept at most, its last: enough for the traceback or the last
epochs a person looks for, small enough for a study of thousands of trials to keep each's."""

KEPT_LINES = 2_000
"""Lines the kept bytes are read from (the API's ``tailLines``, which counts a line longer than
:data:`RECORD_BYTES` as several): what is read of a pod's log of any length stays small, while
lines of around :data:`KEPT_BYTES` / 2,000 bytes still fill it."""

RECORD_BYTES = 16 * 1024
"""Bytes of a line the container runtime writes to one record of the log file at most
(containerd's ``max_container_log_line_size`` default): a longer line takes several records, and
the API's ``tailLines`` counts records, so a tail may begin inside a line."""


@dataclass(frozen=True)
class KeptTail:
    """What was kept of an attempt's log as katuna stopped its workload: ``text``, its last
    lines (empty when none could be read), whether they are the whole log (``whole``), and what
    katuna did to the workload (``stopped``: ``deleted Job demo-0``)."""

    text: str
    stopped: str
    whole: bool = False


def records(size: int) -> int:
    """The records the runtime writes a line of ``size`` bytes (its line break left out) to."""
    return max(1, math.ceil(size / RECORD_BYTES))


def kept_text(chunks: Iterable[bytes], asked: int) -> tuple[str, bool]:
    """What is kept of a tail of a log read with ``tailLines`` ``asked`` (its raw bytes, as the
    API streams them): its last :data:`KEPT_BYTES` as lines that keep their carriage returns
    (so the kept log is shown as a terminal shows it where asked, as the pods' own log is:
    :func:`~functions.core.overwrites.overwritten_lines`), and whether that is the whole log.
    Where all ``asked`` records came, the log may go on before them, and their first line may be
    the end of a line begun earlier (the API gives no sign of it): it is left out, and the tail
    is not the whole log."""
    counted = _Records()
    text, whole = last_bytes(bounded_lines(counted.chunks(chunks), returns=True), KEPT_BYTES)
    if counted.records < asked:
        return text, whole
    return (_after_line(text, counted.first) if whole else text), False


def _after_line(text: str, line: bytes) -> str:
    """``text``, lines from the start of the log, without the log's first ``line`` (its raw
    bytes, its carriage returns kept as ``text``'s are)."""
    return "".join(split_lines(text)[sum(1 for _ in bounded_lines([line], returns=True)):])


def split_lines(text: str) -> list[str]:
    """``text``'s lines, each with its ``\n``: only a line feed ends one, so a ``\r`` (a
    progress bar redrawn) and any other character ``str.splitlines`` breaks at stay in their line."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


class _Records:
    """Counts the runtime's records in a log's raw bytes: one a line, a line over
    :data:`RECORD_BYTES` in several. Only ``\n`` ends a line there, as the runtime writes it: a
    ``\r`` (a progress bar redrawn) is a character of its line, which a reader splits at. Keeps
    the first line's bytes too (:attr:`first`), up to :data:`KEPT_BYTES`: only a tail that short
    may have to leave it out."""

    def __init__(self) -> None:
        self.records = 0
        self.first = b""
        self._size = 0
        self._first_ended = False

    def chunks(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self._keep_first(chunk)
            *ended, rest = chunk.split(b"\n")
            for line in ended:
                self.records += records(self._size + len(line))
                self._size = 0
            self._size += len(rest)
            yield chunk
        self.records += records(self._size) if self._size else 0

    def _keep_first(self, chunk: bytes) -> None:
        if self._first_ended or len(self.first) > KEPT_BYTES:
            return
        line, ends, _ = chunk.partition(b"\n")
        self.first += line + ends
        self._first_ended = bool(ends)


def last_bytes(lines: Iterable[str], limit: int = KEPT_BYTES) -> tuple[str, bool]:
    """The whole lines of the last ``limit`` bytes of ``lines``, held in bounded memory, and
    whether they are all the lines (none was left out); a last line longer than ``limit`` alone
    is kept from its last ``limit`` bytes' first whole character."""
    kept: deque[str] = deque()
    size, whole = 0, True
    for line in lines:
        kept.append(line)
        size += len(line.encode())
        while size > limit and len(kept) > 1:
            size -= len(kept.popleft().encode())
            whole = False
    if size <= limit:
        return "".join(kept), whole
    return kept[0].encode()[-limit:].decode(errors="ignore"), False


def kept_lines(tail: KeptTail, launch: TrialLaunch) -> Iterator[str]:
    """The kept lines of the attempt's log, behind a line of katuna's saying what they are."""
    what = f"attempt {launch.attempt}'s log" if tail.whole else \
        f"the last {len(tail.text.encode()):,} bytes of attempt {launch.attempt}'s log"
    rest = "" if tail.whole else "; the lines before them are not kept"
    yield f"[katuna: {what}, kept when katuna {tail.stopped} as the trial ended{rest}]\n"
    yield from split_lines(tail.text)


def nothing_kept(tail: KeptTail, launch: TrialLaunch) -> str:
    """Why an attempt katuna ended has no log to show: its pods went with the workload katuna
    stopped, and no line of its log could be kept first (none was written, or the read failed)."""
    return (f"no log of trial {launch.number} attempt {launch.attempt} is left: katuna {tail.stopped} with its pods "
            "as the trial ended, and no line of its log could be kept before (the read failed, or it wrote none)")
