"""The attempts of a :class:`functions.adapters.local_executor.LocalExecutor`, each a subprocess of
this one: its start (a child trial's checkpoint folder copied first, on a worker thread; what
kept it from starting, where it failed to), the wait for its end
(within its timeout, its output streamed or its metrics file followed meanwhile), every
process it started ended with it (:mod:`functions.adapters.local_containment`), and its end
recorded beside its log and reported.

The executor's port (launches, stops, counts, reads, shutdown) acts on these steps, and on the
attempts' book (:mod:`functions.adapters.local_book`): the runs by attempt, those still active,
and the ends to answer when asked (:meth:`LocalExecutor.poll`).
"""


from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import BinaryIO

from functions.adapters import local_ends, local_exits, local_marks, local_outputs, process_tree
from functions.adapters.local_book import Book
from functions.adapters.local_containment import Containment
from functions.adapters.local_progress import ProgressReports, streamed
from functions.adapters.local_run import LocalRun, ids
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
from functions.core.tfevent_budget import MAX_READ

log = logging.getLogger("katuna.executor")


class LocalAttempts:
    """The attempts this process runs, and the steps of each from its start to its reported end."""

    def __init__(self, log_dir: Path, publish: Callable[[Event], None], kill_grace: float = process_tree.KILL_GRACE,
                 pass_env: Iterable[str] = (), publish_delays: Iterable[float] = PUBLISH_DELAYS,
                 sole_parent: bool = False, max_checkpoint: int = 4 << 30, space_wait: float = SPACE_WAIT,
                 max_tfevents: int = MAX_READ) -> None:
        self.log_dir = Path(log_dir)
        self._max_checkpoint = max_checkpoint
        """Bytes of a parent's checkpoint folder copied for a child trial, at most."""
        self._max_tfevents = max_tfevents
        """Bytes of records read of an attempt's event files, at most (``KATUNA_MAX_TFEVENTS``)."""
        self._space_wait = space_wait
        """Seconds a child trial's checkpoint copy waits for space on a full disk, in all (:data:`SPACE_WAIT`)."""
        self._publish = publish
        self._pass_env = tuple(pass_env)
        self._publish_delays = tuple(publish_delays)
        self._progress = ProgressReports(publish)
        self._closed = False
        self._book = Book(lambda: self._closed)
        """The attempts known here, those active, and the ends :meth:`poll` answers."""
        self._reads_stopped = threading.Event()
        """Set once the process stops: reads of trials' output then end (:meth:`stop_reads`)."""
        self._owners = Owners(self.log_dir)
        self._workers = Workers()
        self._sweepers: list[threading.Thread] = []
        """Threads ending what dead processes left behind, which a shutdown waits for."""
        self._containment = Containment(self._book, kill_grace, sole_parent)
        """Ends the attempts' processes: each attempt's, strays', orphans'."""

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
                         if not self._book.claimed((launch.study, launch.uid, launch.number, attempt))
                         and self._owners.abandoned(self._owner_path(launch, attempt)))

    def _start_when_ready(self, run: LocalRun, log: BinaryIO, strays: frozenset[str]) -> None:
        """On a worker thread, off the launching handler's transaction: end every process the
        abandoned attempts of the trial left behind (``strays``), make its checkpoint folder
        (:func:`~functions.adapters.local_space_waits.checkpoint_made`), then start the attempt,
        unless it was stopped or the executor closed meanwhile."""
        if strays:
            self._containment.end_strays(strays)
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

    def _start(self, run: LocalRun, log: BinaryIO) -> Callable[[], None]:
        """Start the attempt's process; the job that waits for its end."""
        launch = run.launch
        run.since = process_tree.boot_ticks() - os.sysconf("SC_CLK_TCK")
        self._containment.guard.starting(run.marker)
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
        self._containment.guard.started(run.marker, run.process.pid)
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
            self._containment.kill(run)
        self._wait(run)

    def _wait(self, run: LocalRun) -> None:
        """Wait for the main process (this thread alone collects its status, with its peak
        memory: :mod:`.local_exits`), end whatever it left behind, then report the end; only
        then look for orphans (:meth:`.Containment.end_adopted`), off the path to the successor's start. Its
        progress reports are all published before its end, but for a shutdown, which reports no
        end: a report waiting on a database another process holds would hold up the record of
        the end, which the shutdown waits for, by as long as the busy timeout."""
        end = local_exits.wait_within(run.started, local_timeout(run.launch), run.floor)
        if end is None:
            run.timed_out = True
            self._containment.kill(run)
            end = local_exits.wait(run.started, run.floor)
        self._containment.contain(run)
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
        self._containment.end_adopted()

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
            self._book.unreported(run.launch, event)

    def _ended(self, run: LocalRun) -> None:
        """The attempt is no longer active (:meth:`Book.ended`), nor guarded; whoever waits for it is told."""
        self._book.ended(run)
        self._containment.guard.ended(run.marker)
        run.done.set()
