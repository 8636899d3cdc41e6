"""The store port's reads of a study's trials (:class:`TrialReads`, part of
:class:`functions.core.store_port.Store`): by state and number, in pages, by change, in line for
room among the trials running at once, and as population-based training reads them; with the
rows some of them give.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, NamedTuple, Protocol

from functions.core.records import Counts, TrialRecord
from functions.core.trial_order import TrialKey
from functions.core.trial_query import TrialQuery


class StudyLoad(NamedTuple):
    """A study's trials running and waiting, as the bound on the trials running at once across
    studies counts them (:meth:`TrialReads.load_by_runner`)."""

    study: str
    runner: str | None
    ended: bool
    running: int
    waiting: int


class InLine(NamedTuple):
    """A waiting trial as it stands in line for room among the trials running at once
    (:meth:`TrialReads.waiting_line`)."""

    number: int
    attempt: int
    since: float
    """When its current attempt was suggested (:attr:`~functions.core.records.TrialRecord.suggested_since`)."""


class PopulationTrial(NamedTuple):
    """What population-based training reads of a trial, as :class:`TrialRecord` holds it."""

    number: int
    params: dict[str, Any]
    generation: int | None
    parent: int | None
    state: str
    values: list[float] | None
    reason: str | None = None
    """Why it failed (read of failed trials only)."""


class TrialReads(Protocol):
    """What the store reads of a study's trials."""

    def trials(self, study: str, states: Sequence[str] = ()) -> list[TrialRecord]:
        """The study's trials in ``states`` (all of them when ``states`` is empty), by number."""

    def count_trials(self, study: str) -> Counts:
        """The trials in each state (``stopped_at_end`` left 0: see :meth:`count_stopped_at_end`)."""

    def waiting_note(self, study: str) -> str | None:
        """Why the study's lowest-numbered waiting trial that says so waits (the note of its
        reason, :mod:`functions.core.admission`), else None."""

    def load_by_runner(self, runs_on: str) -> list[StudyLoad]:
        """The trials running and waiting now of each study whose trials run ``runs_on`` (local
        or kubernetes; or that says nothing, as run where it is served) and that has any, with
        the runner its row names (:attr:`~functions.core.records.StudyRecord.runner`)."""

    def waiting_line(self, study: str, slots: int | None, first: int, passed_over: str) -> list[InLine]:
        """Of the study's ``slots`` lowest-numbered waiting trials (None: all of them), but those
        whose reason begins ``passed_over``, the ``first`` that have waited longest (by since
        when, then number)."""

    def count_stopped_at_end(self, study: str) -> int:
        """Of the study's pruned trials, those stopped because it ended: counted apart, read where
        they are told apart (a study's view's ``stopped``, a Katib status's ``trialsKilled``),
        not at every trial's end."""

    def count_metrics_unavailable(self, study: str) -> int:
        """Of the study's failed trials, those that never reported their objective
        (:attr:`~functions.core.records.TrialRecord.metrics_unavailable`): a Katib
        Experiment's ``trialMetricsUnavailable``, read where it has failed trials."""

    def trial_changes(self, study: str, after: int) -> tuple[list[TrialRecord], int]:
        """The study's trials written (added or updated) since its trial change ``after`` (0:
        all of them), by number, and its latest trial change (``after`` when none is later)."""

    def latest_trial_change(self, study: str) -> int:
        """The study's latest trial change (0: none), as :meth:`trial_changes` gives it, without
        reading the trials changed."""

    def trials_after(self, study: str, after: int | None, limit: int) -> Generator[TrialRecord, None, None]:
        """Up to ``limit`` of the study's trials numbered above ``after`` (from the first when
        None), by number, read as they are taken."""

    def query_trials(self, study: str, query: TrialQuery) -> tuple[list[TrialRecord], int]:
        """One page of the trials that match ``query``, and how many match in all."""

    def trials_page(self, study: str, query: TrialQuery) -> tuple[int, Generator[TrialRecord, None, None]]:
        """How many trials match ``query`` in all, and its page of them read one at a time as
        they are taken: a page cut short by its bytes reads no further (closing it ends the read)."""

    def matching_trials(self, study: str, query: TrialQuery, page: int = 1000) -> Generator[TrialRecord, None, None]:
        """Every trial that matches ``query``, in its order, read a page at a time: a whole
        export's cost is one sort, whatever the study's size."""

    def keyed_trials(self, study: str, query: TrialQuery,
                     after: TrialKey | None) -> Generator[tuple[TrialKey, TrialRecord], None, None]:
        """Up to ``query.limit`` trials ``query`` matches, in its order, after the trial keyed
        ``after`` (None: from the first), each with its key, read as they are taken."""

    def best_trials(self, study: str, limit: int) -> list[TrialRecord]:
        """Completed trials, best first by the first objective; none of a study not stored (one
        another process deleted), as it has no trials to count."""

    def changed_values(self, study: str, after: int) -> tuple[list[tuple[int, list[float] | None]], int]:
        """The study's trials written (added or updated) since its trial change ``after`` (0: all
        of them), by number, each with its objective values where it is completed with values
        (None where not), and its latest trial change (``after`` when none is later)."""

    def population_trials(self, study: str, n_population: int) -> list[PopulationTrial]:
        """The trials a decision of population-based training of ``n_population`` reads, by
        number (:mod:`functions.adapters.sqlite_population`): the failed ones, each with the
        later trials of its generation and parent, and the newest generation with
        ``n_population`` succeeded trials with the next one; its decision on them is its
        decision on all of the study's trials."""

    def population_family(self, study: str, numbers: list[int],
                          generation: int | None) -> tuple[list[PopulationTrial], list[PopulationTrial]]:
        """The study's trials numbered ``numbers`` and the completed ones of ``generation``
        (None: none), and the trials whose parent is one of them, each by number
        (:mod:`functions.adapters.sqlite_population`)."""

    def newest_generation(self, study: str) -> tuple[int, int, int]:
        """The newest generation of the study's trials, its trials and those that completed,
        counted in one statement (0, 0, 0 while no trial has a generation)."""

    def initial_trials_held(self, study: str) -> set[int]:
        """The entries of the study's ``initialTrials`` its trials run (their indexes): each
        trial asked for one records it, and a trial discarded before it started frees it."""
