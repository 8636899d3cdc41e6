"""The executor port on this machine: each trial attempt a subprocess, never a shell.

Output (stdout and stderr) goes to a per-attempt log file. Each process leads its own process
group, so a timeout, a stop or Ctrl-C ends everything the trial started. Ends are reported as
``trial.finished`` events through ``publish``; ends that katuna caused by stopping are not.

Several executors may share one log directory (the workers of ``katuna serve``): beside each
log an ``.owner`` file names the process that runs the attempt (see
:mod:`functions.adapters.owners`), so every executor knows whether an attempt exists.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

from functions.adapters.owners import Owners
from functions.core.events import Event, trial_finished, trial_progress
from functions.core.lines import bounded_lines
from functions.core.metrics import parse_json_lines, parse_text
from functions.core.ports import TrialLaunch

CHUNK = 64 * 1024
"""Bytes read at a time from a trial's output."""

log = logging.getLogger("katuna.executor")

PREEMPTION_SIGNALS = {signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT}

Key = tuple[str, str, int, int]


@dataclass
class _Run:
    launch: TrialLaunch
    process: subprocess.Popen[bytes] | None = None
    stopped: bool = False
    timed_out: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    streamer: threading.Thread | None = None


def _ids(launch: TrialLaunch) -> tuple[str, str, int, int]:
    return launch.study, launch.uid, launch.number, launch.attempt


def _key(launch: TrialLaunch) -> Key:
    """An attempt of a trial of one study: a study made again under the same name is another."""
    return _ids(launch)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


class _Workers:
    """Daemon threads that run jobs; a new one starts only when none is idle, since starting a
    thread makes the caller wait until it runs (a handler's transaction would wait with it)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._work, name="katuna-trial", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:
                log.exception("a trial's thread failed")
            with self._lock:
                self._idle += 1


class LocalExecutor:
    """Implements :class:`functions.core.ports.Executor` with local processes."""

    def __init__(self, log_dir: Path, publish: Callable[[Event], None], kill_grace: float = 3.0) -> None:
        self.log_dir = Path(log_dir)
        self._publish = publish
        self._kill_grace = kill_grace
        self._runs: dict[Key, _Run] = {}
        self._active: dict[Key, _Run] = {}
        """The runs that have not ended: what stops and counts look at, however many ended."""
        self._lock = threading.Lock()
        self._closed = False
        self._owners = Owners(self.log_dir)
        self._workers = _Workers()

    def log_path(self, study: str, number: int, attempt: int) -> Path:
        return self.log_dir / study / f"{number}.{attempt}.log"

    def _owner_path(self, launch: TrialLaunch) -> Path:
        return self.log_path(launch.study, launch.number, launch.attempt).with_suffix(".owner")

    def launch(self, launch: TrialLaunch) -> None:
        """Register the attempt and start its process now (a trial slot is refilled without a
        hand-off between threads); a worker thread then waits for it to end. The owner file is
        written after the start, off the path to it, and before the caller's transaction makes
        the attempt visible to other processes."""
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
        try:
            run.process = subprocess.Popen(
                launch.argv, cwd=launch.working_dir, env=self._environment(launch),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if launch.progress else log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        except (OSError, ValueError) as exc:
            message = f"{launch.argv[0]!r}: {getattr(exc, 'strerror', None) or exc}"
            with log:
                log.write(f"katuna: could not start {message}\n".encode())
            self._workers.submit(partial(self._failed_to_start, run, message))
        else:
            if not launch.progress:
                log.close()
            self._workers.submit(partial(self._watch, run, log if launch.progress else None))
        self._owners.claim(self._owner_path(launch))

    def _open_log(self, launch: TrialLaunch) -> BinaryIO:
        path = self.log_path(launch.study, launch.number, launch.attempt)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("wb")

    def _failed_to_start(self, run: _Run, message: str) -> None:
        """Report from a worker thread: the caller may hold a transaction that publishing waits on."""
        self._ended(run)
        self._publish(trial_finished(*_ids(run.launch), outcome="error", message=message))

    def _watch(self, run: _Run, log: BinaryIO | None) -> None:
        """Stream the output (when progress is reported) and wait for the process to end."""
        if log is not None:
            run.streamer = threading.Thread(target=self._stream, args=(run, log), daemon=True)
            run.streamer.start()
        if run.stopped or self._closed:
            self._kill(run.process)
        self._wait(run)

    def _stream(self, run: _Run, log: BinaryIO) -> None:
        """Copy the output to the log, and report each new step of the objective as it appears."""
        launch, progress = run.launch, run.launch.progress
        parse = parse_json_lines if progress.format == "json" else partial(parse_text, filters=progress.filters)
        reported: set[int] = set()

        def chunks() -> Iterator[bytes]:
            for chunk in iter(partial(run.process.stdout.read1, CHUNK), b""):
                log.write(chunk)
                log.flush()
                yield chunk

        with log:
            for line in bounded_lines(chunks()):
                for observation in parse([line], [progress.metric]):
                    if observation.step is not None and observation.step not in reported and not run.stopped:
                        reported.add(observation.step)
                        self._publish(trial_progress(*_ids(launch), observation.step, observation.value))

    @staticmethod
    def _environment(launch: TrialLaunch) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(launch.env)
        return env

    def _wait(self, run: _Run) -> None:
        process, timeout = run.process, run.launch.timeout
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.timed_out = True
            code = self._kill(process)
        if run.streamer is not None:
            run.streamer.join()
        self._ended(run)
        if run.stopped or self._closed:
            return
        self._publish(self._finished(run.launch, code, run.timed_out))

    def _ended(self, run: _Run) -> None:
        with self._lock:
            self._active.pop(_key(run.launch), None)
        run.done.set()

    @staticmethod
    def _finished(launch: TrialLaunch, code: int, timed_out: bool) -> Event:
        ids = _ids(launch)
        if timed_out:
            return trial_finished(*ids, outcome="timeout", exit_code=code,
                                  message=f"ran past its timeout of {launch.timeout:g}s")
        if code < 0 and -code in PREEMPTION_SIGNALS:
            name = signal.Signals(-code).name
            return trial_finished(*ids, outcome="preempted", exit_code=code, message=f"killed by {name} from outside")
        if code < 0:
            return trial_finished(*ids, outcome="exited", exit_code=code, message=f"died of {signal.Signals(-code).name}")
        return trial_finished(*ids, outcome="exited", exit_code=code)

    def _kill(self, process: subprocess.Popen[bytes]) -> int:
        """End the process group: SIGTERM, then SIGKILL after the grace period."""
        _signal_group(process, signal.SIGTERM)
        try:
            return process.wait(timeout=self._kill_grace)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            return process.wait()

    def exists(self, launch: TrialLaunch) -> bool:
        with self._lock:
            if _key(launch) in self._runs:
                return True
        return self._owners.owned_elsewhere(self._owner_path(launch))

    def stop(self, launch: TrialLaunch) -> None:
        self._stop(lambda s, n: (s, n) == (launch.study, launch.number))

    def poll(self, launch: TrialLaunch) -> Event | None:
        """Ends are reported as they happen, never learnt by asking."""
        return None

    def stop_study(self, study: str) -> None:
        """Stop every attempt of the study that is still running here."""
        self._stop(lambda s, _: s == study)

    def _stop(self, selected: Callable[[str, int], bool]) -> None:
        with self._lock:
            runs = [run for (s, _, n, _), run in self._active.items() if selected(s, n)]
        for run in runs:
            run.stopped = True
            if run.process is not None and run.process.poll() is None:
                threading.Thread(target=self._kill, args=(run.process,), daemon=True).start()

    def running(self, study: str | None = None) -> int:
        """How many attempts (of one study, or of all) have not ended yet."""
        with self._lock:
            return sum(1 for s, _, _, _ in self._active if study in (None, s))

    def shutdown(self) -> None:
        """Kill every running attempt without reporting it: the study stays resumable."""
        self._closed = True
        with self._lock:
            runs = list(self._active.values())
        threads = [threading.Thread(target=self._kill, args=(run.process,))
                   for run in runs if run.process is not None and not run.done.is_set()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for run in runs:
            run.done.wait(timeout=self._kill_grace + 2)
        self._owners.release()

    def output(self, launch: TrialLaunch) -> Iterator[str]:
        yield from self._lines(self.log_path(launch.study, launch.number, launch.attempt))

    def read_file(self, launch: TrialLaunch, path: str) -> Iterator[str]:
        yield from self._lines(Path(launch.working_dir) / path)

    @staticmethod
    def _lines(path: Path) -> Iterator[str]:
        """The file's lines, read in chunks: however long a line, memory stays bounded."""
        try:
            with path.open("rb") as handle:
                yield from bounded_lines(iter(partial(handle.read, CHUNK), b""))
        except FileNotFoundError:
            return
