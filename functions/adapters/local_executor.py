"""The executor port on this machine: each trial attempt a subprocess, never a shell.

This module launches and stops attempts, each started, watched and contained by
:mod:`functions.adapters.local_attempts`. Output (stdout and stderr) goes to a
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
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path

from functions.adapters import local_checkpoints, local_ends, local_exits, local_marks, local_outputs
from functions.adapters.local_attempts import LocalAttempts
from functions.adapters.local_run import Key, attempt_key
from functions.adapters.owners import RUNNER
from functions.adapters.trial_ends import finished_event
from functions.core.errors import InvalidStudy, Problem
from functions.core.events import Event
from functions.core.launch import TrialLaunch
from functions.core.log_keep import Kept
from functions.core.ports import Place, Strays

SWEEP_SCANS = 30.0
"""Seconds a shutdown allows in all, beyond the kill grace, for ending what dead processes left: each
look for their processes reads every process of the machine, which a loaded machine makes slow,
and ``katuna stop`` must not return while they live."""


class LocalExecutor(LocalAttempts):
    """Implements :class:`functions.core.ports.Executor` with local processes.

    ``pass_env`` names variables of the service's environment that trials get too
    (``KATUNA_TRIAL_ENV``); ``publish_delays`` are the waits before each new try of reporting an
    end; ``max_checkpoint`` and ``max_tfevents`` the bytes of a parent's checkpoint folder copied
    and of an attempt's event records read, at most (``KATUNA_MAX_CHECKPOINT``,
    ``KATUNA_MAX_TFEVENTS``). The executor makes its process a child subreaper, and unreadable to its trials
    (:func:`functions.adapters.process_tree.hide_from_trials`).
    """

    def launch(self, launch: TrialLaunch) -> None:
        """Register the attempt and start its process now (a trial slot is refilled without a
        hand-off between threads); a worker thread then waits for it to end. Processes left by
        an earlier run of the trial whose owner died (a service killed with ``kill -9``) are
        ended first, and a child trial's checkpoint folder is copied from its parent's
        (population-based training), on the worker thread, before the process starts there: the
        caller holds the database's write transaction, which neither may hold for seconds. The
        owner file is written after the start, off the path to it, and before the caller's
        transaction makes the attempt visible to other processes."""
        if not launch.argv:
            raise InvalidStudy([Problem("trialTemplate.primaryContainerName", "names no container of the trialSpec "
                                        "that could run as a local process")])
        key = attempt_key(launch)
        launch = local_checkpoints.told_where(launch, self.log_dir)
        run = self._book.register(launch)
        if run is None:
            return
        try:
            log = local_outputs.new_log(self.log_path(launch), self.log_dir)
        except BaseException:
            self._book.forget(key)
            raise
        strays = self._abandoned(launch)
        if strays or launch.checkpoint is not None:
            self._workers.submit(partial(self._start_when_ready, run, log, strays))
        else:
            self._workers.submit(self._start(run, log))
        self._owners.claim(self._owner_path(launch))
        self._book.claim(key)
        self._owners.claim_runner(self.log_path(launch).with_name(RUNNER))

    @property
    def identity(self) -> str:
        """This process, as its claims name it (``pid:start time``)."""
        return self._owners.identity

    def claim_study(self, log_folder: str) -> None:
        """Name this process as the runner of the study whose logs go to ``log_folder`` (made
        where it is not there yet, as a trial's log makes it), before any trial of it starts:
        ``katuna run`` claims it at once, so a run killed before its first trial is told apart
        from one that is starting it."""
        runner = self.log_dir / log_folder / RUNNER
        os.close(local_outputs.open_folder(runner, self.log_dir))
        self._owners.claim_runner(runner)

    def exists(self, launch: TrialLaunch) -> bool:
        if self._book.knows(attempt_key(launch)):
            return True
        return self._owners.owned_elsewhere(self._owner_path(launch))

    def stop(self, launch: TrialLaunch, keep: bool = False) -> None:
        """Stop the trial's attempts running here, and any left by a process that died (a
        process leaves nothing to ``keep``: its output stays in the trial's files either way)."""
        self._stop(lambda s, u, n, a: (s, u, n) == (launch.study, launch.uid, launch.number))
        strays = self._abandoned(launch)
        if strays:
            sweeper = threading.Thread(target=self._containment.end_strays, args=(strays,), daemon=True)
            sweeper.start()
            self._sweepers.append(sweeper)

    def together(self, launches: Sequence[TrialLaunch]) -> AbstractContextManager[None]:
        """Nothing to read together: the processes are this one's children."""
        return contextlib.nullcontext()

    def stop_trials(self, launches: Sequence[TrialLaunch], keep: bool = False) -> None:
        """Stop each trial's attempts as :meth:`stop` does (signals to processes: nothing to gather)."""
        for launch in launches:
            self.stop(launch, keep)

    def last_lines(self, launch: TrialLaunch, keep: bool = False, seen: Callable[[str], None] | None = None,
                   after: Kept | None = None) -> None:
        """None: an attempt's log is a file of its own, which stopping it leaves as it is; with
        ``seen``, its lines are handed to it, read once (:meth:`output`): no running log is
        read here, so nothing was kept of it (``after``)."""
        if seen is not None:
            for line in self.output(launch):
                seen(line)
        return None

    def poll(self, launch: TrialLaunch) -> Event | None:
        """The end of an attempt that ended here but could not be reported; ends are otherwise
        reported as they happen, never learnt by asking."""
        return self._book.end_of(launch)

    def recorded_end(self, launch: TrialLaunch) -> Event | None:
        """The end of an attempt that no process runs any more, as recorded beside its log when
        its process ended on its own (:mod:`functions.adapters.local_ends`): the handling of that
        end was given up, or lost with the process that ran it. None without such a record."""
        end = local_ends.recorded(self.log_path(launch), launch)
        return None if end is None else finished_event(launch, end.code, end.timed_out, end.interrupted, end.memory)

    def stop_study(self, study: str, uid: str | None = None) -> None:
        """Stop every attempt of the study (of that uid, if given) that is still running here."""
        self._stop(lambda s, u, n, a: s == study and uid in (None, u))

    def stop_attempts(self, selected: Callable[[str, str, int, int], bool]) -> None:
        """Stop the attempts running here that ``selected(study, uid, number, attempt)`` accepts."""
        self._stop(selected)

    def stop_strays(self, wanted: Strays, places: Collection[Place]) -> None:
        """Stop the attempts running here that ``wanted`` calls strays (a process has nothing to keep)."""
        self._stop(wanted.stray)

    def drop_kept(self, study: str, uid: str, place: Place) -> None:
        """Nothing: a process keeps no workload once it ended, ``retain`` or not."""

    def prune_checkpoints(self, launch: TrialLaunch, numbers: Sequence[int]) -> None:
        """Delete the checkpoint folders of the trials ``numbers`` of the study of ``launch``
        (:func:`~functions.adapters.local_checkpoints.pruned`), which no later trial copies."""
        if launch.checkpoint is not None:
            local_checkpoints.pruned(self.log_dir, Path(launch.checkpoint.folder).parent, numbers)

    def lingers(self, launch: TrialLaunch) -> bool:
        """False: an attempt's processes end with it (:mod:`functions.adapters.process_tree`)."""
        return False

    def attempts(self) -> list[Key]:
        """``(study, uid, number, attempt)`` of every attempt running here."""
        return self._book.keys()

    def _stop(self, selected: Callable[[str, str, int, int], bool]) -> None:
        for run in self._book.to_stop(selected):
            if run.stopped:
                continue
            run.stopped = True
            run.woken.set()
            if run.process is not None and not local_exits.ended(run.process):
                threading.Thread(target=self._containment.kill, args=(run,), daemon=True).start()

    def running(self, study: str | None = None) -> int:
        """How many attempts (of one study, or of all) have not ended yet."""
        return self._book.count(study)

    def shutdown(self) -> None:
        """Kill every running attempt without reporting it, recording it as interrupted: the
        study stays resumable, and its resume runs those attempts again, uncounted."""
        self._closed = True
        runs = self._book.active()
        for run in runs:
            run.woken.set()
        killed = [run for run in runs if run.process is not None and not run.done.is_set()]
        for run in killed:
            run.interrupted = not (run.stopped or run.timed_out) and not local_exits.ended(run.started)
        threads = [threading.Thread(target=self._containment.kill, args=(run,)) for run in killed]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ends_by = time.monotonic() + self._containment.kill_grace + 2
        for run in runs:
            run.done.wait(timeout=max(0.0, ends_by - time.monotonic()))
        self._containment.end_adopted()
        deadline = time.monotonic() + self._containment.kill_grace + SWEEP_SCANS
        for sweeper in self._sweepers:
            sweeper.join(timeout=max(0.0, deadline - time.monotonic()))
        self._containment.guard.close()
        self._owners.release()
        self._workers.close()

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
        """The attempt's metrics file or event folder, only what it added to them
        (:mod:`.local_marks`), the folder's records for at most ``max_tfevents`` bytes; any
        other ``path``, whole."""
        mark = local_marks.recorded(self.log_path(launch), launch) if path == launch.metrics_file else None
        return local_outputs.read_file(launch, path, self._reads_stopped.is_set, mark, self._max_tfevents)
