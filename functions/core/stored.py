"""A stored study spec back into a :class:`Study`, without validating it again.

A study is validated once, when it is submitted; the store keeps ``Study.to_dict()`` (the
normalised native format) with :data:`SPEC_VERSION`. Loading it is the exact inverse of
``to_dict``: a later, stricter validator never re-rejects a study it accepted before, so a study
stored under older rules still loads, shows, stops and deletes. Specs stored before the version
was kept load the same way, and so do parameters stored before they had a ``distribution``
(uniform). What cannot be rebuilt at all (no mapping, no name) raises
:class:`UnreadableSpec`, and the store shows such a row as a failed study (see
:func:`unreadable_study`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.cluster import TRIAL_TAINT, Cluster
from functions.core.early_stopping import EarlyStopping
from functions.core.errors import PermanentError
from functions.core.nodepool import GKE, NodePool
from functions.core.parameters import (
    UNIFORM,
    CategoricalParameter,
    DiscreteParameter,
    FloatParameter,
    IntParameter,
    Parameter,
)
from functions.core.spec import (
    MAX_ATTEMPTS,
    Algorithm,
    KnownResult,
    MetricsCollector,
    Objective,
    Study,
    TrialTemplate,
    WarmStart,
)

SPEC_VERSION = 1
"""The shape of the stored spec: version 1 is ``Study.to_dict()``; raise it when that changes,
and teach :func:`study_from_dict` to read every earlier version."""


class UnreadableSpec(PermanentError):
    """A stored spec that no study can be rebuilt from (damaged, or not a spec at all)."""


def study_from_dict(data: Any) -> Study:
    """The :class:`Study` whose ``to_dict()`` gave ``data``; :class:`UnreadableSpec` if none can be built."""
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
        raise UnreadableSpec("the stored spec is not a study: expected a mapping with a name")
    try:
        return _study(data)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise UnreadableSpec(f"the stored spec cannot be read: {type(exc).__name__}: {exc}") from exc


def unreadable_study(name: str) -> Study:
    """A stand-in for a study whose stored spec cannot be read: its name and nothing to run."""
    return Study(name=name, objectives=(), parameters=(), trial_template=TrialTemplate(command=()))


def _number(data: Mapping[str, Any], key: str, kinds: tuple[type, ...]) -> Any:
    """A count or duration that stop rules and pages compute with: of its type, or unreadable."""
    value = data.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
        raise UnreadableSpec(f"the stored spec cannot be read: {key} is {value!r}, not a number")
    return value


def _study(data: Mapping[str, Any]) -> Study:
    objective = data.get("objective") or {}
    optional = {key: _number(data, key, (int,)) for key in ("parallelism", "maxTrials", "maxFailedTrials")}
    optional["timeBudget"] = _number(data, "timeBudget", (int, float))
    return Study(
        name=data["name"],
        objectives=tuple(Objective(o["name"], o["direction"], o.get("goal")) for o in objective.get("metrics", ())),
        parameters=tuple(_parameter(p) for p in data.get("parameters", ())),
        trial_template=_trial_template(data.get("trialTemplate") or {}),
        additional_metrics=tuple(objective.get("additionalMetrics", ())),
        strategies=tuple(sorted((objective.get("strategies") or {}).items())),
        algorithm=_algorithm(data.get("algorithm") or {}),
        parallelism=3 if optional["parallelism"] is None else optional["parallelism"],
        max_trials=optional["maxTrials"],
        max_failed_trials=optional["maxFailedTrials"],
        time_budget=optional["timeBudget"],
        metrics_collector=_collector(data.get("metricsCollector") or {}),
        kubernetes=_cluster(data.get("kubernetes") or {}),
        early_stopping=_early_stopping(data["earlyStopping"]) if "earlyStopping" in data else None,
        warm_start=_warm_start(data["warmStart"]) if "warmStart" in data else None,
        node_pool=_node_pool(data["nodePool"]) if "nodePool" in data else None,
        initial_trials=tuple(dict(entry) for entry in data.get("initialTrials", ())),
    )


def _parameter(data: Mapping[str, Any]) -> Parameter:
    when = tuple((name, tuple(values)) for name, values in (data.get("when") or {}).items())
    kind, name, log = data["type"], data["name"], bool(data.get("log", False))
    drawn = data.get("distribution", UNIFORM)
    if kind == "int":
        return IntParameter(name, data["min"], data["max"], data.get("step") or 1, log, drawn, when=when)
    if kind == "float":
        return FloatParameter(name, data["min"], data["max"], data.get("step"), log, drawn, when=when)
    values = tuple(data.get("values", ()))
    return DiscreteParameter(name, values, when=when) if kind == "discrete" else CategoricalParameter(name, values, when=when)


def _algorithm(data: Mapping[str, Any]) -> Algorithm:
    return Algorithm(data.get("name", "tpe"), tuple(sorted((data.get("settings") or {}).items())), data.get("seed"))


def _trial_template(data: Mapping[str, Any]) -> TrialTemplate:
    return TrialTemplate(
        command=tuple(data.get("command", ())),
        env=tuple(sorted((data.get("env") or {}).items())),
        working_dir=data.get("workingDir"),
        timeout=data.get("timeout"),
        image=data.get("image"),
        resources=tuple(sorted((data.get("resources") or {}).items())),
        max_attempts=data.get("maxAttempts", MAX_ATTEMPTS),
        trial_spec=data.get("trialSpec"),
        primary_container=data.get("primaryContainerName"),
        success_condition=data.get("successCondition"),
        failure_condition=data.get("failureCondition"),
        primary_pod_labels=tuple(sorted((data.get("primaryPodLabels") or {}).items())),
        retain=bool(data.get("retain")),
        typed_fields=tuple(tuple(path) for path in data.get("typedFields") or ()),
    )


def _collector(data: Mapping[str, Any]) -> MetricsCollector:
    return MetricsCollector(data.get("kind", "stdout"), data.get("path"), data.get("format", "text"),
                            tuple(data.get("filters", ())), data.get("nonFinite", "fail"), data.get("steps", "named"))


def _cluster(data: Mapping[str, Any]) -> Cluster:
    tolerations = data.get("tolerations")
    return Cluster(
        namespace=data.get("namespace"),
        service_account=data.get("serviceAccountName"),
        automount_token=data.get("automountServiceAccountToken"),
        run_as_user=data.get("runAsUser"),
        image_pull_secrets=tuple(data.get("imagePullSecrets") or ()),
        ttl_seconds_after_finished=data.get("ttlSecondsAfterFinished"),
        backoff_limit=data.get("backoffLimit", 0),
        node_selector=tuple(sorted((data.get("nodeSelector") or {}).items())),
        tolerations=tuple(tolerations) if tolerations is not None else (TRIAL_TAINT,),
    )


def _early_stopping(data: Mapping[str, Any]) -> EarlyStopping:
    return EarlyStopping(data["algorithm"], tuple(sorted((data.get("settings") or {}).items())), data.get("patience"))


def _warm_start(data: Mapping[str, Any]) -> WarmStart:
    return WarmStart(data.get("study"), known_results(data.get("trials", ())))


def known_results(data: Any) -> tuple[KnownResult, ...]:
    """Known results stored as ``KnownResult.to_dict()`` gave them."""
    return tuple(KnownResult(dict(t["params"]), tuple(t["values"])) for t in data)


def _node_pool(data: Mapping[str, Any]) -> NodePool:
    provider = data["provider"]
    machines = (data["machineType"],) if provider == GKE and "machineType" in data else tuple(data.get("instanceTypes", ()))
    return NodePool(
        name=data["name"], provider=provider, capacity=data.get("capacity", "spot"), machine_types=machines,
        max_nodes=data.get("maxNodes", 3), disk_size_gb=data.get("diskSizeGb"),
        accelerators=tuple((a["type"], a["count"]) for a in data.get("accelerators", ())),
        labels=tuple(sorted((data.get("labels") or {}).items())), shared=bool(data.get("shared", False)),
        price_per_node_hour=data.get("pricePerNodeHour"), currency=data.get("currency"),
    )
