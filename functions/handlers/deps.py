"""What every handler is given: the ports it acts through (:class:`Deps`), and the lookups of
the studies this service runs, which leave to another a study whose trials run elsewhere or that
another live process runs.

A handler is ``handle(event, deps) -> list[Event]``: it reads state through the store, acts
through the executor, and returns the events to emit. It never talks HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from functions.core.cluster import Cluster
from functions.core.errors import Problem
from functions.core.installation import ORPHAN_GRACE
from functions.core.katib_trials import TRIALS_KEPT
from functions.core.launch import TrialLaunch
from functions.core.limits import DEFAULTS, Limits
from functions.core.node_hours import LOOK_EVERY
from functions.core.ports import Admissions, Clock, Executor, NodePools, Nodes, Resources, RunnerClaims, RunningLogs
from functions.core.records import LOCAL, StudyRecord, run_by_another, runs_elsewhere
from functions.core.spec import Study
from functions.core.store_port import Store
from functions.core.timeouts import POOL_WAIT
from functions.core.trial_reads_port import StudyLoad
from functions.handlers.parsed import ParsedOutput


@dataclass(frozen=True)
class Deps:
    """The ports a handler acts through."""

    store: Store
    executor: Executor
    clock: Clock
    node_pools: NodePools | None = None
    """The cluster's node pools in its cloud; None where no provider is configured."""
    resources: Resources | None = None
    """Study resources on Kubernetes, where the service watches them."""
    workdir: str = "."
    """Where relative trial working directories of submitted studies start."""
    limits: Limits = DEFAULTS
    """What a submitted study may ask of the service."""
    trial_defaults: Cluster = Cluster()
    """What trial Jobs get where a study says nothing (the service's settings)."""
    nodes: Nodes | None = None
    """The cluster's Node objects, for a study's measured node-hours; None where no cluster is asked."""
    node_look_seconds: float = LOOK_EVERY
    """How often at most a pool's nodes are listed."""
    pool_wait: float = POOL_WAIT
    orphan_grace: float = ORPHAN_GRACE
    """Seconds after its creation a pool this installation made is left though no stored study
    uses it (``KATUNA_ORPHAN_GRACE``, :mod:`functions.handlers.pool_orphans`)."""
    """Seconds a study's pool may be refused for now before the study fails."""
    lookahead: int = 0
    """Trials asked for ahead of a free slot (:mod:`functions.handlers.ahead`); 0: none."""
    running_trials: int | None = None
    """The most trials run at once across every study of the database whose trials run where
    this service runs them (``KATUNA_MAX_RUNNING_TRIALS``, :mod:`functions.handlers.spawn`);
    None: no bound but each study's ``parallelism``."""
    running_trials_set_by: str = "KATUNA_MAX_RUNNING_TRIALS"
    """What set :attr:`running_trials`, for the note of a trial that waits for room."""
    logs: RunningLogs | None = None
    """Running trials' logs, where progress is read from them (:mod:`functions.handlers.progress_scan`)."""
    admissions: Admissions | None = None
    """Where launched attempts may wait to be admitted (:func:`~functions.handlers.starting.look`): the trial Jobs of a cluster."""
    template_namespaces: tuple[str, ...] = ()
    """Where shared trial templates are kept, which a study resource may name besides its own
    namespace and katuna's (:mod:`functions.core.cluster_templates`)."""
    access_refusal: Callable[[Study], Problem | None] | None = None
    """Why katuna may not create a study's trial workloads where they would run, asked of the
    cluster (``InvalidStudy`` where it refuses the first trial's ``trialSpec`` workload as
    invalid); None where trials do not run on one."""
    parsed: ParsedOutput | None = None
    """The output of the attempt the handling ends, parsed before its transaction by the
    dispatcher (:mod:`functions.handlers.parsed`); None when it was not."""
    runs_on: str = LOCAL
    """Where this service runs trials (``KATUNA_EXECUTOR``): a study whose trials run elsewhere
    is left alone (:func:`study_here`)."""
    katib_trials_kept: int = TRIALS_KEPT
    """The most Trial resources of ended trials a Katib Experiment keeps on the cluster
    (``KATUNA_KATIB_TRIALS_KEPT``, :func:`~functions.core.katib_trials.kept_trials`)."""
    runner: RunnerClaims | None = None
    """This process, where trials are its processes (None: Jobs on a cluster): a study that
    another live process claimed (a ``katuna run`` of it) is left to it."""
    checkpoint_drops: Callable[[TrialLaunch], bool] | None = None
    """Ask the cluster to delete the checkpoints on ``KATUNA_CHECKPOINT_CLAIM`` of the study of
    a trial launch (:mod:`functions.core.checkpoint_drop`): whether it was asked (False: the study
    has none there, or the service no claim); None where trials do not run as Jobs."""
    checkpoint_prunes: Callable[[TrialLaunch, Sequence[int]], None] | None = None
    """Delete the checkpoint folders of the trials numbered so of the study of a trial launch,
    which no later trial copies (:mod:`functions.handlers.checkpoint_prunes`); None unless
    ``KATUNA_PRUNE_CHECKPOINTS`` is true."""


def study_here(deps: Deps, name: str) -> StudyRecord:
    """The stored study ``name``, to be run by this service: :class:`StudyRunsElsewhere` where
    its trials run elsewhere (:meth:`~functions.core.records.StudyRecord.runs_away_from`) or
    another live process runs it (:attr:`~functions.core.records.StudyRecord.runner`), which the
    dispatcher drops, as nothing here is to act on it."""
    record = deps.store.get_study(name)
    if record.runs_away_from(deps.runs_on):
        raise runs_elsewhere(record, deps.runs_on)
    other = _other_runner(deps, record)
    if other is not None:
        raise run_by_another(record, other)
    return record


def served_here(deps: Deps, records: list[StudyRecord]) -> list[StudyRecord]:
    """The studies of ``records`` this service runs: those whose trials run elsewhere, or that
    another live process runs, are left to it (:func:`study_here`)."""
    return [record for record in records
            if not record.runs_away_from(deps.runs_on) and _other_runner(deps, record) is None]


def loads_here(deps: Deps) -> list[StudyLoad]:
    """The trials running and waiting of the studies whose trials run where this service runs
    them, except the studies of a runner that is gone (a ``katuna run`` interrupted or killed
    leaves its trials stored running, with no process, until it is run again): those whose
    running trials count against :attr:`Deps.running_trials`, and whose waiting trials stand in
    line for room (:mod:`functions.handlers.turns`)."""
    return [load for load in deps.store.load_by_runner(deps.runs_on) if counted_here(deps, load.runner)]


def counted_here(deps: Deps, runner: str | None) -> bool:
    """Whether the trials of a study claimed by ``runner`` count here (:func:`loads_here`): all
    but those of a runner that is gone."""
    here = deps.runner
    return here is None or runner is None or runner == here.identity or here.other(runner) is not None


def _other_runner(deps: Deps, record: StudyRecord) -> int | None:
    """The pid of the live process other than this one that runs the unfinished study."""
    if deps.runner is None or record.terminal:
        return None
    return deps.runner.other(record.runner)
