"""A running trial's progress read from its log a piece at a time, as Katib's metrics collector
reads it: each report of the objective a step, counted from the start of the output (unless
the line names its ``step`` or ``epoch`` and the study reads named steps).

The Kubernetes API has no offset into a log: a reader asks for the lines written since a time
(whole seconds), each behind the time the container runtime wrote it (``timestamps``). The
:class:`Cursor` is where the last read stopped: the pod, the time of the last line taken, how
many lines of that very time were taken (lines written together may share a time), and the
reports counted so far. A read that starts a little early skips what the cursor covers, and
the count goes on where it stopped. Each report carries the cursor just past its line; the
``trial.progress`` handler stores it with the trial's intermediate values, so what the next
read skips is what the store holds, whichever process reads, however often.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from typing import Any

from functions.core.file_collector import file_lines
from functions.core.launch import TrialLaunch
from functions.core.metrics import StepCounter, parse_json_lines, parse_text

NANOS = 1_000_000_000


@dataclass(frozen=True)
class RunningLog:
    """What one read of a running trial's log returned: the pod it is of, and its lines, each
    behind the time it was written (the last one may be cut short by the read's limit)."""

    pod: str
    lines: list[str]


@dataclass(frozen=True)
class Cursor:
    """How far a pod's log has been read: up to the ``same``-th line written at ``at``
    (nanoseconds since the epoch), with ``reports`` reports of the objective counted, and
    whether one of them named its step."""

    pod: str
    at: int
    same: int
    reports: int
    named: bool = False

    @property
    def since(self) -> float:
        """Seconds since the epoch of the last line taken: a read from then on misses nothing."""
        return self.at / NANOS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> Cursor | None:
        """The cursor ``raw`` holds, or None when it holds none (an event from elsewhere)."""
        if not isinstance(raw, Mapping):
            return None
        pod, named = raw.get("pod"), raw.get("named")
        counts = [raw.get(key) for key in ("at", "same", "reports")]
        numbers = [n for n in counts if isinstance(n, int) and not isinstance(n, bool) and n >= 0]
        if not isinstance(pod, str) or len(numbers) != len(counts) or not isinstance(named, bool):
            return None
        at, same, reports = numbers
        return cls(pod, at, same, reports, named)

    def passes(self, other: Cursor | None) -> bool:
        """Whether this cursor should replace ``other``: it is further into the same pod's log,
        or into another pod's (the attempt's pod was replaced)."""
        return other is None or other.pod != self.pod or (self.at, self.same) > (other.at, other.same)


@dataclass(frozen=True)
class Report:
    """An intermediate value of the objective at a step, and the cursor just past its line."""

    step: int
    value: float
    cursor: Cursor


def written_at(stamp: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time with up to nine fraction digits (as the
    kubelet writes it), or None when ``stamp`` is no such time."""
    whole, dot, fraction = stamp.partition(".")
    zone = ""
    if dot:
        digits = len(fraction) - len(fraction.lstrip("0123456789"))
        fraction, zone = fraction[:digits], fraction[digits:]
        if not 1 <= len(fraction) <= 9:
            return None
    try:
        moment = datetime.fromisoformat((whole + zone).replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp()) * NANOS + int(fraction.ljust(9, "0") or 0)


def pieces(lines: Iterable[str]) -> Iterator[tuple[int, int, str, bool]]:
    """``(at, same, text, ends)`` of each piece of each line in ``lines`` (as a read with
    ``timestamps`` gives them, an overlong line cut into pieces by the reader): the line's
    position, its time and how many lines before it had that time (a line written before the
    line before it counts as written at that line's time: the runtime writes stdout and stderr
    apart), the piece's text (the time and the line break taken off), and whether the piece ends
    its line. The position is the line's from its first piece, so a line of any length streams.
    A line with no time ahead of it is no line: its pieces are left out."""
    at = same = 0
    written: int | None = None
    fresh = True
    for piece in lines:
        if fresh:
            stamp, _, piece = piece.partition(" ")
            written = written_at(stamp)
            if written is not None:
                at, same = (written, 1) if written > at else (at, same + 1)
        fresh = piece.endswith("\n")
        if written is not None:
            yield at, same, piece.rstrip("\n"), fresh


def returns_cut(texts: Iterable[str]) -> list[str]:
    """The pieces of a line read with its carriage returns kept (a read with ``timestamps``,
    where only the text after a line break has a time ahead of it), cut at each one: a progress
    bar redrawn in place, then a report after its last ``\r``, is read as a reader of the log
    without times cuts it (:func:`~functions.core.lines.bounded_lines`), and as a local trial's
    output is read, each piece a line of its own."""
    return [part for text in texts for part in text.split("\r")]


def complete_lines(lines: Iterable[str]) -> Iterator[tuple[int, int, list[str]]]:
    """``(at, same, pieces)`` of each line of a running log's read (:func:`pieces`) that ended
    within it: the last one may be cut short by the read's limit, and is read on next time."""
    taken: list[str] = []
    for at, same, text, ends in pieces(lines):
        taken.append(text)
        if ends:
            yield at, same, taken
            taken = []


def reports(launch: TrialLaunch, log: RunningLog, cursor: Cursor | None) -> list[Report]:
    """The reports of the objective in ``log`` past ``cursor`` (all of them, counted from the
    first, when the cursor is of another pod or there is none). NaN and the infinities are
    reports like any value: the pruner judges them. A line written before the line read before
    it (the runtime writes stdout and stderr apart) counts as written at that line's time."""
    progress = launch.progress
    if progress is None:
        return []
    if cursor is None or cursor.pod != log.pod:
        cursor = Cursor(log.pod, 0, 0, 0)
    counter = StepCounter(progress.metric, progress.every_report)
    counter.reports, counter.named = cursor.reports, cursor.named
    parse = parse_json_lines if progress.format == "json" else partial(parse_text, filters=progress.filters)
    found: list[Report] = []
    for at, same, texts in complete_lines(log.lines):
        if (at, same) <= (cursor.at, cursor.same):
            continue
        texts = returns_cut(texts)
        lines = list(file_lines(texts)) if launch.metrics_file is not None else texts
        for step, value in counter.steps(parse(lines, [progress.metric])):
            found.append(Report(step, value, Cursor(log.pod, at, same, counter.reports, counter.named)))
    return found
