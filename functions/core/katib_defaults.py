"""A Katib ``v1beta1`` Experiment spec as Katib stores it: with the defaults its mutating
webhook writes in (``Experiment.SetDefault``), and without the zero values its Go types drop.

Katib's validating webhook compares an edited Experiment's spec with the stored one after both
were defaulted, with Kubernetes' semantic equality, which takes an empty list or map for a
missing one; its typed fields drop an empty string or ``false`` (``omitempty``). So an
Experiment applied again as ``kubectl get -o yaml`` gives it back (``resumePolicy: Never``,
``parallelTrialCount: 3``, the collector ``StdOut``, the objective's ``metricStrategies``, a
Job's ``successCondition`` and ``failureCondition``, ``distribution: uniform``) is no change to
Katib, and neither is it to katuna (:func:`same_spec`). The ``trialSpec`` is compared as it is
written: Katib keeps it as an untyped object.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

PARALLEL_TRIALS = 3
"""``DefaultTrialParallelCount``."""
RESUME_POLICY = "Never"
JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
KUBEFLOW_SUCCESS = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
TRAINJOB_SUCCESS = JOB_SUCCESS
KUBEFLOW_FAILURE = TRAINJOB_FAILURE = JOB_FAILURE
KUBEFLOW_POD_LABELS = {"training.kubeflow.org/job-role": "master"}
TRAINJOB_POD_LABELS = {"jobset.sigs.k8s.io/replicatedjob-name": "node", "batch.kubernetes.io/job-completion-index": "0"}
KUBEFLOW_KINDS = ("TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "TrainJob")
"""The Kubeflow training kinds Katib defaults a template's conditions and pod labels for."""
STRATEGIES = {"minimize": "min", "maximize": "max"}
"""A metric's default strategy by the objective's type (``latest`` for any other)."""
COLLECTOR_SOURCES: dict[str, tuple[str, dict[str, Any]]] = {
    "PrometheusMetric": ("httpGet", {"path": "/metrics", "port": 8080}),
    "File": ("fileSystemPath", {"kind": "File", "path": "/var/log/katib/metrics.log", "format": "TEXT"}),
    "TensorFlowEvent": ("fileSystemPath", {"kind": "Directory", "path": "/var/log/katib/tfevent/"}),
}
"""The source each collector kind gets where it gives none, field by field."""
UNTYPED = ("trialSpec", "customCollector", "httpGet")
"""Fields Katib keeps as written (an untyped object, or Kubernetes' own types): not trimmed."""


def same_spec(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether two Experiment specs are one to Katib's webhook: equal once each is as Katib
    stores it (:func:`stored`)."""
    return stored(before) == stored(after)


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The top-level spec fields in which two Experiment specs differ once each is as Katib
    stores it (:func:`stored`), sorted."""
    old, new = stored(before), stored(after)
    return sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))


def stored(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with Katib's defaults written in and its zero values dropped; a copy. A field
    of an unexpected shape is left as it is (validation names it)."""
    out = copy.deepcopy(dict(spec))
    if out.get("parallelTrialCount") is None:
        out["parallelTrialCount"] = PARALLEL_TRIALS
    if not out.get("resumePolicy"):
        out["resumePolicy"] = RESUME_POLICY
    if isinstance(out.get("objective"), dict):
        _objective(out["objective"])
    if isinstance(out.get("trialTemplate"), dict):
        _template(out["trialTemplate"])
    out["metricsCollectorSpec"] = _collector(out.get("metricsCollectorSpec"))
    parameters = out.get("parameters")
    for parameter in parameters if isinstance(parameters, list) else []:
        space = parameter.get("feasibleSpace") if isinstance(parameter, dict) else None
        if isinstance(space, dict) and not space.get("distribution"):
            space["distribution"] = "uniform"
    return _trimmed(out)


def _objective(objective: dict[str, Any]) -> None:
    """The objective's and each additional metric's strategy by the objective's type, where the
    metric has none, appended in Katib's order (``setDefaultObjective``)."""
    given = objective.get("metricStrategies")
    strategies = list(given) if isinstance(given, list) else []
    named = [s.get("name") for s in strategies if isinstance(s, Mapping)]
    kind = objective.get("type")
    value = STRATEGIES.get(kind, "latest") if isinstance(kind, str) else "latest"
    metric = objective.get("objectiveMetricName")
    if metric not in named:
        strategies.append({"name": metric, "value": value})
    additional = objective.get("additionalMetricNames")
    for name in additional if isinstance(additional, list) else []:
        if name not in named or name == metric:
            strategies.append({"name": name, "value": value})
    objective["metricStrategies"] = strategies


def primary_pod_labels(template: Mapping[str, Any]) -> dict[str, str] | None:
    """The ``primaryPodLabels`` Katib stores for a trial template: its own, else its
    ``trialSpec`` kind's default (a Kubeflow training job's master, a TrainJob's first node;
    none for a Job or any other kind). Katib's controller copies them into each Trial's spec,
    where its SDK's ``get_job_logs`` selects the primary pod by them."""
    given = template.get("primaryPodLabels")
    if isinstance(given, Mapping) and given:
        return {str(key): str(value) for key, value in given.items()}
    defaults = _defaults(template)
    return None if defaults is None or defaults[2] is None else dict(defaults[2])


def _defaults(template: Mapping[str, Any]) -> tuple[str, str, dict[str, str] | None] | None:
    """A template's default success and failure conditions and primary pod labels by its
    ``trialSpec`` kind (``setDefaultTrialTemplate``); None for a kind Katib defaults nothing for."""
    trial_spec = template.get("trialSpec")
    kind = trial_spec.get("kind") if isinstance(trial_spec, Mapping) else None
    if kind == "Job":
        return JOB_SUCCESS, JOB_FAILURE, None
    if kind == "TrainJob":
        return TRAINJOB_SUCCESS, TRAINJOB_FAILURE, TRAINJOB_POD_LABELS
    if kind in KUBEFLOW_KINDS:
        return KUBEFLOW_SUCCESS, KUBEFLOW_FAILURE, KUBEFLOW_POD_LABELS
    return None


def _template(template: dict[str, Any]) -> None:
    """A ``trialSpec``'s default conditions (and a Kubeflow job's primary pod labels) by its kind."""
    defaults = _defaults(template)
    if defaults is None:
        return
    success, failure, labels = defaults
    template["successCondition"] = template.get("successCondition") or success
    template["failureCondition"] = template.get("failureCondition") or failure
    if labels is not None and not template.get("primaryPodLabels"):
        template["primaryPodLabels"] = dict(labels)


def _collector(given: Any) -> Any:
    """The metrics collector, ``StdOut`` where none is given, with its kind's default source
    (``setDefaultMetricsCollector``: a field given empty, or a port of 0, is defaulted too)."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        return given
    if given.get("collector") is None:
        given["collector"] = {"kind": "StdOut"}
    kind = given["collector"].get("kind") if isinstance(given["collector"], Mapping) else None
    if not isinstance(kind, str) or kind not in COLLECTOR_SOURCES:
        return given
    field, defaults = COLLECTOR_SOURCES[kind]
    if given.get("source") is None:
        given["source"] = {}
    source = given["source"]
    if isinstance(source, dict):
        if source.get(field) is None:
            source[field] = {}
        if isinstance(source[field], dict):
            source[field].update({key: value for key, value in defaults.items() if _unset(key, source[field].get(key))})
    return given


def _unset(key: str, value: Any) -> bool:
    """Whether Katib defaults a source field given as ``value``: missing or empty, a port of 0."""
    return value is None or value == "" or key == "port" and str(value) == "0"


def _trimmed(value: Any, untyped: bool = False) -> Any:
    """``value`` without the fields Katib's types drop (None, and an empty string or list or map,
    or ``false``), but within an untyped field (:data:`UNTYPED`), kept as written."""
    if untyped:
        return value
    if isinstance(value, dict):
        kept = {key: _trimmed(item, key in UNTYPED) for key, item in value.items()}
        return {key: item for key, item in kept.items() if not _zero(item) or key in UNTYPED and item is not None}
    if isinstance(value, list):
        return [_trimmed(item) for item in value]
    return value


def _zero(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, (str, list, dict)) and not value)
