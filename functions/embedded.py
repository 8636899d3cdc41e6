"""The embedded default: store, local executor and in-process broker wired together.

This is the composition root for ``katuna run``: nothing here decides anything about a study;
it delivers events until the study ends, and watches for what no event announces (a stop from
another process, a time budget running out, an event lost on the way).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import optuna

from functions.adapters.broker import LocalBroker, MemoryQueue
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.owners import Runner, alive, pid_of
from functions.adapters.sqlite_queue import SqliteQueue
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import KatunaError, NewerDatabase, StudyNotFound
from functions.core.events import TRIAL_FINISHED, TRIAL_SUGGESTED, Event, study_completed, study_created
from functions.core.launch import trial_launch
from functions.core.records import RUNNING, StudyRecord
from functions.core.spec import Study
from functions.core.store_port import stored_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.ahead import startable
from functions.handlers.submit import store_or_restart
from functions.pools import check_study
from functions.settings import Settings
from functions.watch import Watcher

RELEASE_WAIT = 2.0
"""Seconds :meth:`Embedded.close` waits for the database's write lock to give up its claims: a
``katuna run`` stopped while another process holds the database (a backup, an ``sqlite3``
shell) would otherwise wait out the busy timeout after its trials were stopped, saying nothing."""


class Embedded:
    """One process running studies end to end on this machine."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time, sole_parent: bool = False) -> None:
        """``sole_parent``: this process starts no child but the trials (``katuna run``), so an
        orphan a trial left outside its session is ended (:class:`LocalExecutor`)."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.settings = settings
        self.store = SqliteStore(settings.db, settings.busy_timeout, network=settings.network_rule(service=False))
        self.executor = LocalExecutor(settings.logs, self._publish, pass_env=settings.passed_to_trials,
                                      max_checkpoint=settings.max_checkpoint, max_tfevents=settings.max_tfevents,
                                      sole_parent=sole_parent)
        self.deps = Deps(self.store, self.executor, clock, limits=settings.limits, lookahead=settings.lookahead,
                         runner=Runner(self.executor.identity), running_trials=settings.max_running_trials,
                         running_trials_set_by=settings.running_trials_set_by,
                         checkpoint_prunes=self.executor.prune_checkpoints if settings.prune_checkpoints else None)
        self.dispatcher = Dispatcher(self.deps)
        self.broker = LocalBroker(self, on_dead_letter=self._dropped, done_soon=self._none_runs)
        self._running: set[str] = set()
        """The studies this process runs (:meth:`run`): the events about any other go to the database's queue."""
        self._service_queue: SqliteQueue | None = None

    def deliver(self, event: Event) -> list[Event]:
        """The events to deliver here after handling ``event`` (:meth:`Dispatcher.deliver`): once
        this process runs studies (:meth:`run`), those about them; the rest are sent on
        (:meth:`_send_on`)."""
        emitted = self.dispatcher.deliver(event)
        if not self._running:
            return emitted
        return self._keep_here(emitted, unnamed_here=True)

    def _keep_here(self, emitted: list[Event], unnamed_here: bool) -> list[Event]:
        """Those of ``emitted`` about the studies this process runs (and, with ``unnamed_here``,
        those naming no study), in their order; the rest are sent on (:meth:`_send_on`)."""
        here: list[Event] = []
        elsewhere: list[Event] = []
        for event in emitted:
            study = event.data.get("study")
            if (unnamed_here and study is None) or (isinstance(study, str) and study in self._running):
                here.append(event)
            else:
                elsewhere.append(event)
        self._send_on(elsewhere)
        return here

    def _send_on(self, events: list[Event]) -> None:
        """Put ``events`` in the database's event queue, which a ``katuna serve`` on the database
        takes from: the ``trial.suggested`` of its studies' waiting trials, handed the room this
        process's trials left (:mod:`functions.handlers.turns`), which this process does not start
        (they are the service's), and which would otherwise wait for their own refused event's
        back-off. A put that fails raises, so the handling is delivered again, answered with
        the same events."""
        if not events:
            return
        queue = self._service_queue = self._service_queue or SqliteQueue(
            self.settings.db, self.settings.busy_timeout, network=self.settings.network_rule(service=False))
        for event in events:
            queue.put(event)

    def _dropped(self, event: Event, error: KatunaError) -> None:
        """An event refused for good fails its study with the reason, as a dead letter does on
        Knative: the run ends saying why, instead of waiting on a trial whose end was lost."""
        if not error.retryable:
            for ended in self.dispatcher.fail_dead_letter(event, str(error)):
                self.broker.publish(ended)

    def _publish(self, event: Event) -> None:
        """A trial's end is handled on the thread that saw it, which has nothing else to do;
        its progress is queued, so reading a trial's output never waits on a handler. The run's
        own thread is woken after an end only once none of the study's trials runs: only then
        may the run be over (:meth:`run`)."""
        if event.type == TRIAL_FINISHED:
            self.broker.publish_and_handle(event)
        else:
            self.broker.publish(event)

    def _none_runs(self, event: Event) -> bool:
        """Whether none of the trials of the event's study runs here any more: only then may a
        run be over (:meth:`run`), so only then is its thread woken after a trial's end."""
        study = event.data.get("study")
        return not self.executor.running(study if isinstance(study, str) else None)

    def submit(self, spec: Study, definition: dict, base_dir: Path) -> StudyRecord:
        """Store the study (or find the identical one stored before, or restart the ended Katib
        Experiment whose trial budget the definition raises, as Katib does)."""
        check_study(spec, definition, self.settings, runs_jobs=False)
        return store_or_restart(replace(self.deps, workdir=str(base_dir)), spec, definition)[0]

    def other_runner(self, record: StudyRecord) -> int | None:
        """The pid of another live process that claimed the study's run, else None, this process
        claiming it. The claim is kept in the database, so a ``katuna run`` of the study with
        another trial-log folder (``KATUNA_LOG_DIR``, or the database reached through a link) is
        seen, and of two runs started at once, one runs the study and the other is told so."""
        if record.terminal:
            return None
        held = self.store.claim_runner(record.name, record.uid, self.executor.identity, alive)
        return None if held is None else pid_of(held)

    def runs_elsewhere(self, record: StudyRecord) -> int:
        """How many of the study's running trials another live process runs (``katuna serve``,
        another ``katuna run`` on the same database): a run that joined it would share its
        parallelism with that process, which makes trials of its own too."""
        if record.terminal:
            return 0
        return sum(self.executor.exists(trial_launch(record, trial))
                   for trial in self.store.trials(record.name, (RUNNING,)))

    def run(self, name: str, on_tick: Callable[[], None] = lambda: None) -> StudyRecord:
        """Run (or resume) the study until it ends and its trials are gone.

        What exists when the run starts (modules, Optuna's objects, the store's) is kept out of
        the garbage collector's sight while it runs (:func:`gc.freeze`): a full collection would
        walk all of it, holding every thread (a trial's end included) for milliseconds, where
        the run's own objects are what may become garbage. It is handed back when the run ends."""
        gc.freeze()
        try:
            return self._run(name, on_tick)
        finally:
            gc.unfreeze()

    def _run(self, name: str, on_tick: Callable[[], None]) -> StudyRecord:
        """Claim the study as this process's to run (``katuna show`` tells by the claim whether
        its runner is gone), then deliver its events until it ends; raises
        :class:`StudyNotFound` once its trials are stopped if another process deleted it (or
        stored another study under its name) meanwhile, and :class:`NewerDatabase` at the first
        tick after a newer katuna migrated the database: nothing could be stored any more (the
        ends of its trials included), so the run stops instead of retrying for ever."""
        record = self.store.get_study(name)
        self._running.add(name)
        self.executor.claim_study(record.log_folder)
        self.broker.publish(study_created(name, record.uid, record.restarts))
        followed = _Followed(self.store, self.executor, record)
        watcher = Watcher(self.deps, self.broker.events, followed.current, stop_local=self.executor.stop_study)
        refused: list[NewerDatabase] = []

        def tick() -> None:
            try:
                watcher.tick()
                self._hurry_waiting(followed)
                if not followed.gone:
                    on_tick()
            except NewerDatabase as exc:
                refused.append(exc)

        def finished() -> bool:
            """Whether the study ended and its trials are gone. Asked each time the loop wakes
            (after every trial's end), so the study is read only once no trial runs: while one
            does, the run goes on whatever is stored, and the ticks read the study (noticing
            its deletion) a few times a second."""
            if self.executor.running(name):
                return False
            studies = followed.current()
            return not studies or studies[0].terminal

        self.broker.run(until=finished, tick=tick, halt=lambda: bool(refused))
        if refused:
            raise refused[0]
        studies = followed.current()
        if not studies:
            raise deleted_while_running(name)
        return studies[0]

    def _hurry_waiting(self, followed: _Followed) -> None:
        """Under ``KATUNA_MAX_RUNNING_TRIALS``, deliver now the ``trial.suggested`` of the study's
        trials refused room, once room is free for them (:func:`~functions.handlers.ahead.startable`):
        room another process's trial left (a ``katuna serve``'s, another run's), which no event
        here tells of, where they would otherwise wait out their back-off (up to 30 seconds).
        Those of trials no longer waiting (started by another delivery, or their study ended)
        are delivered now too, changing nothing: a ``katuna run`` ends only once its queue is
        empty. Only the queue is looked at while none of them waits out one."""
        queue = self.broker.events
        if self.deps.running_trials is None or not isinstance(queue, MemoryQueue):
            return
        name = followed.name

        def refused(event: Event) -> bool:
            return event.type == TRIAL_SUGGESTED and event.data.get("study") == name

        if not queue.retried(refused):
            return
        studies = followed.current()
        counts = self.store.count_trials(name)
        if not studies or studies[0].terminal or not counts.waiting or startable(studies[0], self.deps, counts):
            queue.hurry(refused)

    def stop(self, name: str, reason: str = "stopped by user") -> None:
        """Stop a study, here or in another process running it (which notices and kills its
        trials). What the handling sends on about a study this process does not run goes to the
        database's queue (:meth:`_send_on`): under ``KATUNA_MAX_RUNNING_TRIALS``, the room the
        stopped trials freed, handed to the waiting trials of the studies a ``katuna serve``
        runs, which would otherwise wait for their own refused event's back-off."""
        record = self.store.get_study(name)
        emitted = self.dispatcher.deliver(study_completed(name, record.uid, "stopped", reason, record.restarts))
        for event in self._keep_here(emitted, unnamed_here=False):
            self.broker.publish(event)

    def close(self) -> None:
        """Stop: a handler reading a trial's output gives up at once (its attempt's end is
        handled when the study resumes), then nothing more is handled, the trials still running
        are killed, the studies this process claimed are given up (its process may live on: a
        notebook's) and the store is closed. The claims wait at most :data:`RELEASE_WAIT` for a
        database another process holds; left, they name this process until it ends, which
        every other process then tells."""
        self.executor.stop_reads()
        self.broker.close()
        self.executor.shutdown()
        with suppress(KatunaError):
            self.store.release_runner(self.executor.identity, RELEASE_WAIT)
        if self._service_queue is not None:
            self._service_queue.close()
        self.store.close()


def deleted_while_running(name: str) -> StudyNotFound:
    """The error of a run whose study another process deleted (``DELETE /studies/{name}``)."""
    return StudyNotFound(f"study {name!r} was deleted by another process (its trials were stopped)")


class _Followed:
    """The study a run follows, as stored now: gone for good once another process deleted it (or
    stored another study under its name), and its trials here then stopped."""

    def __init__(self, store: SqliteStore, executor: LocalExecutor, record: StudyRecord) -> None:
        self._store = store
        self._executor = executor
        self._record = record
        self.name = record.name
        self.gone = False

    def current(self) -> list[StudyRecord]:
        """The study as stored now; none once it is gone."""
        if self.gone:
            return []
        stored = stored_study(self._store, self._record.name, self._record.uid)
        if stored is not None:
            return [stored]
        self.gone = True
        self._executor.stop_study(self._record.name, self._record.uid)
        return []
