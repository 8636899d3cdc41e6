"""A cluster trial's log followed as it grows, at a cost bounded per poll.

The Kubernetes API has no offset into a pod's log: a window of it from a byte offset
(:class:`~functions.core.log_reads.StreamedLogReads`) goes through the log from its start, up to
the kubelet's 10 MiB file, at every poll of every open page. So a window that ends where the log
ends, in a line of the container run still written to, carries a :class:`LogMark`: the pod, the
container's run (its restart count), the time of its last line and how many lines of that time
came before it (as :mod:`functions.core.log_cursor` counts them). The next poll gives it back, and
only the lines written since are read (``sinceSeconds``, from a little before the mark, with
``timestamps`` and a ``limitBytes``): the lines the mark covers are skipped, the rest appended.
Where the read cannot show that it holds every line after the mark (its first line came after
it: the log was rotated, or the node's clock runs far ahead), or the mark's run is no longer the
log's last (its pod replaced, its container run again), the window is read from the offset as
before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from functions.core.launch import TrialLaunch
from functions.core.log_cursor import complete_lines, pieces

_TOKEN = re.compile(r"([0-9a-zA-Z-]{1,64})\.(\d{1,6})\.(\d{1,20})\.(\d{1,12})")


@dataclass(frozen=True)
class LogMark:
    """Where a page's text of a log ends: after the ``same``-th line written at ``at``
    (nanoseconds since the epoch) of the ``run``-th restart of the trial's container in ``pod``."""

    pod: str
    run: int
    at: int
    same: int

    def token(self) -> str:
        """The mark as the page holds it and gives it back (``mark=``)."""
        return f"{self.pod}.{self.run}.{self.at}.{self.same}"

    @classmethod
    def parse(cls, token: str) -> LogMark | None:
        """The mark ``token`` holds, or None when it holds none."""
        found = _TOKEN.fullmatch(token)
        if found is None:
            return None
        return cls(found[1], int(found[2]), int(found[3]), int(found[4]))


@dataclass(frozen=True)
class LiveRead:
    """A read of a container run's log from a little before a mark: its lines (as the API
    streams them, each behind the time it was written) and whether ``limitBytes`` cut it."""

    lines: list[str]
    cut: bool


class LiveLogs(Protocol):
    """A running cluster trial's log as a person reads it, with the marks a later poll goes on from."""

    def marked(self, launch: TrialLaunch) -> Iterator[tuple[str, LogMark | None]]:
        """The attempt's log as a person reads it, each line with the mark just past it where it
        ends a line of the run of the trial's container in the attempt's last pod (None elsewhere)."""

    def since(self, launch: TrialLaunch, mark: LogMark, limit_bytes: int) -> LiveRead | None:
        """At most ``limit_bytes`` of the mark's container run's log, from a little before the
        mark on; None when that run is not the last of the attempt's log any more, or has no log."""


def marked_lines(pod: str, run: int, lines: Iterable[str]) -> Iterator[tuple[str, LogMark | None]]:
    """The lines of a container run's log read with ``timestamps``, each without its time and
    with the mark past it where it ends a line."""
    for at, same, text, ends in pieces(lines):
        yield (text + "\n", LogMark(pod, run, at, same)) if ends else (text, None)


@dataclass(frozen=True)
class Followed:
    """What a read from a mark adds to the page: the text, the mark past it, whether more followed."""

    text: str
    mark: LogMark
    more: bool


def after_mark(read: LiveRead, mark: LogMark, limit: int) -> Followed | None:
    """The whole lines of ``read`` past ``mark`` that fit in ``limit`` bytes. None when the read
    may not hold every line after the mark (its first line is later than the mark, or it holds
    none), or when it has lines past the mark but none fits (a line over ``limit``, or the read
    cut before reaching past the mark): the window is then read from its offset."""
    taken: list[str] = []
    size, last, more, seen = 0, mark, False, False
    for at, same, texts in complete_lines(read.lines):
        if not seen and at > mark.at:
            return None
        seen = True
        if (at, same) <= (mark.at, mark.same):
            continue
        text = "".join(texts) + "\n"
        if size + len(text.encode()) > limit:
            more = True
            break
        taken.append(text)
        size += len(text.encode())
        last = LogMark(mark.pod, mark.run, at, same)
    more = more or read.cut
    if not seen or (more and not taken):
        return None
    return Followed("".join(taken), last, more)
