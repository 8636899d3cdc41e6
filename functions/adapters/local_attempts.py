"""The attempts of a :class:`functions.adapters.local_executor.LocalExecutor`, each a subprocess of
this one: its start (a child trial's checkpoint folder copied first, on a worker thread; what
kept it from starting, where it failed to), the wait for its end
(within its timeout, its output streamed or its metrics file followed meanwhile), the
containment of every process it started, and its end recorded beside its log and reported.

The executor's port (launches, stops, counts, reads, shutdown) acts on what is kept here: the
runs by attempt, those still active, and the ends to answer when asked (:meth:`LocalExecutor.poll`).
"""


from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import BinaryIO

from functions.adapters import local_ends, local_exits, local_marks, local_outputs, process_tree
from functions.adapters.local_guard import Guard
from functions.adapters.local_progress import ProgressReports, streamed
from functions.adapters.local_run import Key, LocalRun, attempt_key, ids
from functions.adapters.local_space_waits import SPACE_WAIT, checkpoint_made
from functions.adapters.local_start_failure import start_failure
from functions.adapters.owners import Owners
from functions.adapters.trial_ends import PUBLISH_DELAYS, finished_event, publish_with_retries
from functions.adapters.trial_env import trial_environment
from functions.adapters.workers import Workers
from functions.core import start_failures
from functions.core.errors import RefusedFile, StorageFull
from functions.core.events import Event, trial_finished
from functions.core.launch import TrialLaunch, local_timeout
from functions.core.log_context import about, of_event

log = logging.getLogger("katuna.executor")


STOPPED_ENDS = 1_000
"""Ends of attempts katuna stopped that :meth:`functions.adapters.local_executor.LocalExecutor.poll` keeps
answering."""

ENDED_KEPT = 1_000
"""Ended attempts whose runs the executor keeps, the latest: a launch of one again (an event
delivered twice) starts nothing. A ``katuna serve`` worker runs trials for weeks, and kept every
run it ever made (some KB each) until it stopped."""


class LocalAttempts:
    """The attempts this process runs, and the steps of each from its start to its reported end."""

    def __init__(self, log_dir: Path, publish: Callable[[Event], None], kill_grace: float = process_tree.KILL_GRACE,
                 pass_env: Iterable[str] = (), publish_delays: Iterable[float] = PUBLISH_DELAYS,
                 sole_parent: bool = False, max_checkpoint: int = 4 << 30, space_wait: float = SPACE_WAIT) -> None:
        self.log_dir = Path(log_dir)
        self._max_checkpoint = max_checkpoint
        """Bytes of a parent's checkpoint folder copied for a child trial, at most."""
        self._space_wait = space_wait
        """Seconds a child trial's checkpoint copy waits for space on a full disk, in all (:data:`SPACE_WAIT`)."""
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

    def _abandoned(self, launch: TrialLaunch) -> frozenset[str]:
        """The markers of the trial's attempts up to this one (included) that a process claimed
        and died since (an attempt claimed here was not: its owner file names this process,
        which lives). Only those are ended as strays: a later attempt, which another process or
        this one may be starting meanwhile, is never among them."""
        return frozenset(process_tree.marker(launch.uid, launch.number, attempt)
                         for attempt in range(1, launch.attempt + 1)
                         if (launch.study, launch.uid, launch.number, attempt) not in self._claimed
                         and self._owners.abandoned(self._owner_path(launch, attempt)))

    def _start_when_ready(self, run: LocalRun, log: BinaryIO, strays: frozenset[str]) -> None:
        """On a worker thread, off the launching handler's transaction: end every process the
        abandoned attempts of the trial left behind (``strays``), make its checkpoint folder
        (:func:`~functions.adapters.local_space_waits.checkpoint_made`), then start the attempt,
        unless it was stopped or the executor closed meanwhile."""
        if strays:
            self._end_strays(strays)
        failure = checkpoint_made(run, self.log_dir, self._max_checkpoint, self._space_wait,
                                  lambda: run.stopped or self._closed)
        if run.stopped or self._closed:
            self._not_started(run, log)
        elif isinstance(failure, RefusedFile):
            self._refused(run, log, failure)
        elif failure is not None:
            self._not_copied(run, log, failure)
        else:
            self._start(run, log)()

    def _not_started(self, run: LocalRun, log: BinaryIO) -> None:
        """End an attempt stopped, or whose executor closed, before its process started. Nothing
        is reported: a stopped attempt's end is kept for :meth:`poll`; one the closing cut short
        is recorded as interrupted (its code a SIGTERM's), as a shutdown records the attempts it
        kills, so the study's resume runs it again, uncounted."""
        log.close()
        if self._closed and not run.stopped:
            self._record_end(run, local_ends.End(-signal.SIGTERM, interrupted=True))
        self._ended(run)

    def _not_copied(self, run: LocalRun, log: BinaryIO, exc: Exception) -> None:
        """Fail the attempt whose checkpoint folder could not be made for another reason than a
        refusal (an I/O error, the logs folder unwritable, a disk full past the wait for space),
        as one that could not start fails: saying so in its log and reason."""
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, StorageFull):
            reason = str(exc)
        folder = self.log_dir / run.launch.checkpoint.folder if run.launch.checkpoint else self.log_dir
        message = f"the attempt: its checkpoint folder {folder} could not be made: {reason}"
        with log:
            log.write(f"katuna: could not start {message}\n".encode())
        self._failed_to_start(run, message, None)

    def _refused(self, run: LocalRun, log: BinaryIO, refused: RefusedFile) -> None:
        """Fail the attempt whose parent's checkpoint folder katuna refused to copy (too large, a
        FIFO in it, a link planted: :mod:`.local_checkpoints`) with the reason a launch refused in
        its handling gives: that trial fails, and the study goes on. Reported from this thread:
        the caller may hold a transaction that publishing waits on."""
        with log:
            log.write(f"katuna: {start_failures.refusal(str(refused))}\n".encode())
        self._ended(run)
        self._report(run, trial_finished(*ids(run.launch), outcome="error", message=str(refused), refused=True))

    def _end_strays(self, strays: frozenset[str]) -> None:
        """End every process of the attempts whose markers are ``strays``."""
        process_tree.end(None, strays.__contains__, self._kill_grace)

    def _start(self, run: LocalRun, log: BinaryIO) -> Callable[[], None]:
        """Start the attempt's process; the job that waits for its end."""
        launch = run.launch
        run.since = process_tree.boot_ticks() - os.sysconf("SC_CLK_TCK")
        self._guard.starting(run.marker)
        try:
            local_outputs.make_metrics_folder(launch)
            self._mark_metrics(run)
            run.process = subprocess.Popen(
                launch.argv, cwd=launch.working_dir, stdin=subprocess.DEVNULL,
                env=trial_environment(os.environ, self._pass_env, launch.env, (process_tree.MARKER, run.marker)),
                stdout=subprocess.PIPE if streamed(launch) else log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except Exception as exc:  # whatever kept it from starting fails the attempt: none stays started unrun
            message, cause = start_failure(launch, exc)
            with log:
                log.write(f"katuna: could not start {message}\n".encode())
            return partial(self._failed_to_start, run, message, cause)
        run.floor = local_exits.own_peak()
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
        """Wait for the main process (this thread alone collects its status, with its peak
        memory: :mod:`.local_exits`), end whatever it left behind, then report the end; only
        then look for orphans (:meth:`_end_adopted`), off the path to the successor's start. Its
        progress reports are all published before its end, but for a shutdown, which reports no
        end: a report waiting on a database another process holds would hold up the record of
        the end, which the shutdown waits for, by as long as the busy timeout."""
        end = local_exits.wait_within(run.started, local_timeout(run.launch), run.floor)
        if end is None:
            run.timed_out = True
            self._kill(run)
            end = local_exits.wait(run.started, run.floor)
        self._contain(run)
        if run.streamer is not None and not self._closed:
            run.streamer.join()
        if run.interrupted:
            self._record_end(run, local_ends.End(end.code, interrupted=True, memory=end.memory))
        elif not run.stopped:
            self._record_end(run, local_ends.End(end.code, run.timed_out, memory=end.memory))
        self._ended(run)
        if not (run.stopped or self._closed):
            self._report(run, finished_event(run.launch, end.code, run.timed_out, memory=end.memory,
                                             output_bytes=self._output_bytes(run.launch)))
        self._end_adopted()

    def _output_bytes(self, launch: TrialLaunch) -> int | None:
        """The size of the attempt's log where its metrics are read from it (not from a metrics
        file or an event folder), told with its end so that a small one is read in the handling's
        own transaction; None where that is not so, or the log cannot be looked at."""
        if launch.metrics_file is not None or launch.metrics_events:
            return None
        try:
            return os.stat(self.log_path(launch)).st_size
        except OSError:
            return None

    def _keep_stopped_end(self, run: LocalRun) -> None:
        """Keep the end of an attempt katuna stopped for :meth:`poll`, the latest
        :data:`STOPPED_ENDS` only: its trial's verdict is stored, or rolled back and found by the
        next reconcile pass, within seconds. Under the lock, as the attempt stops being active:
        no one sees it neither running nor ended."""
        event = trial_finished(*ids(run.launch), outcome="interrupted", message=(
            "katuna stopped it (its trial judged, or its study ending), and that verdict was not stored"))
        self._stopped_ends[attempt_key(run.launch)] = event
        while len(self._stopped_ends) > STOPPED_ENDS:
            self._stopped_ends.popitem(last=False)

    def _mark_metrics(self, run: LocalRun) -> None:
        """Record beside its log what the attempt's metrics file or event folder holds before it
        starts, so that only what it adds is read as its metrics (:mod:`.local_marks`). A mark
        that cannot be written costs only that: the file is then read whole."""
        run.mark = local_marks.taken(run.launch)
        if run.mark is None:
            return
        try:
            local_marks.record(self.log_path(run.launch), self.log_dir, run.launch, run.mark)
        except (OSError, RefusedFile) as exc:
            log.warning("could not record what the metrics file of %s trial %d held before attempt %d (it is read "
                        "whole): %s", run.launch.study, run.launch.number, run.launch.attempt, exc,
                        extra=about(run.launch.study, run.launch.number))

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
                        run.launch.attempt, exc, extra=about(run.launch.study, run.launch.number))

    def _report(self, run: LocalRun, event: Event) -> None:
        """Publish the attempt's end, trying again while publishing fails; an end still
        unpublished is kept for :meth:`poll`."""
        error = publish_with_retries(self._publish, event, self._publish_delays,
                                     give_up=lambda: self._closed or run.stopped)
        if error is not None:
            log.error("could not report the end of %s trial %d attempt %d (%s), kept for the watcher: %s",
                      run.launch.study, run.launch.number, run.launch.attempt, event.id, error, extra=of_event(event))
            with self._lock:
                self._unreported[attempt_key(run.launch)] = event

    def _ended(self, run: LocalRun) -> None:
        key = attempt_key(run.launch)
        with self._lock:
            if run.stopped and not self._closed:
                self._keep_stopped_end(run)
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
        """End every process of the attempt that is still alive, and reap those adopted here.
        The guard process is left out of the look, with what it started: it starts nothing, and
        no trial's process can be adopted under it, as it is no ancestor of any; its exit status
        is the guard's own to collect."""
        guard = self._guard.pid
        keep = self._leaders() | ({guard} if guard is not None else set())
        process_tree.end(run.started.pid, run.marker.__eq__, self._kill_grace, keep=keep, since=run.since,
                         own=process_tree.adopts_orphans())

    def _kill(self, run: LocalRun) -> None:
        """End the attempt's whole process tree: SIGTERM, then SIGKILL after the grace period.
        The thread waiting for the attempt collects its main process (:meth:`_wait`)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.started.pid, signal.SIGTERM)
        self._contain(run)

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
            # The guard's pid is read as each child is looked at: one started again since is left too.
            orphans = process_tree.adopted(lambda p: p.pid in self._inherited or p.pid == self._guard.pid)
        process_tree.end_family(orphans, self._kill_grace)
        if orphans:
            log.warning("ended %d process(es) that trials left running outside their session and without "
                        "KATUNA_ATTEMPT_ID", len(orphans))

    def _leaders(self) -> set[int]:
        """The main processes of attempts, whose exit status their own threads wait for."""
        with self._lock:
            return {run.process.pid for run in self._active.values() if run.process is not None}
