"""The executor port on this machine: each trial attempt a subprocess, never a shell.

Output (stdout and stderr) goes to a per-attempt log file. Everything an attempt starts is
contained (:mod:`functions.adapters.process_tree`): a timeout, a stop or a shutdown ends the
whole tree (SIGTERM, a grace period, then SIGKILL), and so does the main process's own end,
before that end is reported. Ends are reported as ``trial.finished`` events through
``publish``, retried with back-off while it fails; an end that could not be reported is
answered by :meth:`LocalExecutor.poll`. Ends that katuna caused by stopping are not reported.

A trial's environment is minimal (:mod:`functions.adapters.trial_env`): ``PATH`` (the
service's Python's bin directory first), ``HOME``, ``USER``, ``LOGNAME``, ``LANG``, ``LC_*``,
``TZ``, ``TMPDIR``, ``PYTHONUNBUFFERED=1``, the names listed in ``KATUNA_TRIAL_ENV`` (never
``KATUNA_API_TOKEN``), the study's ``env``, ``KATUNA_STUDY``, ``KATUNA_STUDY_UID``,
``KATUNA_TRIAL``, ``KATUNA_ATTEMPT``, ``KATUNA_OBJECTIVE`` and the attempt's marker
``KATUNA_ATTEMPT_ID``; nothing else of the service's environment.

Several executors may share one log directory (the workers of ``katuna serve``): beside each
log an ``.owner`` file names the process that runs the attempt (see
:mod:`functions.adapters.owners`), so every executor knows whether an attempt exists.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO, cast

from functions.adapters import process_tree
from functions.adapters.file_follow import follow
from functions.adapters.owners import Owners
from functions.adapters.trial_ends import PUBLISH_DELAYS, finished_event, publish_with_retries
from functions.adapters.trial_env import trial_environment
from functions.adapters.workers import Workers
from functions.core import tfevents
from functions.core.errors import InvalidStudy, Problem, StorageFull
from functions.core.events import Event, trial_finished, trial_progress
from functions.core.launch import Progress, TrialLaunch
from functions.core.lines import bounded_lines
from functions.core.metrics import StepCounter, parse_json_lines, parse_text

CHUNK = 64 * 1024
"""Bytes read at a time from a trial's output."""

log = logging.getLogger("katuna.executor")

Key = tuple[str, str, int, int]


@dataclass
class _Run:
    launch: TrialLaunch
    process: subprocess.Popen[bytes] | None = None
    stopped: bool = False
    timed_out: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    streamer: threading.Thread | None = None
    since: float | None = None
    """A second before the process started, in clock ticks since boot: no process of the
    attempt is older (:func:`functions.adapters.process_tree.end`)."""

    @property
    def started(self) -> subprocess.Popen[bytes]:
        """The attempt's process: asked for only once :meth:`LocalExecutor._start` has started it."""
        if self.process is None:
            raise RuntimeError(f"trial {self.launch.number} attempt {self.launch.attempt} has not started")
        return self.process

    @property
    def marker(self) -> str:
        return process_tree.marker(self.launch.uid, self.launch.number, self.launch.attempt)


def _ids(launch: TrialLaunch) -> tuple[str, str, int, int]:
    return launch.study, launch.uid, launch.number, launch.attempt


def _new_file(path: Path) -> BinaryIO:
    """``path`` opened for writing, emptied, or created readable by this user only."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def _key(launch: TrialLaunch) -> Key:
    """An attempt of a trial of one study: a study made again under the same name is another."""
    return _ids(launch)


def _streamed(launch: TrialLaunch) -> bool:
    """Whether progress is read from the output as it is printed (not from a metrics file)."""
    return launch.progress is not None and launch.metrics_file is None


class LocalExecutor:
    """Implements :class:`functions.core.ports.Executor` with local processes.

    ``pass_env`` names variables of the service's environment that trials get too
    (``KATUNA_TRIAL_ENV``); ``publish_delays`` are the waits before each new try of reporting an
    end. The executor makes its process a child subreaper.
    """

    def __init__(self, log_dir: Path, publish: Callable[[Event], None], kill_grace: float = 3.0,
                 pass_env: Iterable[str] = (), publish_delays: Iterable[float] = PUBLISH_DELAYS) -> None:
        self.log_dir = Path(log_dir)
        self._publish = publish
        self._kill_grace = kill_grace
        self._pass_env = tuple(pass_env)
        self._publish_delays = tuple(publish_delays)
        self._runs: dict[Key, _Run] = {}
        self._active: dict[Key, _Run] = {}
        """The runs that have not ended: what stops and counts look at, however many ended."""
        self._unreported: dict[Key, Event] = {}
        """Ends that could not be published: :meth:`poll` answers them."""
        self._lock = threading.Lock()
        self._closed = False
        self._owners = Owners(self.log_dir)
        self._claimed: set[Key] = set()
        """Attempts this executor claimed: their owner is this process, known without a read."""
        self._workers = Workers()
        self._sweepers: list[threading.Thread] = []
        """Threads ending what dead processes left behind, which a shutdown waits for."""
        process_tree.become_subreaper()

    def log_path(self, study: str, number: int, attempt: int) -> Path:
        return self.log_dir / study / f"{number}.{attempt}.log"

    def _owner_path(self, launch: TrialLaunch, attempt: int | None = None) -> Path:
        return self.log_path(launch.study, launch.number, attempt or launch.attempt).with_suffix(".owner")

    def launch(self, launch: TrialLaunch) -> None:
        """Register the attempt and start its process now (a trial slot is refilled without a
        hand-off between threads); a worker thread then waits for it to end. Processes left by
        an earlier run of the trial whose owner died (a service killed with ``kill -9``) are
        ended first, on the worker thread. The owner file is written after the start, off the
        path to it, and before the caller's transaction makes the attempt visible to other
        processes."""
        if not launch.argv:
            raise InvalidStudy([Problem("trialTemplate.primaryContainerName", "names no container of the trialSpec "
                                        "that could run as a local process")])
        key = _key(launch)
        with self._lock:
            if key in self._runs or self._closed:
                return
            run = self._runs[key] = self._active[key] = _Run(launch)
        try:
            log = self._open_log(launch)
        except BaseException:
            with self._lock:
                del self._runs[key], self._active[key]
            raise
        if self._abandoned(launch):
            self._workers.submit(partial(self._start_after_strays, run, log))
        else:
            self._workers.submit(self._start(run, log))
        self._owners.claim(self._owner_path(launch))
        self._claimed.add(key)

    def _abandoned(self, launch: TrialLaunch) -> bool:
        """Whether an attempt of the trial (this one included) was claimed by a process that died
        (an attempt claimed here was not: its owner file names this process, which lives)."""
        return any(self._owners.abandoned(self._owner_path(launch, attempt))
                   for attempt in range(1, launch.attempt + 1)
                   if (launch.study, launch.uid, launch.number, attempt) not in self._claimed)

    def _start_after_strays(self, run: _Run, log: BinaryIO) -> None:
        """End every process an earlier run of the trial left behind, then start the attempt."""
        self._end_strays(run.launch)
        if run.stopped or self._closed:
            log.close()
            self._ended(run)
            return
        self._start(run, log)()

    def _end_strays(self, launch: TrialLaunch) -> None:
        """End every process of every attempt of the trial."""
        prefix = process_tree.marker(launch.uid, launch.number, 0)[:-1]
        process_tree.end(None, lambda marker: marker.startswith(prefix), self._kill_grace)

    def _start(self, run: _Run, log: BinaryIO) -> Callable[[], None]:
        """Start the attempt's process; the job that waits for its end."""
        launch = run.launch
        run.since = process_tree.boot_ticks() - os.sysconf("SC_CLK_TCK")
        try:
            run.process = subprocess.Popen(
                launch.argv, cwd=launch.working_dir, stdin=subprocess.DEVNULL,
                env=trial_environment(os.environ, self._pass_env, launch.env, (process_tree.MARKER, run.marker)),
                stdout=subprocess.PIPE if _streamed(launch) else log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except (OSError, ValueError) as exc:
            message = f"{launch.argv[0]!r}: {getattr(exc, 'strerror', None) or exc}"
            with log:
                log.write(f"katuna: could not start {message}\n".encode())
            return partial(self._failed_to_start, run, message)
        if not _streamed(launch):
            log.close()
        return partial(self._watch, run, log if _streamed(launch) else None)

    def _open_log(self, launch: TrialLaunch) -> BinaryIO:
        """The attempt's log, new and readable by the service's user only (a trial's output may
        hold what its author would not show other users of the machine), in new folders only
        that user can enter; folders that exist keep their permissions."""
        path = self.log_path(launch.study, launch.number, launch.attempt)
        try:
            try:
                return _new_file(path)
            except FileNotFoundError:
                for folder in reversed((path.parent, *path.parent.parents)):
                    if not folder.exists():
                        folder.mkdir(mode=0o700, exist_ok=True)
                return _new_file(path)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(f"the disk holding the trial logs {self.log_dir} is full; "
                                  "trials start again once space is freed there") from exc
            raise

    def _failed_to_start(self, run: _Run, message: str) -> None:
        """Report from a worker thread: the caller may hold a transaction that publishing waits on."""
        self._ended(run)
        self._report(run, trial_finished(*_ids(run.launch), outcome="error", message=message))

    def _watch(self, run: _Run, log: BinaryIO | None) -> None:
        """Stream the output, or follow the metrics file (when progress is reported), and wait
        for the process to end."""
        progress = run.launch.progress
        if log is not None and progress is not None:
            run.streamer = threading.Thread(target=self._stream, args=(run, log, progress), daemon=True)
            run.streamer.start()
        elif progress is not None and run.launch.metrics_file is not None:
            run.streamer = threading.Thread(target=self._follow, args=(run, progress), daemon=True)
            run.streamer.start()
        if run.stopped or self._closed:
            self._kill(run)
        self._wait(run)

    def _stream(self, run: _Run, log: BinaryIO, progress: Progress) -> None:
        """Copy the output to the log, and report each new step of the objective as it appears."""
        # Started with stdout=PIPE and the default buffering: a buffered reader, which has read1.
        output = cast(io.BufferedReader, run.started.stdout)

        def chunks() -> Iterator[bytes]:
            for chunk in iter(partial(output.read1, CHUNK), b""):
                log.write(chunk)
                log.flush()
                yield chunk

        with log:
            self._report_steps(run, progress, bounded_lines(chunks()))

    def _follow(self, run: _Run, progress: Progress) -> None:
        """Report each new step of the objective as the File collector's file gets it."""
        path = Path(run.launch.working_dir) / (run.launch.metrics_file or "")
        self._report_steps(run, progress, follow(path, lambda: run.started.poll() is not None))

    def _report_steps(self, run: _Run, progress: Progress, lines: Iterable[str]) -> None:
        """Report each new step of the objective in ``lines`` (each report is a step, as Katib
        counts them, unless the line names its step)."""
        parse = parse_json_lines if progress.format == "json" else partial(parse_text, filters=progress.filters)
        counter = StepCounter(progress.metric)
        reported: set[int] = set()
        for line in lines:
            for step, value in counter.steps(parse([line], [progress.metric])):
                if step not in reported and not run.stopped:
                    reported.add(step)
                    self._publish_progress(trial_progress(*_ids(run.launch), step, value))

    def _publish_progress(self, event: Event) -> None:
        """A step that cannot be reported is skipped: the output must go on being read."""
        try:
            self._publish(event)
        except Exception as exc:
            log.warning("could not report progress %s: %s", event.id, exc)

    def _wait(self, run: _Run) -> None:
        """Wait for the main process, end whatever it left behind, then report the end."""
        process, timeout = run.started, run.launch.timeout
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.timed_out = True
            code = self._kill(run)
        self._contain(run)
        if run.streamer is not None:
            run.streamer.join()
        self._ended(run)
        if run.stopped or self._closed:
            return
        self._report(run, finished_event(run.launch, code, run.timed_out))

    def _report(self, run: _Run, event: Event) -> None:
        """Publish the attempt's end, trying again while publishing fails; an end still
        unpublished is kept for :meth:`poll`."""
        error = publish_with_retries(self._publish, event, self._publish_delays,
                                     give_up=lambda: self._closed or run.stopped)
        if error is not None:
            log.error("could not report the end of %s trial %d attempt %d (%s), kept for the watcher: %s",
                      run.launch.study, run.launch.number, run.launch.attempt, event.id, error)
            with self._lock:
                self._unreported[_key(run.launch)] = event

    def _ended(self, run: _Run) -> None:
        with self._lock:
            self._active.pop(_key(run.launch), None)
        run.done.set()

    def _contain(self, run: _Run) -> None:
        """End every process of the attempt that is still alive, and reap those adopted here."""
        process_tree.end(run.started.pid, run.marker.__eq__, self._kill_grace, keep=self._leaders(), since=run.since,
                         own=process_tree.adopts_orphans())

    def _kill(self, run: _Run) -> int:
        """End the attempt's whole process tree: SIGTERM, then SIGKILL after the grace period."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.started.pid, signal.SIGTERM)
        self._contain(run)
        return run.started.wait()

    def _leaders(self) -> set[int]:
        """The main processes of attempts, whose exit status their own threads wait for."""
        with self._lock:
            return {run.process.pid for run in self._active.values() if run.process is not None}

    def exists(self, launch: TrialLaunch) -> bool:
        with self._lock:
            if _key(launch) in self._runs:
                return True
        return self._owners.owned_elsewhere(self._owner_path(launch))

    def stop(self, launch: TrialLaunch) -> None:
        """Stop the trial's attempts running here, and any left by a process that died."""
        self._stop(lambda s, u, n, a: (s, u, n) == (launch.study, launch.uid, launch.number))
        if self._abandoned(launch):
            sweeper = threading.Thread(target=self._end_strays, args=(launch,), daemon=True)
            sweeper.start()
            self._sweepers.append(sweeper)

    def poll(self, launch: TrialLaunch) -> Event | None:
        """The end of an attempt that ended here but could not be reported; ends are otherwise
        reported as they happen, never learnt by asking."""
        with self._lock:
            return self._unreported.get(_key(launch))

    def stop_study(self, study: str, uid: str | None = None) -> None:
        """Stop every attempt of the study (of that uid, if given) that is still running here."""
        self._stop(lambda s, u, n, a: s == study and uid in (None, u))

    def stop_attempts(self, selected: Callable[[str, str, int, int], bool]) -> None:
        """Stop the attempts running here that ``selected(study, uid, number, attempt)`` accepts."""
        self._stop(selected)

    def attempts(self) -> list[Key]:
        """``(study, uid, number, attempt)`` of every attempt running here."""
        with self._lock:
            return list(self._active)

    def _stop(self, selected: Callable[[str, str, int, int], bool]) -> None:
        with self._lock:
            runs = [run for key, run in self._active.items() if selected(*key)]
            for key in [key for key in self._unreported if selected(*key)]:
                del self._unreported[key]
        for run in runs:
            if run.stopped:
                continue
            run.stopped = True
            if run.process is not None and run.process.poll() is None:
                threading.Thread(target=self._kill, args=(run,), daemon=True).start()

    def running(self, study: str | None = None) -> int:
        """How many attempts (of one study, or of all) have not ended yet."""
        with self._lock:
            return sum(1 for s, _, _, _ in self._active if study in (None, s))

    def shutdown(self) -> None:
        """Kill every running attempt without reporting it: the study stays resumable."""
        self._closed = True
        with self._lock:
            runs = list(self._active.values())
        threads = [threading.Thread(target=self._kill, args=(run,))
                   for run in runs if run.process is not None and not run.done.is_set()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for run in runs:
            run.done.wait(timeout=self._kill_grace + 2)
        for sweeper in self._sweepers:
            sweeper.join(timeout=self._kill_grace + 2)
        self._owners.release()

    def output(self, launch: TrialLaunch) -> Iterator[str]:
        yield from self._lines(self.log_path(launch.study, launch.number, launch.attempt))

    def read_file(self, launch: TrialLaunch, path: str) -> Iterator[str]:
        target = Path(launch.working_dir) / path
        if target.is_dir():
            yield from (json.dumps(record) for record in tfevents.directory_records(str(target)))
        else:
            yield from self._lines(target)

    @staticmethod
    def _lines(path: Path) -> Iterator[str]:
        """The file's lines, read in chunks: however long a line, memory stays bounded."""
        try:
            with path.open("rb") as handle:
                yield from bounded_lines(iter(partial(handle.read, CHUNK), b""))
        except FileNotFoundError:
            return
