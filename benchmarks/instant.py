"""Instant trials through the real control plane, for benchmarks that measure katuna itself.

:class:`InstantExecutor` is an executor adapter whose trials take no time: launching one
reports ``trial.finished`` at once, exactly as a trial process that printed ``loss=<value>``
and exited 0 would, and its output is that line, computed from the trial's parameters. Everything else is the real thing: the handlers,
the dispatcher, the in-process broker and the SQLite store with Optuna's journal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import optuna

from functions.adapters.broker import LocalBroker
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import Event, study_created, trial_finished
from functions.core.launch import TrialLaunch
from functions.core.records import COMPLETED, StudyRecord
from functions.dispatch import Dispatcher
from functions.dispatch_outcomes import PERMANENT_ERROR
from functions.handlers import Deps

Objective = Callable[[Mapping[str, Any]], float]
NOISE = ("epoch progress " * 69)[:1023] + "\n"
"""A loud trial's line of 1 KiB that names no metric."""
REPORT_EVERY = 64
"""A loud trial reports its metric once in this many lines."""


def sphere(params: Mapping[str, Any]) -> float:
    return sum(float(v) ** 2 for v in params.values() if isinstance(v, int | float))


class InstantExecutor:
    """Implements :class:`functions.core.ports.Executor`; a trial ends as it is launched."""

    def __init__(self, publish: Callable[[Event], None], objective: Objective = sphere, noise_bytes: int = 0,
                 second: Objective | None = None) -> None:
        self._publish = publish
        self._objective = objective
        self._second = second
        """A second objective, printed as ``latency=<value>`` after the first, if any."""
        self._noise_bytes = noise_bytes
        """Bytes of lines each trial prints before its objective's final value."""
        self._launched: set[tuple[str, int, int]] = set()
        self.launched = 0

    @staticmethod
    def _key(launch: TrialLaunch) -> tuple[str, int, int]:
        return launch.study, launch.number, launch.attempt

    def launch(self, launch: TrialLaunch) -> None:
        key = self._key(launch)
        if key in self._launched:
            return
        self._launched.add(key)
        self.launched += 1
        self._publish(trial_finished(launch.study, launch.uid, launch.number, launch.attempt, outcome="exited",
                                     exit_code=0))

    def exists(self, launch: TrialLaunch) -> bool:
        return self._key(launch) in self._launched

    def stop(self, launch: TrialLaunch) -> None:
        """Nothing runs long enough to stop."""

    def stop_trials(self, launches: Sequence[TrialLaunch], keep: bool = False) -> None:
        """Nothing runs long enough to stop."""

    def stop_strays(self, stray: Callable[[str, str, int, int], bool], retained: Callable[[str, str], bool],
                    namespaces: Collection[str | None]) -> None:
        """Nothing runs long enough to stray."""

    def last_lines(self, launch: TrialLaunch, keep: bool = False) -> None:
        """None: an instant trial's output is computed again whenever it is read."""
        return None

    def drop_kept(self, study: str, uid: str, place: object) -> None:
        """Nothing is kept once a trial ended."""

    def lingers(self, launch: TrialLaunch) -> bool:
        """False: an ended trial leaves nothing running."""
        return False

    def stop_reads(self) -> None:
        """Nothing to end: a trial's output is one line, made as it is read."""

    def together(self, launches: Sequence[TrialLaunch]) -> AbstractContextManager[None]:
        """Nothing to read: the trials ended as they were launched."""
        return nullcontext()

    def poll(self, launch: TrialLaunch) -> Event | None:
        return None

    def running(self, study: str | None = None) -> int:
        return 0

    def output(self, launch: TrialLaunch) -> Iterator[str]:
        """The line the trial printed: its objective, computed from its parameters (so any
        process can read it, as any process can read a trial's log); for a loud trial, after
        ``noise_bytes`` of lines of 1 KiB (progress text, as a training loop prints), with an
        earlier, worse report (``step=<n> loss=<value>``) every :data:`REPORT_EVERY` lines."""
        value = self._objective(launch.params)
        for number in range(self._noise_bytes // len(NOISE)):
            yield f"step={number} loss={value + 1.0!r}\n" if number % REPORT_EVERY == 0 else NOISE
        latency = "" if self._second is None else f" latency={self._second(launch.params)!r}"
        yield (f"loss={value!r}" if math.isfinite(value) else "loss=nan") + latency + "\n"

    def read_file(self, launch: TrialLaunch, path: str) -> Iterator[str]:
        return iter(())

    def recorded_end(self, launch: TrialLaunch) -> Event | None:
        return None


def definition(name: str, trials: int, algorithm: str = "random", dimensions: int = 2, seed: int = 1,
               parallelism: int = 1) -> dict[str, Any]:
    """A study of ``trials`` instant trials over ``dimensions`` floats in [-5, 5]."""
    names = [f"x{i}" for i in range(dimensions)]
    return {
        "name": name,
        "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": n, "type": "float", "min": -5.0, "max": 5.0} for n in names],
        "algorithm": {"name": algorithm, "seed": seed},
        "parallelism": parallelism,
        "maxTrials": trials,
        "trialTemplate": {"command": ["instant", *(f"${{trialParameters.{n}}}" for n in names)]},
    }


class _Failures:
    """A dispatcher's observer that keeps the handlings that failed for good (a temporary
    error is retried by design)."""

    def __init__(self) -> None:
        self.handlings: list[tuple[str, str, str]] = []

    def handled(self, event_type: str, handler: str, outcome: str, seconds: float) -> None:
        if outcome == PERMANENT_ERROR:
            self.handlings.append((event_type, handler, outcome))


class InstantRunner:
    """The embedded wiring (store, dispatcher, in-process broker) around an instant executor."""

    def __init__(self, db: Path, objective: Objective = sphere, lookahead: int = 0, noise_bytes: int = 0,
                 second: Objective | None = None) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.store = SqliteStore(db)
        self.broker: LocalBroker | None = None
        self.executor = InstantExecutor(lambda event: self.broker.publish(event), objective, noise_bytes, second)
        self.deps = Deps(self.store, self.executor, time.time, lookahead=lookahead)
        self._failures = _Failures()
        self.dispatcher = Dispatcher(self.deps, observer=self._failures)
        self.broker = LocalBroker(self.dispatcher)

    def submit(self, study: dict[str, Any], base_dir: Path) -> StudyRecord:
        from functions.core.validate import parse_study  # a process that only handles events needs none

        record = StudyRecord(parse_study(study), study, str(base_dir), f"uid-{study['name']}",
                             created_at=time.time())
        return self.store.add_study(record)

    def run(self, name: str) -> StudyRecord:
        """Deliver events until the study ends; a study that ends other than completed, or a
        handler that failed on the way, is an error, not a figure."""
        record = self.store.get_study(name)
        self.broker.publish(study_created(name, record.uid))
        self.broker.run(until=lambda: self.store.get_study(name).terminal, interval=3600.0)
        ended = self.store.get_study(name)
        if ended.status != COMPLETED or self._failures.handlings:
            raise RuntimeError(f"study {name} ended {ended.status} ({ended.reason}), handlers failing: "
                               f"{self._failures.handlings[:3]}")
        return ended

    def close(self) -> None:
        self.store.close()
