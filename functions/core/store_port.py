"""The store's port: what handlers need from katuna's storage of studies, trials, observations,
handled events and Optuna's state (:class:`Store`, which extends the reads of a study's trials,
:class:`~functions.core.trial_reads_port.TrialReads`), and the study lookups built on it.

Kept apart from the executor's and the cluster's ports (:mod:`functions.core.ports`): the store is
the largest port by far, and its contract reads best on its own. Adapters implement it
(``functions.adapters.sqlite_store``); handlers and tests depend only on this.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Hashable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from functions.core.errors import StudyNotFound
from functions.core.events import Event
from functions.core.kept_tails import KeptTail
from functions.core.log_cursor import Cursor
from functions.core.log_keep import Kept, LogRead
from functions.core.metrics import Observation, ObservationKey
from functions.core.pool_use import PoolUse
from functions.core.records import Counts, StudyRecord, TrialRecord
from functions.core.study_brief import StudyBrief
from functions.core.trial_reads_port import TrialReads

if TYPE_CHECKING:
    import optuna

    from functions.core.disruptions import LostPods


StudyKey = tuple[float, str]
"""A study's place in the order studies were stored, as a page of them is continued from it: its
creation time and its name, neither of which changes, and which together no other study has."""


class Store(TrialReads, Protocol):
    """Studies, trials, observations, processed events and Optuna's state, in one transaction scope;
    its reads of a study's trials are :class:`~functions.core.trial_reads_port.TrialReads`'."""

    def transaction(self) -> AbstractContextManager[None]:
        """Everything inside commits together or not at all (Optuna's writes included)."""

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Call ``effect`` once the transaction under way commits (at once outside one), never
        if it rolls back: an effect on the world that follows a decision is made only once the
        decision is stored (:mod:`functions.handlers.stopping`)."""

    def await_writers(self) -> None:
        """Return once no other process or thread is writing: a read after it sees every
        transaction that was under way when it was called, committed (or rolled back)."""

    def optuna_storage(self) -> optuna.storages.BaseStorage:
        """Optuna's storage of every study, for what wants them all (each is read on first use)."""

    def optuna_stream(self, name: str) -> optuna.storages.BaseStorage:
        """Optuna's storage of the study ``name`` alone, as :meth:`optuna_study` uses it: ids
        read from it are good in it only. ``KeyError`` when Optuna has no such study."""

    def optuna_history(self, name: str) -> int:
        """How many trials Optuna's storage holds for the study ``name`` (0 for none): what any
        process that serves it loads (:attr:`functions.core.limits.Limits.history`)."""

    def optuna_version(self, name: str) -> int:
        """How many records the study's Optuna journal holds (0 for none), each a value or more
        of what a process that serves it loads (:attr:`functions.core.limits.Limits.history_cells`)."""

    def optuna_study(self, name: str, directions: Sequence[str]) -> optuna.Study:
        """Optuna's view of a study, over its own storage (:meth:`optuna_stream`), created on first use."""

    def add_study(self, record: StudyRecord) -> StudyRecord:
        """Store a new study, or return the stored one when the definition is identical.

        Raises ``StudyConflict`` when the name holds a different definition.
        """

    def get_study(self, name: str) -> StudyRecord:
        """The stored study named ``name``; ``StudyNotFound`` when none is."""

    def list_studies(self) -> list[StudyRecord]:
        """Every stored study, oldest first (:meth:`studies_page` reads them a page at a time)."""

    def study_briefs(self) -> list[StudyBrief]:
        """Every stored study in brief, oldest first, as :meth:`list_studies` orders them, its spec
        never rebuilt: what the tick's passes over every study read (one whose spec cannot be
        rebuilt gives what its stored text holds). A study not ended is read whole, and its brief
        holds that record (:attr:`StudyBrief.whole`)."""

    def unended_studies(self) -> list[StudyRecord]:
        """The studies not ended (running, oldest first): a few, where a long-lived service
        stores thousands."""

    def unended_count(self) -> int:
        """How many studies have not ended, none of them read (``KATUNA_MAX_STUDIES``)."""

    def studies_page(self, limit: int, after: StudyKey | None = None) -> list[tuple[StudyKey, StudyRecord]]:
        """Up to ``limit`` studies after the one keyed ``after``, oldest first, each with its key
        (:data:`StudyKey`: a study's key is never another's, and studies stored later have
        larger ones)."""

    def newest_studies(self, limit: int, skip: int = 0) -> list[StudyRecord]:
        """The ``limit`` studies stored last, newest first, past the ``skip`` newest."""

    def claim_runner(self, name: str, uid: str, runner: str, alive: Callable[[str], bool]) -> str | None:
        """Name ``runner`` as the process that runs the study, unless another that ``alive``
        says lives is named (returned, nothing changed); of two claiming at once, one is named."""

    def release_runner(self, runner: str, within: float | None = None) -> None:
        """Give up ``runner``'s claims, as its runner closes: another process may run those
        studies, and each still tells that the process that ran it is gone. The write lock is
        awaited ``within`` seconds (the busy timeout by default)."""

    def update_study(self, name: str, **fields: Any) -> None:
        """Change fields of the stored record (``spec`` replaces the definition's normal form)."""

    def delete_study(self, name: str, uid: str | None = None) -> None:
        """Remove the study (that very study, given its ``uid``: ``StudyNotFound`` when another
        now holds the name), its trials and observations, and Optuna's twin."""

    def count_failure(self, name: str, uid: str) -> int | None:
        """Count one more failed handling of the study's events: the count so far, or None when
        no study ``name`` has that ``uid``."""

    def add_trial(self, trial: TrialRecord) -> None:
        """Store the trial, replacing the one stored with its study and number, if any."""

    def get_trial(self, study: str, number: int) -> TrialRecord | None:
        """The study's trial numbered ``number``; None when it is not stored."""

    def numbered_trials(self, study: str, numbers: Sequence[int]) -> list[TrialRecord]:
        """The study's trials of these ``numbers``, in their order; one not stored is left out."""

    def update_trial(self, study: str, number: int, **fields: Any) -> None:
        """Change fields of the stored trial, a change to report
        (:meth:`~functions.core.trial_reads_port.TrialReads.trial_changes`); ``StudyNotFound``
        for a trial that is not stored."""

    def log_read(self, study: str, number: int) -> LogRead:
        """How far the trial's running log was read, as last stored (nothing, for a trial that
        is not stored)."""

    def set_log_cursor(self, study: str, number: int, cursor: Cursor) -> None:
        """Store how far the reports in the trial's running log were handled. Like
        :meth:`set_log_kept`, no change of the trial to report
        (:meth:`~functions.core.trial_reads_port.TrialReads.trial_changes`); ``StudyNotFound``
        for a trial that is not stored."""

    def set_log_kept(self, study: str, number: int, kept: Kept) -> None:
        """Store what was kept of the trial's running log (replacing an earlier attempt's)."""

    def keep_tail(self, study: str, number: int, attempt: int, tail: KeptTail) -> None:
        """Keep the last lines of the attempt's log, read as katuna stopped it (one per attempt):
        a stop made again, once the pods are gone, reads none, and leaves lines kept before."""

    def kept_tail(self, study: str, number: int, attempt: int) -> KeptTail | None:
        """What was kept of the attempt's log as katuna stopped it; None when it kept nothing."""

    def lost_pods(self, study: str, number: int) -> LostPods:
        """The pods of the trial's attempt seen disrupted, as last stored (none, for a trial
        that is not stored)."""

    def set_lost_pods(self, study: str, number: int, lost: LostPods) -> None:
        """Store the pods of the trial's attempt seen disrupted; like :meth:`set_log_cursor`, no
        change of the trial to report; ``StudyNotFound`` for a trial that is not stored."""

    def recorded_events(self, study: str, numbers: Sequence[int]) -> dict[int, frozenset[str]]:
        """The names of the Kubernetes Events recorded about the Trials of the trials
        ``numbers``, by trial (none for a trial with none, or not stored)."""

    def add_recorded_events(self, study: str, names: Mapping[int, Sequence[str]]) -> None:
        """Add to the Events recorded about each trial's Trial those ``names`` gives it (two
        processes adding at once lose none); like :meth:`set_log_cursor`, no change of the trial
        to report. A trial that is not stored (its study deleted since) is left."""

    def recorded_study_events(self, study: str, uid: str) -> frozenset[str]:
        """The names of the Kubernetes Events recorded about the resource of the study with this
        ``uid`` (its ends); none for a study not stored, or stored under another uid."""

    def add_recorded_study_events(self, study: str, uid: str, names: Sequence[str]) -> None:
        """Add ``names`` to the Events recorded about the study's resource (two processes adding
        at once lose none); no change of the study to report. A study not stored under ``uid``
        (deleted or replaced since) is left."""

    def mark_stopping(self, study: str, numbers: Sequence[int]) -> None:
        """Mark the trials' workloads as still to be stopped."""

    def claim_stopping(self, study: str, numbers: Sequence[int]) -> list[int]:
        """Clear the marks of the trials ``numbers``, returning those that were marked (in a
        transaction: of two stops racing for a mark, one claims it)."""

    def take_stopping(self, marks: Sequence[tuple[str, int]], at: float) -> None:
        """Record that the stops of the marked trials ``marks`` (study, number) were taken at
        ``at`` (in a transaction of its own)."""

    def stopping_trials(self, limit: int, study: str | None = None) -> list[tuple[str, int]]:
        """Up to ``limit`` (study, trial number) whose workloads are still to be stopped: of
        ``study`` alone, when given, by number; else of every study, those never taken
        (:meth:`take_stopping`) first, then those taken least recently."""

    def discard_trial(self, study: str, number: int) -> None:
        """Forget a trial that was asked for and never started: it is no trial of the study
        anywhere (listings, counts, ``maxTrials``), and no sampler learns from it."""

    def trials_reported(self, study: str) -> int:
        """The trial change up to which the study's trials were reported (0: none yet)."""

    def set_trials_reported(self, study: str, change: int) -> None:
        """Record that the study's trials were reported up to ``change`` (a later one stays)."""

    def database(self) -> Hashable:
        """Which database the store reads (its file as opened): what a process keeps of one
        database's trials (a Pareto front, :mod:`functions.core.pareto`) is never taken for
        another's, whose trial change numbers count other changes."""

    def stored_front(self, study: str, uid: str, after: int = -1) -> tuple[int, list[tuple[int, list[float]]]] | None:
        """The Pareto front the store keeps for a study of several objectives (that very study:
        ``uid``), current as of its latest trial change (the write of each trial brings it up to
        date): that change and its trials' numbers and values; None when none is kept, or the one
        kept covers no trial change after ``after``."""

    def trials_marker(self, study: str) -> Hashable:
        """A cheap value that differs whenever a write could have changed the study's completed
        trials or their values (equal markers: the same completed values,
        :meth:`~functions.core.trial_reads_port.TrialReads.changed_values`)."""

    def add_observations(self, study: str, number: int, attempt: int, observations: Sequence[Observation]) -> None:
        """Replaces any observations stored earlier for the same attempt."""

    def append_observations(self, study: str, number: int, attempt: int, observations: Sequence[Observation],
                            keep: int) -> None:
        """Add observations after those stored for the attempt, then keep at most ``keep`` of
        them: the first half and the latest (as :class:`~functions.core.metric_summary.Summary` keeps them)."""

    def observations(self, study: str, number: int, attempt: int | None = None) -> list[Observation]:
        """The trial's observations in order (of one attempt, when given)."""

    def observations_after(self, study: str, number: int, after: ObservationKey | None,
                           limit: int) -> Generator[tuple[ObservationKey, Observation], None, None]:
        """At most ``limit`` of the trial's observations in order, each with its key, after the
        one keyed ``after`` (from the first when None), read one at a time."""

    def count_observations(self, study: str, number: int) -> int:
        """How many observations the trial has stored, of all its attempts."""

    def add_dead_letter(self, event: Event, reason: str) -> None:
        """Keep an event that could not be delivered, with why."""

    def dead_letters(self, limit: int = 100, before: int | None = None) -> Generator[dict[str, Any], None, None]:
        """Up to ``limit`` dead letters older than the one numbered ``before`` (the newest when
        None), newest first, each with its number (``id``), read as they are taken."""

    def processed(self, event_id: str, handler: str) -> list[Event] | None:
        """The events a handler emitted for the event of this key (its source and id:
        :func:`~functions.core.events.delivery_key`), or None if it never handled it."""

    def record_processed(self, event_id: str, handler: str, emitted: Sequence[Event]) -> None:
        """Record that ``handler`` handled the event keyed ``event_id`` and emitted ``emitted``: the
        idempotency record :meth:`processed` reads: a delivery made again gets the same events
        back, and changes nothing."""

    def pool_use(self, uid: str) -> PoolUse | None:
        """The node-pool use of the study with this uid, if it asked for a pool."""

    def save_pool_use(self, use: PoolUse) -> None:
        """Store a node-pool use, replacing the earlier version of it."""

    def pool_uses(self, phases: Sequence[str] = (), pool: str | None = None,
                  released_after: float | None = None) -> list[PoolUse]:
        """Node-pool uses in the given phases (all if none), of one pool if named, and (if a
        time is given) not released, or released after it."""


def stored_study(store: Store, name: str, uid: str | None = None) -> StudyRecord | None:
    """The study named ``name`` as ``store`` holds it now (with ``uid``, only while it is that
    very study, not one of its name made since); None when it holds none."""
    try:
        found = store.get_study(name)
    except StudyNotFound:
        return None
    return found if uid is None or found.uid == uid else None


def has_study(store: Store, name: str, uid: str | None = None) -> bool:
    """Whether ``store`` holds a study named ``name`` (with ``uid``, that very study)."""
    return stored_study(store, name, uid) is not None


def with_stopped(store: Store, study: str, counts: Counts) -> Counts:
    """``counts`` of the study's trials with those of its pruned that its end stopped
    (``stopped_at_end``), read only where it has pruned trials: what a person reads as
    stopped, not pruned, though stored ``PRUNED`` as Optuna has no other state for them."""
    return replace(counts, stopped_at_end=store.count_stopped_at_end(study)) if counts.pruned else counts


def with_unavailable(store: Store, study: str, counts: Counts) -> Counts:
    """``counts`` with those of the study's failed trials that never reported their objective
    (``metrics_unavailable``), read only where it has failed trials: a Katib Experiment's status
    counts them apart, as Katib's ``MetricsUnavailable``."""
    return replace(counts, metrics_unavailable=store.count_metrics_unavailable(study)) if counts.failed else counts


def trials_by_number(store: Store, study: str, page: int, after: int | None = None,
                     limit: int | None = None) -> Iterator[TrialRecord]:
    """The study's trials numbered above ``after`` (from the first when None), at most ``limit``
    of them (all when None), by number, read ``page`` at a time through the primary key: a
    reader that stops early reads no further, its memory stays that of a page at any study
    size, and trials added meanwhile come when their number is reached."""
    left = limit
    while left is None or left > 0:
        size = page if left is None else min(left, page)
        rows = list(store.trials_after(study, after, size))
        yield from rows
        if len(rows) < size:
            return
        after = rows[-1].number
        left = None if left is None else left - len(rows)
