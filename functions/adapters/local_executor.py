"""The executor port on this machine: each trial attempt a subprocess, never a shell.

This module launches, watches and stops attempts. Output (stdout and stderr) goes to a
per-attempt log file (:mod:`functions.adapters.local_outputs`), and progress is reported while
an attempt runs (:mod:`functions.adapters.local_progress`). Everything an attempt starts is
contained (:mod:`functions.adapters.process_tree`): a timeout, a stop or a shutdown ends the
whole tree (SIGTERM, a grace period, then SIGKILL), and so does the main process's own end,
before that end is reported, and this process's death, however it dies
(:mod:`functions.adapters.local_guard`). Ends are reported as ``trial.finished`` events through
``publish``, retried with back-off while it fails; an end that could not be reported is
answered by :meth:`LocalExecutor.poll`. Ends that katuna caused by stopping are not reported,
but :meth:`LocalExecutor.poll` answers the latest of them as ``interrupted``: a handler stops an
attempt inside its transaction, before its verdict (pruned, stopped with its study) is stored,
and were that transaction rolled back, the trial would be left running with its process gone
and nothing to say so; the reconcile pass finds it ended, and it runs again.

A trial's environment is minimal (:mod:`functions.adapters.trial_env`): ``PATH`` (the
service's Python's bin directory first), ``HOME``, ``USER``, ``LOGNAME``, ``LANG``, ``LC_*``,
``TZ``, ``TMPDIR``, ``PYTHONUNBUFFERED=1``, the names listed in ``KATUNA_TRIAL_ENV`` (never
``KATUNA_API_TOKEN``), the study's ``env``, ``KATUNA_STUDY``, ``KATUNA_STUDY_UID``,
``KATUNA_TRIAL``, ``KATUNA_ATTEMPT``, ``KATUNA_OBJECTIVE`` and the attempt's marker
``KATUNA_ATTEMPT_ID``; nothing else of the service's environment.

Several executors may share one log directory (the workers of ``katuna serve``): beside each
log an ``.owner`` file names the process that runs the attempt (see
:mod:`functions.adapters.owners`), so every executor knows whether an attempt exists. An
attempt that ended on its own has its exit recorded there too, before its end is reported
(:mod:`functions.adapters.local_ends`), so that a study resuming after its handling was given
up records it from its log instead of running it again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import subprocess
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import BinaryIO

from functions.adapters import local_ends, local_outputs, process_tree
from functions.adapters.local_guard import Guard
from functions.adapters.local_progress import ProgressReports, streamed
from functions.adapters.local_run import Key, LocalRun, attempt_key, ids
from functions.adapters.owners import RUNNER, Owners
from functions.adapters.trial_ends import PUBLISH_DELAYS, finished_event, publish_with_retries
from functions.adapters.trial_env import trial_environment
from functions.adapters.workers import Workers
from functions.core import start_failures
from functions.core.errors import InvalidStudy, Problem, RefusedFile
from functions.core.events import Event, trial_finished
from functions.core.launch import TrialLaunch, local_timeout

log = logging.getLogger("katuna.executor")


TEMPLATES_FAULTS = frozenset({errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR, errno.ELOOP, errno.EISDIR})
"""Errors of starting a process that its program or working directory causes, which every
trial of the template meets; others (no memory or processes left to fork, an argument list too
long for a parameter's value, a script still being written) may not come again."""


def _start_failure(launch: TrialLaunch, exc: OSError | ValueError) -> tuple[str, str | None]:
    """What kept the attempt from starting, and its cause where it is the template's
    (:mod:`functions.core.start_failures`): the working directory when entering it failed
    (``subprocess`` names it as the error's file), otherwise the program."""
    reason = str(getattr(exc, "strerror", None) or exc)
    templates = isinstance(exc, OSError) and exc.errno in TEMPLATES_FAULTS
    if isinstance(exc, OSError) and exc.filename == launch.working_dir and launch.argv[0] != launch.working_dir:
        return (f"{launch.argv[0]!r}: working directory {launch.working_dir!r}: {reason}",
                start_failures.directory_cause(launch.working_dir, reason) if templates else None)
    return f"{launch.argv[0]!r}: {reason}", start_failures.program_cause(launch.argv[0], reason) if templates else None


SWEEP_SCANS = 30.0
"""Seconds a shutdown allows in all, beyond the kill grace, for ending what dead processes left: each
look for their processes reads every process of the machine, which a loaded machine makes slow,
and ``katuna stop`` must not return while they live."""

STOPPED_ENDS = 1_000
"""Ends of attempts katuna stopped that :meth:`LocalExecutor.poll` keeps answering."""

ENDED_KEPT = 1_000
"""Ended attempts whose runs the executor keeps, the latest: a launch of one again (an event
delivered twice) starts nothing. A ``katuna serve`` worker runs trials for weeks, and kept every
run it ever made (some KB each) until it stopped."""


class LocalExecutor:
    """Implements :class:`functions.core.ports.Executor` with local processes.

    ``pass_env`` names variables of the service's environment that trials get too
    (``KATUNA_TRIAL_ENV``); ``publish_delays`` are the waits before each new try of reporting an
    end. The executor makes its process a child subreaper, and unreadable to its trials
    (:func:`functions.adapters.process_tree.hide_from_trials`).
    """

    def __init__(self, log_dir: Path, publish: Callable[[Event], None], kill_grace: float = 3.0,
                 pass_env: Iterable[str] = (), publish_delays: Iterable[float] = PUBLISH_DELAYS,
                 sole_parent: bool = False) -> None:
        self.log_dir = Path(log_dir)
        self._publish = publish
        self._kill_grace = kill_grace
        self._pass_env = tuple(pass_env)
        self._publish_delays = tuple(publish_delays)
        self._progress = ProgressReports(publish)
        self._runs: dict[Key, LocalRun] = {}
        self._ended_keys: deque[Key] = deque()
        """The ended attempts of :attr:`_runs`, oldest first: past :data:`ENDED_KEPT`, the oldest go."""
        self._active: dict[Key, LocalRun] = {}
        """The runs that have not ended: what stops and counts look at, however many ended."""
        self._unreported: dict[Key, Event] = {}
        """Ends that could not be published: :meth:`poll` answers them."""
        self._stopped_ends: OrderedDict[Key, Event] = OrderedDict()
        """The ends of the latest attempts katuna stopped (at most :data:`STOPPED_ENDS`), as
        ``interrupted``: :meth:`poll` answers them too, for a trial whose verdict was rolled back."""
        self._lock = threading.Lock()
        self._closed = False
        self._reads_stopped = threading.Event()
        """Set once the process stops: reads of trials' output then end (:meth:`stop_reads`)."""
        self._owners = Owners(self.log_dir)
        self._claimed: set[Key] = set()
        """Attempts this executor claimed: their owner is this process, known without a read."""
        self._workers = Workers()
        self._sweepers: list[threading.Thread] = []
        """Threads ending what dead processes left behind, which a shutdown waits for."""
        self._sole_parent = sole_parent
        """Whether every child this process starts is a trial's process or the guard (``katuna
        run``, a ``katuna serve`` worker): then, when no attempt runs and at shutdown, any other
        child but those it had already is an orphan a trial left, and is ended
        (:func:`~functions.adapters.process_tree.adopted`)."""
        self._inherited = process_tree.children() if sole_parent else frozenset()
        """Children this process had before it started any trial: those of a shell that ``exec``'d
        it (``sh -c 'tensorboard & exec katuna run ...'``), never taken for a trial's orphans."""
        self._guard = Guard(kill_grace, self._inherited if sole_parent else None)
        """Ends the running attempts' processes if this process is killed outright (and, as sole
        parent, the processes its children were, orphans of trials among them)."""
        process_tree.become_subreaper()
        process_tree.hide_from_trials()

    def log_path(self, launch: TrialLaunch, attempt: int | None = None) -> Path:
        """The log of the launch's attempt (or of another ``attempt`` of its trial)."""
        folder = self.log_dir / (launch.log_folder or launch.study)
        return folder / f"{launch.number}.{attempt or launch.attempt}.log"

    def _owner_path(self, launch: TrialLaunch, attempt: int | None = None) -> Path:
        return self.log_path(launch, attempt).with_suffix(".owner")

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
        key = attempt_key(launch)
        with self._lock:
            if key in self._runs or self._closed:
                return
            run = self._runs[key] = self._active[key] = LocalRun(launch)
        try:
            log = local_outputs.new_log(self.log_path(launch), self.log_dir)
        except BaseException:
            with self._lock:
                del self._runs[key], self._active[key]
            raise
        strays = self._abandoned(launch)
        if strays:
            self._workers.submit(partial(self._start_after_strays, run, log, strays))
        else:
            self._workers.submit(self._start(run, log))
        self._owners.claim(self._owner_path(launch))
        self._claimed.add(key)
        self._owners.claim_runner(self.log_path(launch).with_name(RUNNER))

    def claim_study(self, log_folder: str) -> None:
        """Name this process as the runner of the study whose logs go to ``log_folder`` (made
        where it is not there yet, as a trial's log makes it), before any trial of it starts:
        ``katuna run`` claims it at once, so a run killed before its first trial is told apart
        from one that is starting it."""
        runner = self.log_dir / log_folder / RUNNER
        os.close(local_outputs.open_folder(runner, self.log_dir))
        self._owners.claim_runner(runner)

    def _abandoned(self, launch: TrialLaunch) -> frozenset[str]:
        """The markers of the trial's attempts up to this one (included) that a process claimed
        and died since (an attempt claimed here was not: its owner file names this process,
        which lives). Only those are ended as strays: a later attempt, which another process or
        this one may be starting meanwhile, is never among them."""
        return frozenset(process_tree.marker(launch.uid, launch.number, attempt)
                         for attempt in range(1, launch.attempt + 1)
                         if (launch.study, launch.uid, launch.number, attempt) not in self._claimed
                         and self._owners.abandoned(self._owner_path(launch, attempt)))

    def _start_after_strays(self, run: LocalRun, log: BinaryIO, strays: frozenset[str]) -> None:
        """End every process the abandoned attempts of the trial left behind, then start the attempt."""
        self._end_strays(strays)
        if run.stopped or self._closed:
            log.close()
            self._ended(run)
            if run.stopped and not self._closed:
                self._keep_stopped_end(run)
            return
        self._start(run, log)()

    def _end_strays(self, strays: frozenset[str]) -> None:
        """End every process of the attempts whose markers are ``strays``."""
        process_tree.end(None, strays.__contains__, self._kill_grace)

    def _start(self, run: LocalRun, log: BinaryIO) -> Callable[[], None]:
        """Start the attempt's process; the job that waits for its end."""
        launch = run.launch
        run.since = process_tree.boot_ticks() - os.sysconf("SC_CLK_TCK")
        self._guard.starting(run.marker)
        local_outputs.make_metrics_folder(launch)
        try:
            run.process = subprocess.Popen(
                launch.argv, cwd=launch.working_dir, stdin=subprocess.DEVNULL,
                env=trial_environment(os.environ, self._pass_env, launch.env, (process_tree.MARKER, run.marker)),
                stdout=subprocess.PIPE if streamed(launch) else log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except (OSError, ValueError) as exc:
            message, cause = _start_failure(launch, exc)
            with log:
                log.write(f"katuna: could not start {message}\n".encode())
            return partial(self._failed_to_start, run, message, cause)
        self._guard.started(run.marker, run.process.pid)
        if not streamed(launch):
            log.close()
        return partial(self._watch, run, log if streamed(launch) else None)

    def _failed_to_start(self, run: LocalRun, message: str, cause: str | None) -> None:
        """Report from a worker thread: the caller may hold a transaction that publishing waits on.
        A cause names the program or folder and the error, all the message says, so it goes alone."""
        self._ended(run)
        self._report(run, trial_finished(*ids(run.launch), outcome="error", message="" if cause else message,
                                         cause=cause))

    def _watch(self, run: LocalRun, log: BinaryIO | None) -> None:
        """Stream the output, or follow the metrics file (when progress is reported), and wait
        for the process to end."""
        progress = run.launch.progress
        if log is not None and progress is not None:
            run.streamer = threading.Thread(target=self._progress.stream, args=(run, log, progress), daemon=True)
            run.streamer.start()
        elif progress is not None and run.launch.metrics_file is not None:
            run.streamer = threading.Thread(target=self._progress.follow, args=(run, progress), daemon=True)
            run.streamer.start()
        if run.stopped or self._closed:
            self._kill(run)
        self._wait(run)

    def _wait(self, run: LocalRun) -> None:
        """Wait for the main process, end whatever it left behind, then report the end; only
        then look for orphans (:meth:`_end_adopted`), off the path to the successor's start."""
        process, timeout = run.started, local_timeout(run.launch)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.timed_out = True
            code = self._kill(run)
        self._contain(run)
        if run.streamer is not None:
            run.streamer.join()
        if run.interrupted:
            self._record_end(run, local_ends.End(code, interrupted=True))
        elif not run.stopped:
            self._record_end(run, local_ends.End(code, run.timed_out))
        self._ended(run)
        if run.stopped and not self._closed:
            self._keep_stopped_end(run)
        if not (run.stopped or self._closed):
            self._report(run, finished_event(run.launch, code, run.timed_out))
        self._end_adopted()

    def _keep_stopped_end(self, run: LocalRun) -> None:
        """Keep the end of an attempt katuna stopped for :meth:`poll`, the latest
        :data:`STOPPED_ENDS` only: its trial's verdict is stored, or rolled back and found by the
        next reconcile pass, within seconds."""
        event = trial_finished(*ids(run.launch), outcome="interrupted", message=(
            "katuna stopped it (its trial judged, or its study ending), and that verdict was not stored"))
        with self._lock:
            self._stopped_ends[attempt_key(run.launch)] = event
            while len(self._stopped_ends) > STOPPED_ENDS:
                self._stopped_ends.popitem(last=False)

    def _record_end(self, run: LocalRun, end: local_ends.End) -> None:
        """Record beside its log how the attempt ended, on its own or killed by a shutdown,
        before the end is reported (and before a shutdown, which waits for the attempt, may go
        on): were its handling given up, the study's resume records the attempt from its log, or
        runs an interrupted one again (:meth:`recorded_end`). A record that cannot be written
        costs only that: the attempt would then run again as a lost run."""
        try:
            local_ends.record(self.log_path(run.launch), self.log_dir, run.launch, end)
        except (OSError, RefusedFile) as exc:
            log.warning("could not record the end of %s trial %d attempt %d beside its log (were its handling "
                        "interrupted, it would run again): %s", run.launch.study, run.launch.number,
                        run.launch.attempt, exc)

    def _report(self, run: LocalRun, event: Event) -> None:
        """Publish the attempt's end, trying again while publishing fails; an end still
        unpublished is kept for :meth:`poll`."""
        error = publish_with_retries(self._publish, event, self._publish_delays,
                                     give_up=lambda: self._closed or run.stopped)
        if error is not None:
            log.error("could not report the end of %s trial %d attempt %d (%s), kept for the watcher: %s",
                      run.launch.study, run.launch.number, run.launch.attempt, event.id, error)
            with self._lock:
                self._unreported[attempt_key(run.launch)] = event

    def _ended(self, run: LocalRun) -> None:
        key = attempt_key(run.launch)
        with self._lock:
            self._active.pop(key, None)
            self._ended_keys.append(key)
            while len(self._ended_keys) > ENDED_KEPT:
                oldest = self._ended_keys.popleft()
                if oldest not in self._active:
                    self._runs.pop(oldest, None)
                    self._claimed.discard(oldest)
        self._guard.ended(run.marker)
        run.done.set()

    def _contain(self, run: LocalRun) -> None:
        """End every process of the attempt that is still alive, and reap those adopted here."""
        process_tree.end(run.started.pid, run.marker.__eq__, self._kill_grace, keep=self._leaders(), since=run.since,
                         own=process_tree.adopts_orphans())

    def _kill(self, run: LocalRun) -> int:
        """End the attempt's whole process tree: SIGTERM, then SIGKILL after the grace period."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.started.pid, signal.SIGTERM)
        self._contain(run)
        return run.started.wait()

    def _end_adopted(self) -> None:
        """End the orphans of trial processes that left their session and cleared their
        environment, where this process is their sole parent (see :attr:`_sole_parent`), once no
        attempt runs: looked for while no launch can begin (an attempt is registered before its
        process starts), so none is taken for one."""
        if not (self._sole_parent and process_tree.adopts_orphans()):
            return
        with self._lock:
            if self._active:
                return
            kept = {*self._inherited, self._guard.pid}
            orphans = process_tree.adopted(lambda p: p.pid in kept)
        process_tree.end_family(orphans, self._kill_grace)
        if orphans:
            log.warning("ended %d process(es) that trials left running outside their session and without "
                        "KATUNA_ATTEMPT_ID", len(orphans))

    def _leaders(self) -> set[int]:
        """The main processes of attempts, whose exit status their own threads wait for."""
        with self._lock:
            return {run.process.pid for run in self._active.values() if run.process is not None}

    def exists(self, launch: TrialLaunch) -> bool:
        with self._lock:
            if attempt_key(launch) in self._runs:
                return True
        return self._owners.owned_elsewhere(self._owner_path(launch))

    def stop(self, launch: TrialLaunch, keep: bool = False) -> None:
        """Stop the trial's attempts running here, and any left by a process that died (a
        process leaves nothing to ``keep``: its output stays in the trial's files either way)."""
        self._stop(lambda s, u, n, a: (s, u, n) == (launch.study, launch.uid, launch.number))
        strays = self._abandoned(launch)
        if strays:
            sweeper = threading.Thread(target=self._end_strays, args=(strays,), daemon=True)
            sweeper.start()
            self._sweepers.append(sweeper)

    def together(self, launches: Sequence[TrialLaunch]) -> AbstractContextManager[None]:
        """Nothing to read together: the processes are this one's children."""
        return contextlib.nullcontext()

    def stop_trials(self, launches: Sequence[TrialLaunch], keep: bool = False) -> None:
        """Stop each trial's attempts as :meth:`stop` does (signals to processes: nothing to gather)."""
        for launch in launches:
            self.stop(launch, keep)

    def poll(self, launch: TrialLaunch) -> Event | None:
        """The end of an attempt that ended here but could not be reported; ends are otherwise
        reported as they happen, never learnt by asking."""
        with self._lock:
            key = attempt_key(launch)
            return self._unreported.get(key) or self._stopped_ends.get(key)

    def recorded_end(self, launch: TrialLaunch) -> Event | None:
        """The end of an attempt that no process runs any more, as recorded beside its log when
        its process ended on its own (:mod:`functions.adapters.local_ends`): the handling of that
        end was given up, or lost with the process that ran it. None without such a record."""
        end = local_ends.recorded(self.log_path(launch), launch)
        return None if end is None else finished_event(launch, end.code, end.timed_out, end.interrupted)

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
        """Kill every running attempt without reporting it, recording it as interrupted: the
        study stays resumable, and its resume runs those attempts again, uncounted."""
        self._closed = True
        with self._lock:
            runs = list(self._active.values())
        killed = [run for run in runs if run.process is not None and not run.done.is_set()]
        for run in killed:
            run.interrupted = not (run.stopped or run.timed_out) and run.started.poll() is None
        threads = [threading.Thread(target=self._kill, args=(run,)) for run in killed]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for run in runs:
            run.done.wait(timeout=self._kill_grace + 2)
        self._end_adopted()
        deadline = time.monotonic() + self._kill_grace + SWEEP_SCANS
        for sweeper in self._sweepers:
            sweeper.join(timeout=max(0.0, deadline - time.monotonic()))
        self._guard.close()
        self._owners.release()

    def log_file(self, launch: TrialLaunch) -> Path:
        """The attempt's log."""
        return self.log_path(launch)

    def stop_reads(self) -> None:
        """End every read of an attempt's output or files under way, and refuse any later one,
        with a :class:`~functions.core.errors.Stopping`: a run being interrupted must not wait
        for a handler to read a log of hundreds of megabytes to its end. That handler's
        transaction is rolled back, so the attempt's end is handled when the study resumes."""
        self._reads_stopped.set()

    def output(self, launch: TrialLaunch) -> Iterator[str]:
        return local_outputs.lines(self.log_file(launch), self._reads_stopped.is_set)

    def read_file(self, launch: TrialLaunch, path: str) -> Iterator[str]:
        return local_outputs.read_file(launch, path, self._reads_stopped.is_set)
