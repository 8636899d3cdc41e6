"""The problems of a translated Katib Experiment, told with the Experiment's own field paths.

An Experiment is validated as the native study it translates to; each problem's native path
(``parallelism``, ``parameters[1].max``) is mapped back to the field of the Experiment it came
from (``spec.parallelTrialCount``, ``spec.parameters[1].feasibleSpace.max``), so that a Katib
user is pointed at what they wrote.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from functions.core import katib_algorithms, katib_search
from functions.core.errors import Problem

NODE_POOL_ANNOTATION = "katuna.dev/node-pool"
"""The annotation of an Experiment resource that holds its ``nodePool`` block (the Experiment's
schema has no place for one), as JSON or YAML."""
ANNOTATION_FIELD = f'metadata.annotations["{NODE_POOL_ANNOTATION}"]'
TYPED_FIELDS_ANNOTATION = "katuna.dev/trial-template-typed-fields"
"""Set by katuna on the definition it stores of an Experiment whose trial template it read from
a ConfigMap: the paths into the ``trialSpec`` (JSON, each a list of keys and list indexes) of
the unquoted scalars holding a placeholder, which Katib's substitution into the template's text
types as YAML (the native ``trialTemplate.typedFields``)."""
TYPED_FIELDS_FIELD = f'metadata.annotations["{TYPED_FIELDS_ANNOTATION}"]'
_PARAMETER_FIELDS = {"type": "parameterType", "min": "feasibleSpace.min", "max": "feasibleSpace.max",
                     "step": "feasibleSpace.step", "values": "feasibleSpace.list", "log": "feasibleSpace.distribution",
                     "distribution": "feasibleSpace.distribution"}
_FIXED = {
    "": "spec", "name": "metadata.name", "kubernetes": "metadata.namespace", "kubernetes.namespace": "metadata.namespace",
    "parallelism": "spec.parallelTrialCount", "maxTrials": "spec.maxTrialCount",
    "maxFailedTrials": "spec.maxFailedTrialCount", "parameters": "spec.parameters",
    "objective": "spec.objective", "objective.metric": "spec.objective.objectiveMetricName",
    "objective.direction": "spec.objective.type", "objective.goal": "spec.objective.goal",
    "algorithm": "spec.algorithm", "algorithm.name": "spec.algorithm.algorithmName",
    "metricsCollector": "spec.metricsCollectorSpec", "metricsCollector.kind": "spec.metricsCollectorSpec.collector.kind",
    "metricsCollector.path": "spec.metricsCollectorSpec.source.fileSystemPath.path",
    "metricsCollector.format": "spec.metricsCollectorSpec.source.fileSystemPath.format",
}
_PREFIXES = {
    "objective.additionalMetrics": "spec.objective.additionalMetricNames",
    "metricsCollector.filters": "spec.metricsCollectorSpec.source.filter.metricsFormat",
    "trialTemplate": "spec.trialTemplate", "earlyStopping": "spec.earlyStopping",
}
_PARAMETER = re.compile(r"parameters\[(\d+)\](?:\.(\w+))?(.*)")
_STOPPING_SETTING = re.compile(r"earlyStopping\.settings\.(\w+).*")


def katib_path(path: str, experiment: Mapping[str, Any]) -> str:
    """The Experiment field a native problem path stands for (the path itself where it is
    already the Experiment's: a translation problem, or ``nodePool``)."""
    annotations = (experiment.get("metadata") or {}).get("annotations")
    if path.startswith("nodePool") and isinstance(annotations, Mapping) and NODE_POOL_ANNOTATION in annotations:
        return ANNOTATION_FIELD + path.removeprefix("nodePool")
    if path.startswith("trialTemplate.typedFields"):
        return TYPED_FIELDS_FIELD + path.removeprefix("trialTemplate.typedFields")
    if path in _FIXED:
        return _FIXED[path]
    stopping = _STOPPING_SETTING.fullmatch(path)
    if stopping:
        return _stopping_setting(stopping, experiment)
    for native, katib in _PREFIXES.items():
        if path.startswith(native) and path[len(native):][:1] in ("", ".", "["):
            return katib + path[len(native):]
    for pattern, mapping in _RULES:
        match = pattern.fullmatch(path)
        if match:
            return mapping(match, experiment)
    return path


def _parameter(match: re.Match[str], experiment: Mapping[str, Any]) -> str:
    index, field, rest = match.groups()
    head = f"spec.parameters[{index}]"
    if field is None:
        return head + rest
    return f"{head}.{_PARAMETER_FIELDS.get(field, field)}{rest}"


def _setting(match: re.Match[str], experiment: Mapping[str, Any]) -> str:
    algorithm = (experiment.get("spec") or {}).get("algorithm") or {}
    index = katib_algorithms.setting_index(algorithm, match.group(1))
    return "spec.algorithm.algorithmSettings" + (f"[{index}].value" if index is not None else "")


HYPERBAND_PRUNER = {"max_resource": "r_l", "reduction_factor": "eta"}
"""The settings of the Hyperband pruner a Katib ``hyperband`` becomes, each with the Katib
setting it comes from (its ``min_resource`` comes from none: katuna fixes it at 1)."""


def _stopping_setting(match: re.Match[str], experiment: Mapping[str, Any]) -> str:
    """A setting of the native ``earlyStopping`` at the entry of ``algorithmSettings`` the
    Experiment wrote it in: hyperband's pruner at ``spec.algorithm``'s (``r_l``, ``eta``),
    medianstop's at ``spec.earlyStopping``'s (beside hyperband's too)."""
    spec = experiment.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    algorithm = spec.get("algorithm")
    if (isinstance(algorithm, Mapping) and algorithm.get("algorithmName") == "hyperband"
            and match.group(1) not in katib_search.MEDIANSTOP_SETTINGS):
        return _entry(algorithm, "algorithmSettings", "spec.algorithm", HYPERBAND_PRUNER.get(match.group(1)))
    return _entry(spec.get("earlyStopping"), "algorithmSettings", "spec.earlyStopping", match.group(1))


def _strategy(match: re.Match[str], experiment: Mapping[str, Any]) -> str:
    """A metric's strategy at the ``value`` of its entry in ``metricStrategies``."""
    spec = experiment.get("spec")
    return _entry(spec.get("objective") if isinstance(spec, Mapping) else None, "metricStrategies",
                  "spec.objective", match.group(1))


def _entry(section: Any, key: str, where: str, name: str | None) -> str:
    """The ``value`` of the entry named ``name`` in the list ``key`` of ``section`` (at
    ``where``), a list Katib reads by name; the list itself where no entry names it."""
    listed = section.get(key) if isinstance(section, Mapping) else None
    index = next((i for i, item in enumerate(listed if isinstance(listed, list) else [])
                  if isinstance(item, Mapping) and name is not None and item.get("name") == name), None)
    return f"{where}.{key}" + (f"[{index}].value" if index is not None else "")


_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str], Mapping[str, Any]], str]]] = [
    (_PARAMETER, _parameter),
    (re.compile(r"objective\.strategies\.(.+)"), _strategy),
    (re.compile(r"algorithm\.settings\.(\w+).*"), _setting),
    (re.compile(r"algorithm\.(seed)"), lambda m, e: _setting(m, e)),
]


def katib_problems(problems: Iterable[Problem], experiment: Mapping[str, Any],
                   already: Iterable[Problem] = ()) -> list[Problem]:
    """``problems`` of the native study, with the Experiment's paths, leaving out those about a
    field (or a field inside one) that ``already`` lists a problem of."""
    covered = {p.path for p in already}
    out = []
    for problem in problems:
        path = katib_path(problem.path, experiment)
        if not is_covered(path, covered):
            out.append(Problem(path, problem.message))
    return out


def is_covered(path: str, covered: Collection[str]) -> bool:
    """Whether ``path`` is one of the paths ``covered``, or a field or item inside one."""
    return path in covered or any(path[:i] in covered for i, c in enumerate(path) if c in ".[")
