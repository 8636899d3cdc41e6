"""The study model: an immutable, validated study definition.

Instances come from :func:`functions.core.validate.parse_study`; ``to_dict`` gives back the
normalised native format, which parses to an equal study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from functions.core.cluster import Cluster
from functions.core.early_stopping import EarlyStopping
from functions.core.nodepool import NodePool, place_trials
from functions.core.parameters import Parameter

MINIMIZE = "minimize"
MAXIMIZE = "maximize"
STRATEGIES = ("min", "max", "latest")


@dataclass(frozen=True)
class KnownResult:
    """A result known before the study began: parameters and their objective values."""

    params: Mapping[str, Any]
    values: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"params": dict(self.params), "values": list(self.values)}


@dataclass(frozen=True)
class WarmStart:
    """Results the sampler learns from before the first trial (:mod:`functions.core.warm`
    parses them): inline ``trials``, or those of an earlier ``study`` in the same database."""

    study: str | None = None
    trials: tuple[KnownResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.study:
            out["study"] = self.study
        if self.trials:
            out["trials"] = [t.to_dict() for t in self.trials]
        return out


@dataclass(frozen=True)
class Objective:
    """One optimised metric, its direction, and an optional goal that ends the study."""

    metric: str
    direction: str
    goal: float | None = None

    def reached(self, value: float) -> bool:
        """Whether ``value`` meets the goal (inclusive, as in Katib)."""
        if self.goal is None:
            return False
        return value <= self.goal if self.direction == MINIMIZE else value >= self.goal


@dataclass(frozen=True)
class Algorithm:
    """The sampler by registry name, its settings, and an optional seed."""

    name: str = "tpe"
    settings: tuple[tuple[str, Any], ...] = ()
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "settings": dict(self.settings)}
        if self.seed is not None:
            out["seed"] = self.seed
        return out


MAX_ATTEMPTS = 5
"""``trialTemplate.maxAttempts`` when a study gives none."""


@dataclass(frozen=True)
class TrialTemplate:
    """How one trial runs: an argv with ``${trialParameters.x}`` placeholders, and its context.

    ``image`` and ``resources`` are used only when trials run on a cluster. ``max_attempts``
    bounds the runs a trial may lose to preemption (killed from outside): its attempts, and on a
    cluster the disrupted pods of each attempt's Job (:mod:`functions.core.disruptions`). Instead of
    ``command``, a Katib-style ``trial_spec`` (a whole Job) may describe the trial.
    """

    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str | None = None
    timeout: float | None = None
    image: str | None = None
    resources: tuple[tuple[str, str], ...] = ()
    max_attempts: int = MAX_ATTEMPTS
    trial_spec: Mapping[str, Any] | None = None
    primary_container: str | None = None
    success_condition: str | None = None
    """GJSON path into the ``trialSpec`` workload that holds once it succeeded (the kind's default if unset)."""
    failure_condition: str | None = None
    primary_pod_labels: tuple[tuple[str, str], ...] = ()
    """The labels of the trial's pods whose primary container holds its metrics (Katib's
    ``primaryPodLabels``); none: the kind's default primary pods."""
    retain: bool = False
    """Keep the finished trial's workload on the cluster (no TTL, never deleted)."""
    typed_fields: tuple[tuple[str | int, ...], ...] = ()
    """The ``trial_spec`` strings read as one plain YAML scalar once substituted (a number where
    the value is one): those a template read as text wrote unquoted, as Katib types them."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"maxAttempts": self.max_attempts}
        if self.command:
            out["command"] = list(self.command)
        if self.trial_spec is not None:
            out["trialSpec"] = self.trial_spec
        if self.primary_container:
            out["primaryContainerName"] = self.primary_container
        if self.success_condition:
            out["successCondition"] = self.success_condition
        if self.failure_condition:
            out["failureCondition"] = self.failure_condition
        if self.primary_pod_labels:
            out["primaryPodLabels"] = dict(self.primary_pod_labels)
        if self.retain:
            out["retain"] = True
        if self.typed_fields:
            out["typedFields"] = [list(path) for path in self.typed_fields]
        optional = {
            "env": dict(self.env),
            "workingDir": self.working_dir,
            "timeout": self.timeout,
            "image": self.image,
            "resources": dict(self.resources),
        }
        out.update({k: v for k, v in optional.items() if v not in (None, {})})
        return out


@dataclass(frozen=True)
class MetricsCollector:
    """Where a trial's metrics are read from: its output (default) or a file, as text or JSON."""

    kind: str = "stdout"
    path: str | None = None
    format: str = "text"
    filters: tuple[str, ...] = ()
    non_finite: str = "fail"
    """What a NaN or infinite report is: ``fail`` (the objective's fails the trial) or ``skip``
    (Katib's rule: no value; a metric is reduced over its finite reports)."""
    steps: str = "named"
    """Which step an intermediate value of the objective is: ``named`` (the ``step`` or
    ``epoch`` its line names; each report one, counted, in output naming none) or ``reports``
    (Katib's collector's count: each report the next step, whatever its line names)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "format": self.format}
        if self.path is not None:
            out["path"] = self.path
        if self.filters:
            out["filters"] = list(self.filters)
        if self.non_finite != "fail":
            out["nonFinite"] = self.non_finite
        if self.steps != "named":
            out["steps"] = self.steps
        return out


@dataclass(frozen=True)
class Study:
    """A complete, validated study definition."""

    name: str
    objectives: tuple[Objective, ...]
    parameters: tuple[Parameter, ...]
    trial_template: TrialTemplate
    additional_metrics: tuple[str, ...] = ()
    strategies: tuple[tuple[str, str], ...] = ()
    algorithm: Algorithm = field(default_factory=Algorithm)
    parallelism: int = 3
    max_trials: int | None = None
    max_failed_trials: int | None = None
    time_budget: float | None = None
    metrics_collector: MetricsCollector = field(default_factory=MetricsCollector)
    kubernetes: Cluster = field(default_factory=Cluster)
    early_stopping: EarlyStopping | None = None
    warm_start: WarmStart | None = None
    node_pool: NodePool | None = None
    initial_trials: tuple[Mapping[str, Any], ...] = ()
    """Points the first trials run, in order, each once (:mod:`functions.core.initial_trials`):
    a parameter an entry leaves out is drawn by the sampler."""

    @property
    def trial_cluster(self) -> Cluster:
        """Where trial Jobs run: the ``kubernetes`` section, placed on the study's node pool."""
        return place_trials(self.kubernetes, self.node_pool)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Every collected metric: the objectives first, then the additional ones."""
        return tuple(o.metric for o in self.objectives) + self.additional_metrics

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def strategy(self, metric: str) -> str:
        """How repeated values of ``metric`` are reduced to one (Katib's defaults)."""
        explicit = dict(self.strategies).get(metric)
        if explicit:
            return explicit
        for objective in self.objectives:
            if objective.metric == metric:
                return "min" if objective.direction == MINIMIZE else "max"
        return "min" if self.objectives[0].direction == MINIMIZE else "max"

    def to_dict(self) -> dict[str, Any]:
        objective: dict[str, Any] = {
            "metrics": [
                {"name": o.metric, "direction": o.direction}
                | ({"goal": o.goal} if o.goal is not None else {})
                for o in self.objectives
            ]
        }
        if self.additional_metrics:
            objective["additionalMetrics"] = list(self.additional_metrics)
        if self.strategies:
            objective["strategies"] = dict(self.strategies)
        out: dict[str, Any] = {
            "name": self.name,
            "objective": objective,
            "parameters": [p.to_dict() for p in self.parameters],
            "algorithm": self.algorithm.to_dict(),
            "parallelism": self.parallelism,
            "trialTemplate": self.trial_template.to_dict(),
            "metricsCollector": self.metrics_collector.to_dict(),
            "kubernetes": self.kubernetes.to_dict(),
        }
        if self.early_stopping is not None:
            out["earlyStopping"] = self.early_stopping.to_dict()
        if self.warm_start is not None:
            out["warmStart"] = self.warm_start.to_dict()
        if self.node_pool is not None:
            out["nodePool"] = self.node_pool.to_dict()
        if self.initial_trials:
            out["initialTrials"] = [dict(entry) for entry in self.initial_trials]
        optional = {
            "maxTrials": self.max_trials,
            "maxFailedTrials": self.max_failed_trials,
            "timeBudget": self.time_budget,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out


def known_results(spec: Study, taken: Sequence[KnownResult] | None) -> tuple[KnownResult, ...]:
    """The known results the study's warm start gives its sampler, in the order they open its
    Optuna history: those given (inline or in a file), then those ``taken`` from an earlier
    study (kept with the stored study; None where none were taken). Every count and use of them
    starts here: the history's room, the grid's cover, the sampler's start."""
    given = spec.warm_start.trials if spec.warm_start is not None else ()
    return (*given, *(taken or ()))
