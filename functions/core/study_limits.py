"""A study's fields against the service's limits (:class:`functions.core.limits.Limits`)."""

from __future__ import annotations

from functions.core import pbt
from functions.core.errors import Problem
from functions.core.limits import PREFIX, Limits
from functions.core.metric_filters import filter_program
from functions.core.nodepool import NodePool
from functions.core.parameters import ChoiceParameter
from functions.core.reader import shown
from functions.core.spec import Study
from functions.core.tpe_candidates import candidate_problems


def over_limits(study: Study, limits: Limits) -> list[Problem]:
    """A problem for each field of ``study`` past its bound, naming the field, the bound and
    the ``KATUNA_MAX_*`` variable that sets it."""
    template = study.trial_template
    checks = [
        ("parallelism", study.parallelism, limits.parallelism, "PARALLELISM"),
        ("maxTrials", study.max_trials, limits.trials, "TRIALS"),
        ("maxFailedTrials", study.max_failed_trials, limits.trials, "TRIALS"),
        ("timeBudget", study.time_budget, limits.duration, "DURATION"),
        ("trialTemplate.timeout", template.timeout, limits.duration, "DURATION"),
        ("trialTemplate.maxAttempts", template.max_attempts, limits.attempts, "ATTEMPTS"),
        ("parameters", len(study.parameters), limits.parameters, "PARAMETERS"),
        ("warmStart.trials", len(study.warm_start.trials) if study.warm_start else None, limits.warm_start,
         "WARM_START"),
    ]
    checks += [(f"parameters[{i}].values", len(p.values), limits.values, "VALUES")
               for i, p in enumerate(study.parameters) if isinstance(p, ChoiceParameter)]
    checks += [("objective.metrics", len(study.objectives), limits.objectives, "OBJECTIVES"),
               ("objective.additionalMetrics", len(study.metric_names), limits.metrics, "METRICS")]
    checks += _pool_checks(study.node_pool, limits)
    return [Problem(path, f"expected at most {bound:,}{_UNITS.get(variable, '')} (set by {PREFIX}MAX_{variable}), "
                          f"got {value:,}")
            for path, value, bound, variable in checks if value is not None and value > bound] + \
        _name_problems(study.metric_names, limits.text) + \
        _filter_problems(study.metrics_collector.filters, limits.filter_program) + _population_problems(study) + \
        candidate_problems(study, limits)


def _population_problems(study: Study) -> list[Problem]:
    """A study of population-based training without ``maxTrials``, or past
    :data:`~functions.core.pbt.MOST_TRIALS`."""
    if study.algorithm.name != pbt.NAME or (study.max_trials is not None and study.max_trials <= pbt.MOST_TRIALS):
        return []
    given = "none" if study.max_trials is None else f"{study.max_trials:,}"
    return [Problem("maxTrials", f"expected at most {pbt.MOST_TRIALS:,} with the pbt algorithm, got {given}: each of "
                                 "its trials is decided from every trial before it")]


_UNITS = {"DURATION": " seconds", "POOL_DISK_GB": " GiB"}


def _name_problems(names: tuple[str, ...], bound: int) -> list[Problem]:
    """A problem for each metric name longer than ``bound`` characters, naming it."""
    return [Problem("objective", f"expected metric names of at most {bound:,} characters (set by {PREFIX}MAX_TEXT), "
                                 f"got {shown(name)}, of {len(name):,}") for name in names if len(name) > bound]


def _filter_problems(filters: tuple[str, ...], bound: int) -> list[Problem]:
    """A problem when the programs RE2 compiles the metric filters to pass ``bound``
    instructions together: every line of output that names a metric is searched with each, at
    a cost per byte that grows with its program (:attr:`Limits.filter_program`)."""
    sizes = [filter_program(pattern) for pattern in filters]
    if sum(sizes) <= bound:
        return []
    each = ", ".join(f"filters[{i}]: {size:,}" for i, size in enumerate(sizes))
    return [Problem("metricsCollector.filters",
                    f"expected regular expressions RE2 compiles to at most {bound:,} instructions in all (set by "
                    f"{PREFIX}MAX_FILTER_PROGRAM), got {sum(sizes):,} ({each}): every line of output naming a metric "
                    "is searched with each filter, at a cost that grows with its program; write simpler filters "
                    "(no nested or long counted repetitions)")]


def _pool_checks(pool: NodePool | None, limits: Limits) -> list[tuple[str, int | None, int, str]]:
    """The node pool's size, its nodes' boot disk and the accelerators on each of its nodes (all its entries'
    counts together, named by the only entry where there is one)."""
    if pool is None:
        return []
    gpus = sum(count for _, count in pool.accelerators)
    where = "nodePool.accelerators[0].count" if len(pool.accelerators) == 1 else "nodePool.accelerators"
    return [("nodePool.maxNodes", pool.max_nodes, limits.pool_nodes, "POOL_NODES"),
            ("nodePool.diskSizeGb", pool.disk_size_gb, limits.pool_disk_gb, "POOL_DISK_GB"),
            (where, gpus, limits.accelerators, "ACCELERATORS")]
