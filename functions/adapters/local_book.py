"""The attempts a :class:`functions.adapters.local_executor.LocalExecutor` knows of: their runs
by attempt (the latest ended ones kept, so a launch delivered twice starts nothing), those
still active (what stops and counts look at), the attempts this process claimed, and the ends
:meth:`~functions.adapters.local_executor.LocalExecutor.poll` answers (those that could not be
published, and those of the latest attempts katuna stopped).

Kept apart from the attempts' steps (:mod:`functions.adapters.local_attempts`): every read and
change of these is made here, under one lock, and none starts, waits for or kills a process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TypeVar

from functions.adapters.local_run import Key, LocalRun, attempt_key, ids
from functions.core.events import Event, trial_finished
from functions.core.launch import TrialLaunch

T = TypeVar("T")

STOPPED_ENDS = 1_000
"""Ends of attempts katuna stopped that :meth:`functions.adapters.local_executor.LocalExecutor.poll` keeps
answering."""

ENDED_KEPT = 1_000
"""Ended attempts whose runs the executor keeps, the latest: a launch of one again (an event
delivered twice) starts nothing. A ``katuna serve`` worker runs trials for weeks, and kept every
run it ever made (some KB each) until it stopped."""


class Book:
    """The runs of one executor's attempts and the ends it keeps; ``closed`` tells whether the
    executor closed (then no attempt is registered, and no stopped end kept)."""

    def __init__(self, closed: Callable[[], bool]) -> None:
        self._closed = closed
        self._lock = threading.Lock()
        self._runs: dict[Key, LocalRun] = {}
        self._ended_keys: deque[Key] = deque()
        """The ended attempts of :attr:`_runs`, oldest first: past :data:`ENDED_KEPT`, the oldest go."""
        self._active: dict[Key, LocalRun] = {}
        """The runs that have not ended: what stops and counts look at, however many ended."""
        self._unreported: dict[Key, Event] = {}
        """Ends that could not be published: :meth:`end_of` answers them."""
        self._stopped_ends: OrderedDict[Key, Event] = OrderedDict()
        """The ends of the latest attempts katuna stopped (at most :data:`STOPPED_ENDS`), as
        ``interrupted``: :meth:`end_of` answers them too, for a trial whose verdict was rolled back."""
        self._claimed: set[Key] = set()
        """Attempts this executor claimed: their owner is this process, known without a read."""

    def register(self, launch: TrialLaunch) -> LocalRun | None:
        """The new run of the attempt, active; None where the attempt is known already (a launch
        delivered twice) or the executor closed."""
        key = attempt_key(launch)
        with self._lock:
            if key in self._runs or self._closed():
                return None
            run = self._runs[key] = self._active[key] = LocalRun(launch)
        return run

    def forget(self, key: Key) -> None:
        """Drop the run of an attempt that could not begin (its log not made)."""
        with self._lock:
            del self._runs[key], self._active[key]

    def knows(self, key: Key) -> bool:
        """Whether the attempt runs here, or ended here among the latest."""
        with self._lock:
            return key in self._runs

    def claim(self, key: Key) -> None:
        """Note that this process claimed the attempt (its owner file names it)."""
        self._claimed.add(key)

    def claimed(self, key: Key) -> bool:
        return key in self._claimed

    def ended(self, run: LocalRun) -> None:
        """The attempt is no longer active; the end of one katuna stopped is kept for
        :meth:`end_of` (:meth:`_keep_stopped_end`), under the lock, as it stops being active: no
        one sees it neither running nor ended. Past :data:`ENDED_KEPT` ended attempts, the
        oldest's run goes."""
        key = attempt_key(run.launch)
        with self._lock:
            if run.stopped and not self._closed():
                self._keep_stopped_end(run)
            self._active.pop(key, None)
            self._ended_keys.append(key)
            while len(self._ended_keys) > ENDED_KEPT:
                oldest = self._ended_keys.popleft()
                if oldest not in self._active:
                    self._runs.pop(oldest, None)
                    self._claimed.discard(oldest)

    def _keep_stopped_end(self, run: LocalRun) -> None:
        """Keep the end of an attempt katuna stopped, the latest :data:`STOPPED_ENDS` only: its
        trial's verdict is stored, or rolled back and found by the next reconcile pass, within
        seconds."""
        event = trial_finished(*ids(run.launch), outcome="interrupted", message=(
            "katuna stopped it (its trial judged, or its study ending), and that verdict was not stored"))
        self._stopped_ends[attempt_key(run.launch)] = event
        while len(self._stopped_ends) > STOPPED_ENDS:
            self._stopped_ends.popitem(last=False)

    def unreported(self, launch: TrialLaunch, event: Event) -> None:
        """Keep the attempt's end that could not be published, for :meth:`end_of`."""
        with self._lock:
            self._unreported[attempt_key(launch)] = event

    def end_of(self, launch: TrialLaunch) -> Event | None:
        """The attempt's end that could not be published, else the one kept as katuna stopped it."""
        with self._lock:
            key = attempt_key(launch)
            return self._unreported.get(key) or self._stopped_ends.get(key)

    def to_stop(self, selected: Callable[[str, str, int, int], bool]) -> list[LocalRun]:
        """The active runs ``selected(study, uid, number, attempt)`` accepts; the unpublished
        ends it accepts are dropped (their attempts are being stopped)."""
        with self._lock:
            runs = [run for key, run in self._active.items() if selected(*key)]
            for key in [key for key in self._unreported if selected(*key)]:
                del self._unreported[key]
        return runs

    def active(self) -> list[LocalRun]:
        with self._lock:
            return list(self._active.values())

    def keys(self) -> list[Key]:
        """``(study, uid, number, attempt)`` of every active attempt."""
        with self._lock:
            return list(self._active)

    def count(self, study: str | None = None) -> int:
        """How many attempts (of one study, or of all) are active."""
        with self._lock:
            return sum(1 for s, _, _, _ in self._active if study in (None, s))

    def leaders(self) -> set[int]:
        """The main processes of active attempts, whose exit status their own threads wait for."""
        with self._lock:
            return {run.process.pid for run in self._active.values() if run.process is not None}

    def when_idle(self, look: Callable[[], T]) -> T | None:
        """What ``look`` answers, asked while no attempt is active and none can be registered
        (an attempt is registered before its process starts); None, unasked, while one is."""
        with self._lock:
            if self._active:
                return None
            return look()
