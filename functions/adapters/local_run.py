"""One trial attempt run by the local executor, as its threads share it.

The thread that launched the attempt, the one waiting for its end, the one reading its progress
and whoever stops it all share this record. It lives apart from the executor so that the reading
of progress (:mod:`functions.adapters.local_progress`) depends on the record, not on the executor.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field

from functions.adapters import process_tree
from functions.adapters.local_marks import Mark
from functions.core.launch import TrialLaunch

Key = tuple[str, str, int, int]


@dataclass
class LocalRun:
    launch: TrialLaunch
    process: subprocess.Popen[bytes] | None = None
    stopped: bool = False
    timed_out: bool = False
    interrupted: bool = False
    """Killed because the executor shut down: recorded so, never reported."""
    done: threading.Event = field(default_factory=threading.Event)
    woken: threading.Event = field(default_factory=threading.Event)
    """Set once the attempt is stopped or its executor closes: a wait before its process starts
    (for space to copy its checkpoint folder) ends then."""
    streamer: threading.Thread | None = None
    mark: Mark | None = None
    """What the attempt's metrics file or event folder held before it started (:mod:`.local_marks`)."""
    since: float | None = None
    """A second before the process started, in clock ticks since boot: no process of the
    attempt is older (:func:`functions.adapters.process_tree.end`)."""
    floor: int | None = None
    """This process's peak memory as the attempt's process started, which that process's
    measured peak counts (:mod:`functions.adapters.local_exits`)."""

    @property
    def started(self) -> subprocess.Popen[bytes]:
        """The attempt's process: asked for only once the executor has started it
        (:meth:`functions.adapters.local_attempts.LocalAttempts._start`)."""
        if self.process is None:
            raise RuntimeError(f"trial {self.launch.number} attempt {self.launch.attempt} has not started")
        return self.process

    @property
    def marker(self) -> str:
        return process_tree.marker(self.launch.uid, self.launch.number, self.launch.attempt)


def ids(launch: TrialLaunch) -> tuple[str, str, int, int]:
    return launch.study, launch.uid, launch.number, launch.attempt


def attempt_key(launch: TrialLaunch) -> Key:
    """An attempt of a trial of one study: a study made again under the same name is another."""
    return ids(launch)
