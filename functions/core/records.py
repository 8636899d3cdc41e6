"""What the store keeps: study and trial records, and the trial states and study statuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from functions.core.errors import StudyRunsElsewhere
from functions.core.spec import Algorithm, KnownResult, Study

WAITING, RUNNING, COMPLETE, FAIL, PRUNED = "WAITING", "RUNNING", "COMPLETE", "FAIL", "PRUNED"
ACTIVE_STATES = (WAITING, RUNNING)
FINISHED_STATES = (COMPLETE, FAIL, PRUNED)
STOPPED_AT_END = "stopped: the study ended before the trial did"
"""How the reason of a trial stopped because its study ended begins: it is ``PRUNED`` (Optuna
has no other state for a trial ended before its end) but was stopped by no early-stopping
rule, so Katib's Trial shows it ``Killed``, not ``EarlyStopped``."""
METRICS_UNAVAILABLE = "metrics unavailable"
"""How the reason of a trial that ended without its objective's metrics begins
(:mod:`functions.core.unreported`); such a trial is marked so (:class:`Unreported`) too."""
SHOWN_STOPPED = "STOPPED"
"""The state a person reads for a trial stopped because its study ended
(:attr:`TrialRecord.shown_state`), as a study's counts count it ``stopped``."""
DISCARDED = "katuna:discarded"
"""The Optuna system attribute of a trial asked for and never started, which katuna forgot:
Optuna cannot forget a trial, so it keeps it failed, marked so that its views can leave it out."""

STUDY_RUNNING, COMPLETED, FAILED, STOPPED = "running", "completed", "failed", "stopped"
TERMINAL_STATUSES = (COMPLETED, FAILED, STOPPED)

LOCAL, KUBERNETES = "local", "kubernetes"
"""Where a study's trials run (:attr:`StudyRecord.runs_on`), as ``KATUNA_EXECUTOR`` names it."""
RUNS_ON = {LOCAL: "as local processes", KUBERNETES: "as Jobs on a Kubernetes cluster"}


@dataclass(frozen=True)
class TrialCap:
    """The most trials a study creates, and what set it: its own ``maxTrials``, or for a study
    without one the service's limits when it was admitted (:mod:`functions.core.trial_cap`)."""

    trials: int
    setting: str | None = None
    """The ``KATUNA_*`` variable whose limit set it, or ``grid`` (the size of a grid smaller than
    that: :func:`functions.core.trial_cap.shown_cap`); None: the study's own ``maxTrials``."""

    @property
    def reached(self) -> str:
        """How the stop rule says the study reached it (the words a restart looks for first)."""
        if self.setting is None:
            return f"max trials reached ({self.trials})"
        return f"max trials reached ({self.trials:,}, set by {self.setting} for a study without maxTrials)"


@dataclass(frozen=True)
class StudyRecord:
    """A stored study: its definition, where it came from, and how far it got."""

    spec: Study
    definition: dict[str, Any]
    base_dir: str
    uid: str
    status: str = STUDY_RUNNING
    reason: str = ""
    created_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    origin: Mapping[str, Any] | None = None
    """The Kubernetes resource the study came from (:class:`functions.core.resources.Origin` as a
    dict), or None for a study submitted over HTTP or the CLI."""
    seed: int | None = None
    """The sampler seed the study runs with: the definition's, or one chosen when the study
    started (:func:`functions.core.reproducible.seed_for`); None for studies stored before
    katuna recorded it."""
    katuna_version: str | None = None
    """The katuna release that started the study."""
    optuna_version: str | None = None
    """The Optuna release that started the study."""
    library_versions: Mapping[str, str] | None = None
    """The releases of the libraries its sampler draws on besides Optuna, by distribution name,
    when the study started (:func:`functions.core.reproducible.library_versions`); None for
    studies stored before katuna recorded them."""
    lookahead: int | None = None
    """The look-ahead of the process that started the study (trials asked for while others run):
    the trials a seeded study suggests depend on it; None for studies stored before katuna
    recorded it."""
    restarts: int = 0
    """How many times the study was reopened after it ended (:mod:`functions.core.resume`): the
    events of each run of it are told apart by it."""
    restarted_at: float | None = None
    """When it was last reopened."""
    warm_results: tuple[KnownResult, ...] | None = None
    """The completed trials of the study its warm start names (``warmStart.study``) that fit its
    space, taken when it was stored (:func:`functions.core.warm.study_results`): what its sampler
    learns from, whatever becomes of that study later. None where it names no study, and for a
    study stored before katuna took them (it reads that study when it starts)."""
    report_key: str = field(default="", repr=False)
    """The study's key for its attempts' progress tokens (:mod:`functions.core.report_token`):
    a secret of katuna's store, never shown."""
    stored_log_folder: str | None = None
    """Where its trial logs are, under the logs folder, as stored; None for a study not stored
    yet (see :attr:`log_folder`)."""
    trial_cap: TrialCap | None = None
    """The most trials a study without ``maxTrials`` creates, set by the limits when it was last
    admitted (submitted, restarted, edited); None for a study with ``maxTrials``, and for one
    stored before katuna kept it (:func:`functions.core.trial_cap.study_cap`)."""
    runs_on: str | None = None
    """Where the study's trials run: :data:`LOCAL` (processes of the service that stored it) or
    :data:`KUBERNETES` (Jobs on that service's cluster), as the service that stored or last
    restarted it runs them; None for a study stored before katuna kept it, run where it is served."""
    runner: str | None = None
    """The ``katuna run`` that claimed the study's run (``pid:start time``); None while none has."""

    @property
    def max_trials(self) -> int | None:
        """The most trials the study creates as stored: its ``maxTrials``, else its
        :attr:`trial_cap`; None only for a study stored before katuna kept that."""
        if self.spec.max_trials is not None:
            return self.spec.max_trials
        return self.trial_cap.trials if self.trial_cap is not None else None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def log_folder(self) -> str:
        """Where its trial logs are, under the logs folder: ``<name>/<uid>``, so a later study of
        the same name never writes over them; just ``<name>`` for studies stored before."""
        return self.stored_log_folder or f"{self.name}/{self.uid}"

    @property
    def algorithm(self) -> Algorithm:
        """The study's sampler, with the seed it actually runs with."""
        algorithm = self.spec.algorithm
        if algorithm.seed is None and self.seed is not None:
            return replace(algorithm, seed=self.seed)
        return algorithm

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def runs_away_from(self, executor: str) -> bool:
        """Whether a service whose ``KATUNA_EXECUTOR`` is ``executor`` must leave the study alone:
        its trials run elsewhere (a database copied off a cluster's volume and served on a
        laptop holds running studies whose trials are Jobs there). Such a service would find
        none of their attempts, take each as lost and run it again as its own: the study's
        commands on a machine that never ran them, or Jobs for trials still running on a laptop."""
        return runs_away(self.runs_on, executor)

    def owns(self, data: Mapping[str, Any]) -> bool:
        """Whether event data is about this study and not an earlier one of the same name."""
        return data.get("uid") == self.uid


def runs_away(runs_on: str | None, executor: str) -> bool:
    """Whether a study whose trials run ``runs_on`` (None: stored before katuna kept it, run
    where it is served) is left alone by a service whose ``KATUNA_EXECUTOR`` is ``executor``."""
    return runs_on is not None and runs_on != executor


def runs_elsewhere(record: StudyRecord, runs_on: str) -> StudyRunsElsewhere:
    """The refusal to run a study whose trials run elsewhere, saying where and what to do."""
    return StudyRunsElsewhere(
        f"study {record.name!r} runs its trials {_where(record)}, where the service that stored it runs them; here "
        f"trials run {RUNS_ON.get(runs_on, runs_on)}, so katuna leaves the study to that service (this database "
        f"was copied from, or is shared with, its own). To run it here, stop it and submit it under another "
        f"name (with warmStart.study naming it, to start from its completed trials); once it has ended by "
        f"reaching maxTrials, submitting it with maxTrials raised restarts it here")


def run_by_another(record: StudyRecord, pid: int) -> StudyRunsElsewhere:
    """The refusal to run a study another live process on the database runs (its runner)."""
    return StudyRunsElsewhere(
        f"study {record.name!r} is run by a `katuna run` on this database (process {pid}), which runs its trials "
        f"and reads their logs; katuna leaves the study to it while it lives")


def stop_reach(record: StudyRecord) -> str:
    """What a stop made here leaves of a study whose trials run elsewhere: it ends the study in
    this database; a service that runs its trials on this very database stops them at its next
    sweep of the cluster's strays (within a minute), one on another copy of it never does."""
    return (f"this stops it in this database: its trials run {_where(record)}, where the service that stored it "
            "runs them; a service on this database deletes them within a minute, one on another copy of it "
            "does not: stop it there too")


def _where(record: StudyRecord) -> str:
    """Where the study's trials run, in words (``as Jobs on a Kubernetes cluster``)."""
    return RUNS_ON.get(record.runs_on or "", str(record.runs_on))


@dataclass(frozen=True)
class Unreported:
    """The mark stored beside the verdict of a trial that ended without its objective's metrics
    (its reason begins with :data:`METRICS_UNAVAILABLE`): the objectives it never reported, and
    what its last lines printed instead where the default text rule read them, the metrics they
    report (``printed``, with the ``field`` that names the objective) and an objective printed as
    ``name: value`` (``colon``, with the ``rule_field`` whose rule could read it). The stop rule of
    :mod:`functions.core.unreported` and Katib's ``MetricsUnavailable`` count read this, never
    the reason's words, which may be reworded."""

    missing: tuple[str, ...]
    printed: tuple[str, ...] = ()
    field: str = ""
    colon: str = ""
    rule_field: str = ""


@dataclass(frozen=True)
class TrialRecord:
    """A stored trial. ``values`` are the objectives in order; ``metrics`` every reduced metric."""

    study: str
    number: int
    params: dict[str, Any]
    state: str = WAITING
    attempt: int = 1
    values: list[float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    exit_code: int | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    image_digest: str | None = None
    """The trial image as the cluster ran it (a pod's ``imageID``, with its digest), where it says."""
    peak_memory: int | None = None
    """The most resident memory, in bytes, that the ended attempt's process held, where its
    executor measured it (:mod:`functions.adapters.local_exits`)."""
    generation: int | None = None
    """Population-based training: the trial's generation (0 for one drawn from the space)."""
    parent: int | None = None
    """Population-based training: the trial whose checkpoint folder the trial's started as a
    copy of (None in the first generation)."""
    initial_trial: int | None = None
    """The entry of the study's ``initialTrials`` the trial runs, by index (None for one the
    sampler suggested: :mod:`functions.core.initial_trials`)."""
    suggested_at: float | None = None
    """When its current attempt was suggested, where that is a later attempt than the first
    (the first was suggested when the trial was created). See :meth:`suggested_since`."""
    unreported: Unreported | None = None
    """Set by the verdict of a trial that ended without its objective's metrics (:class:`Unreported`)."""

    @property
    def suggested_since(self) -> float:
        """When the trial's current attempt was suggested: how long its ``trial.suggested``
        has had to arrive."""
        return self.created_at if self.suggested_at is None else self.suggested_at

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def stopped_at_end(self) -> bool:
        """Whether the trial was stopped because its study ended (not by an early-stopping rule)."""
        return self.state == PRUNED and self.reason.startswith(STOPPED_AT_END)

    @property
    def metrics_unavailable(self) -> bool:
        """Whether the trial failed only because it never reported its objective (it exited
        without error): Katib's ``MetricsUnavailable``, which it counts apart from ``Failed``."""
        return self.state == FAIL and self.unreported is not None

    @property
    def shown_state(self) -> str:
        """The state a person reads: :data:`SHOWN_STOPPED` for a trial stopped because its study
        ended, the stored state otherwise (both stopped trials are stored ``PRUNED``, which
        filters by state still match)."""
        return SHOWN_STOPPED if self.stopped_at_end else self.state


def stale_attempt(trial: TrialRecord | None, number: int, attempt: int) -> str | None:
    """Why an event of trial ``number``'s ``attempt`` no longer bears on the trial (``trial``,
    as stored now): it is not there, has ended, or is at another attempt. None while that
    attempt is the trial's current one and has not ended: the one whose end ``collect`` takes,
    and whose events' dead letters fail the study (:mod:`functions.handlers.failures`)."""
    if trial is None:
        return f"the study has no trial {number}"
    if trial.finished:
        return f"trial {number} has ended ({trial.state})"
    return None if trial.attempt == attempt else f"trial {number} is at attempt {trial.attempt}, not {attempt}"


@dataclass(frozen=True)
class Counts:
    """How many trials of a study are in each state."""

    waiting: int = 0
    running: int = 0
    complete: int = 0
    failed: int = 0
    pruned: int = 0
    stopped_at_end: int = 0
    """Of the ``pruned``, those stopped because the study ended (:data:`STOPPED_AT_END`); counted only
    where they are told apart (:func:`~functions.core.store_port.with_stopped`)."""
    metrics_unavailable: int = 0
    """Of the ``failed``, those that never reported their objective
    (:attr:`TrialRecord.metrics_unavailable`); counted only where a Katib Experiment's status
    counts them apart (:func:`~functions.core.store_port.with_unavailable`)."""

    def shown(self) -> dict[str, int]:
        """The trials as a study's view counts them: in each state, but those the study's end
        stopped counted ``stopped``, apart from those early stopping ``pruned`` (both stored
        ``PRUNED``, as Optuna has no other state for them), as Katib counts them Killed apart
        from EarlyStopped: each trial counted once, their sum the study's trials. The service's
        ``katuna_trials`` and ``katuna_trials_finished`` metrics count so too."""
        return {"complete": self.complete, "failed": self.failed, "pruned": self.pruned - self.stopped_at_end,
                "stopped": self.stopped_at_end, "running": self.running, "waiting": self.waiting}

    @property
    def active(self) -> int:
        return self.waiting + self.running

    @property
    def finished(self) -> int:
        return self.complete + self.failed + self.pruned

    @property
    def created(self) -> int:
        return self.active + self.finished


@dataclass(frozen=True)
class Census:
    """What the store holds, across studies: studies by status, running studies by where their
    trials run (None: stored before katuna recorded it), trials by state, node-pool uses by
    phase, and how many of those uses wait on a cloud operation; and what only grows: the trials
    that ended, by state (a :class:`Counts` of the ended states), and the dead letters received."""

    studies: Mapping[str, int]
    running_on: Mapping[str | None, int]
    trials: Counts
    pool_uses: Mapping[str, int]
    pool_operations: int
    trials_finished: Counts = field(default_factory=Counts)
    dead_letters: int = 0

    def running_for(self, executor: str) -> int:
        """The running studies a service whose ``KATUNA_EXECUTOR`` is ``executor`` runs: not
        those it leaves to another (:meth:`StudyRecord.runs_away_from`)."""
        return sum(count for place, count in self.running_on.items() if not runs_away(place, executor))


def optimal_value(trial: TrialRecord, record: StudyRecord) -> float:
    """A trial's objective value as Katib's ``currentOptimalTrial`` reads it: a completed
    trial's value, else (one stopped early) its objective metric's reduced value."""
    return trial.values[0] if trial.values else trial.metrics[record.spec.objectives[0].metric]
