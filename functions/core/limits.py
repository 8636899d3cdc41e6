"""Upper bounds on what one accepted study may ask of the service.

A study is checked against these at submission, so that no single request can occupy the
service or run up the cloud's bill: a count that keeps a write transaction busy for minutes, a grid that Optuna's
``GridSampler`` materialises point by point, a number too large for the float arithmetic of
the samplers, a node pool whose size, GPUs or number nobody bounds. Each bound has a documented
default; ``functions.settings.Settings.limits`` reads overrides from ``KATUNA_MAX_*`` variables
(and the machine types a pool may have from ``KATUNA_POOL_MACHINE_TYPES``, the EKS account's
quotas from ``KATUNA_EKS_NODES_PER_GROUP`` and ``KATUNA_EKS_GROUPS_PER_CLUSTER``).
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "KATUNA_"

MAX_EXACT_INT = 2**53
"""Integers of larger magnitude lose precision as floats, which Optuna turns them into."""

MAX_SEED = 2**32 - 1
"""NumPy's random states take seeds in ``[0, 2**32)``."""


@dataclass(frozen=True)
class EksQuotas:
    """The Amazon EKS service quotas of the account katuna's node groups live in, so that a study
    EKS would refuse is refused at submission, naming the field, rather than failing at create.

    Both are adjustable per account and region in the Service Quotas console; the defaults are
    AWS's (Amazon EKS User Guide, "Amazon EKS service quotas"). An operator whose account has a
    raised quota sets the figure it was raised to.
    """

    nodes_per_group: int = 450
    """"Nodes per managed node group" (L-BD136A63): the largest ``scalingConfig.maxSize``;
    ``KATUNA_EKS_NODES_PER_GROUP``."""

    groups_per_cluster: int = 30
    """"Managed node groups per cluster" (L-6D54EA21): what ``KATUNA_MAX_POOLS`` may not exceed
    on EKS; ``KATUNA_EKS_GROUPS_PER_CLUSTER``."""


@dataclass(frozen=True)
class Limits:
    """Bounds checked at submission; each is refused with a message naming the field and the limit."""

    parallelism: int = 1_000
    """Trials of one study running at once (``parallelism``, Katib's ``parallelTrialCount``)."""

    trials: int = 1_000_000
    """``maxTrials`` and ``maxFailedTrials``; the trials of a study without ``maxTrials`` too,
    which :mod:`functions.core.trial_cap` caps here, or lower to fit ``history`` and
    ``history_cells``."""

    grid: int = 100_000
    """Points of a grid search: the product of the parameters' value counts."""

    parameters: int = 256
    """Parameters of one study."""

    values: int = 10_000
    """Values of one categorical or discrete parameter."""

    duration: float = 366 * 24 * 3600.0
    """Seconds of ``timeBudget`` and of a trial's ``timeout``."""

    attempts: int = 100
    """``trialTemplate.maxAttempts``: runs of one trial whose attempts are preempted."""

    setting: int = 100_000
    """An integer sampler or pruner setting (candidates, population size, startup trials)."""

    text: int = 4_096
    """Characters of a metric filter or of a name (metric, parameter, environment variable)."""

    filters: int = 16
    """Filters of ``metricsCollector.filters`` (Katib's ``metricsFormat``): every line of a
    trial's output is matched against each of them, while the database's write lock is held.
    Katib's own examples give one."""

    filter_program: int = 1_000
    """Instructions of the programs RE2 compiles a study's metric filters to, all of them
    together. RE2 searches a line in time linear in its length, but times the size of that
    program where the search cannot use its DFA: ``((?:[ab]{0,30}){0,30})=(x)``, 26 characters,
    compiles to 1,839 instructions and took 19 s of the service's CPU per MiB of output naming a
    metric; 4,006 characters of such text, an hour per MiB, each filter. Under this bound, the
    costliest filters tried took under 0.5 s per MiB. Katib's default filter compiles to 40,
    its examples' to under 60, so 16 such filters fit."""

    objectives: int = 8
    """Objectives of one study (``objective.metrics``). Optuna's multi-objective samplers are
    made for a handful (NSGA-III's "many objectives" are four or more), and each one more widens
    the Pareto front every view of the study computes. Katib's Experiments have exactly one."""

    metrics: int = 64
    """Metrics one study collects: its objectives and ``objective.additionalMetrics`` together.
    Each is looked for in every line of output, and kept and shown for every trial."""

    warm_start: int = 1_000
    """Known results of a warm start in all: given inline in ``warmStart.trials`` (or its file)
    and taken from ``warmStart.study`` when the study is stored. The sampler learns from each of
    them at every suggestion."""

    pool_nodes: int = 100
    """Nodes of one study's node pool (``nodePool.maxNodes``; left out, it is the study's
    ``parallelism`` capped at this). 100 is the 0..100 spot pool katuna is made for, a tenth of
    what a GKE pool may hold."""

    pool_disk_gb: int = 1_000
    """GiB of the boot disk of each node of a study's pool (``nodePool.diskSizeGb``): a pool is
    billed for its nodes' disks as for their machines, and the clouds take up to 64 TiB a node
    (about 9 dollars a node-hour on a balanced disk, two hundred times a small spot machine), so
    a study's pool is refused past this. 1,000 is ten times GKE's default boot disk."""

    accelerators: int = 8
    """Accelerators (GPUs) on one node of a pool, all ``nodePool.accelerators`` counts together:
    8 is the most the usual GPU machine types carry (a2-highgpu-8g, a3-highgpu-8g)."""

    history: int = 100_000
    """Trials Optuna's storage may hold for one study: a process loads all of that study's the
    first time it serves it, and no other study's (about 300 bytes and 0.1-0.2 ms a trial; 12 s
    for 100,000 on a busy two-core machine, well within the 60 s gunicorn gives a ``katuna
    serve`` worker). A study whose ``maxTrials`` would take its history past it is refused, and
    so is a restart whose raised budget would, and an edit of a running study's resource that would; a study without ``maxTrials`` ends where its history is full; other studies and the database's age add nothing."""

    tpe_history: int = 2_000
    """Trials Optuna's storage may hold for a study of ``tpe`` or ``multivariate-tpe`` with three
    or more objectives, whose every suggestion, in the database's write lock, selects its good
    trials by a hypervolume subset selection costing about the cube of the trials: 0.9 s of CPU
    at 2,000 (three objectives; four: 6.5 s), 31 s at 8,000 (:mod:`functions.core.tpe_history`).
    Refused and capped as ``history`` is."""

    history_cells: int = 500_000
    """Values Optuna's storage may hold for one study (its trials' parameters, objective values
    and, with early stopping, intermediate values; a warm start's known results), which a
    process loads with the study's trials: a parameter's value takes about 0.7 KB loaded, so
    4,000 trials of 256 parameters took 680 MB. 500,000 admits 1,945 trials of 256 parameters
    (a load of 330 MB and 0.7 s of CPU) and 100,000 (``history``) of four (460 MB and 1.3 s,
    most of it the trials' own). A study
    whose ``maxTrials`` would take its history past it is refused as one past ``history`` is
    (:mod:`functions.core.history_cells`), and each trial of a study with early stopping keeps
    the intermediate values its share of it allows."""

    pools: int = 10
    """Node pools katuna's studies hold at once: the distinct pools of running studies and of
    ended ones not yet given back. A study whose pool would be one more is refused when it is
    submitted; one that shares a pool already held is not. 10 stays well under EKS's 30 managed
    node groups per cluster."""

    studies: int = 500
    """Studies not ended that the database holds at once, wherever they were submitted (the API,
    a study resource, ``katuna run``): one more, or an ended one restarted past it, is refused
    (``409 too_many_studies``). Each costs a ``katuna serve`` work at every tick of its watcher
    whether its trials run or wait their turn (about 0.6 ms of CPU a second a study, on a busy
    two-core machine), and holds up to ``parallelism`` trials asked of its sampler: without a
    bound, one client submitting small studies made the service's idle work grow without end.
    Studies that ended cost nothing."""

    eks: EksQuotas = EksQuotas()
    """The EKS account's quotas that bound an EKS node group (its nodes) and ``pools`` on EKS."""

    machine_types: tuple[str, ...] = ()
    """The GKE machine types and EC2 instance types a pool may have (``KATUNA_POOL_MACHINE_TYPES``,
    comma-separated); empty: any."""


DEFAULTS = Limits()
"""The documented defaults, for callers that are given no limits."""
