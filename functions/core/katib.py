"""Katib ``kubeflow.org/v1beta1`` Experiments, translated to katuna's native study format.

The translation is structural: field by field, with Katib's defaults and validation rules, and
every field katuna cannot honour reported as a problem (never dropped). The result is a native
definition, validated like any other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

import yaml

from functions.core import bounded_yaml, template, trial_kinds
from functions.core.errors import InvalidStudy, Problem
from functions.core.nodepool import parse_node_pool
from functions.core.reader import Reader

API_VERSION = "kubeflow.org/v1beta1"
ALGORITHMS = {"random": "random", "grid": "grid", "tpe": "tpe", "multivariate-tpe": "multivariate-tpe",
              "cmaes": "cmaes", "sobol": "sobol", "bayesianoptimization": "gp", "hyperband": "random"}
SETTINGS = {"random_state": "seed", "sigma": "sigma0", "n_EI_candidates": "n_ei_candidates"}
JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
_SPEC = {"objective", "algorithm", "parallelTrialCount", "maxTrialCount", "maxFailedTrialCount", "parameters",
         "trialTemplate", "metricsCollectorSpec", "earlyStopping", "resumePolicy"}


NODE_POOL_ANNOTATION = "katuna.dev/node-pool"
"""The annotation of an Experiment resource that holds its ``nodePool`` block (the Experiment's
schema has no place for one), as JSON or YAML."""
ANNOTATION_FIELD = f'metadata.annotations["{NODE_POOL_ANNOTATION}"]'


def is_experiment(data: Mapping[str, Any]) -> bool:
    return data.get("apiVersion") == API_VERSION and data.get("kind") == "Experiment"


def document_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata of an Experiment that katuna reads: name, namespace and katuna's own
    annotation (not the others: kubectl's copy of the last applied object, say)."""
    out = {"name": metadata.get("name"), "namespace": metadata.get("namespace")}
    annotated = annotated_pool(metadata)
    if annotated is not None:
        out["annotations"] = {NODE_POOL_ANNOTATION: annotated}
    return out


def annotated_pool(metadata: Mapping[str, Any]) -> Any:
    """The raw value of the node-pool annotation, or None."""
    annotations = metadata.get("annotations")
    return annotations.get(NODE_POOL_ANNOTATION) if isinstance(annotations, Mapping) else None


def from_experiment(data: Mapping[str, Any]) -> dict[str, Any]:
    """The native definition of a Katib Experiment, or :class:`InvalidStudy` listing every problem."""
    problems: list[Problem] = []
    metadata = data.get("metadata") or {}
    spec = data.get("spec") or {}
    problems += [Problem(f"spec.{key}", "unknown field") for key in spec if key not in _SPEC]
    if spec.get("resumePolicy") not in (None, "Never", "LongRunning"):
        problems.append(Problem("spec.resumePolicy", "expected Never or LongRunning (FromVolume is not supported)"))
    native: dict[str, Any] = {
        "name": metadata.get("name"),
        "objective": _objective(spec.get("objective") or {}, problems),
        "parameters": [_parameter(p, f"spec.parameters[{i}]", problems) for i, p in enumerate(spec.get("parameters") or [])],
        "algorithm": _algorithm(spec.get("algorithm") or {}, problems),
        "parallelism": _parallelism(spec, problems),
        "trialTemplate": _trial_template(spec.get("trialTemplate") or {}, spec.get("parameters") or [], problems),
    }
    for katib, ours in (("maxTrialCount", "maxTrials"), ("maxFailedTrialCount", "maxFailedTrials")):
        if spec.get(katib) is not None:
            native[ours] = spec[katib]
    if spec.get("earlyStopping"):
        native["earlyStopping"] = _early_stopping(spec["earlyStopping"], problems)
    if (spec.get("algorithm") or {}).get("algorithmName") == "hyperband":
        _hyperband(native, problems)
    pool = _node_pool(data, native["parallelism"], problems)
    if pool is not None:
        native["nodePool"] = pool
    collector = _collector(spec.get("metricsCollectorSpec") or {}, problems)
    if collector:
        native["metricsCollector"] = collector
    if metadata.get("namespace"):
        native["kubernetes"] = {"namespace": metadata["namespace"]}
    if problems:
        raise InvalidStudy(problems)
    return native


def _parallelism(spec: Mapping[str, Any], problems: list[Problem]) -> Any:
    """``parallelTrialCount``, by default 3 but never above ``maxTrialCount``; as Katib's webhook
    does, neither it nor ``maxFailedTrialCount`` may exceed ``maxTrialCount``."""
    limit = spec.get("maxTrialCount")
    if not _is_count(limit):
        return spec.get("parallelTrialCount", 3)
    for key in ("parallelTrialCount", "maxFailedTrialCount"):
        if _is_count(spec.get(key)) and spec[key] > limit:
            problems.append(Problem(f"spec.{key}", f"expected at most spec.maxTrialCount ({limit}), got {spec[key]}"))
    return spec.get("parallelTrialCount", min(3, limit) if limit >= 1 else 3)


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _objective(objective: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    out: dict[str, Any] = {"metric": objective.get("objectiveMetricName"), "direction": objective.get("type")}
    if objective.get("goal") is not None:
        out["goal"] = objective["goal"]
    if objective.get("additionalMetricNames"):
        out["additionalMetrics"] = list(objective["additionalMetricNames"])
    strategies = {s.get("name"): s.get("value") for s in objective.get("metricStrategies") or []}
    if strategies:
        out["strategies"] = strategies
    return out


def _number(text: Any, kind: str, path: str, problems: list[Problem]) -> float | int | None:
    try:
        value = int(text) if kind == "int" else float(text)
    except (TypeError, ValueError):
        problems.append(Problem(path, f"expected {'an integer' if kind == 'int' else 'a number'}, got {text!r}"))
        return None
    return value if kind == "int" or math.isfinite(value) else None


def _parameter(parameter: Mapping[str, Any], path: str, problems: list[Problem]) -> dict[str, Any]:
    kind = {"int": "int", "double": "float", "categorical": "categorical", "discrete": "discrete"}.get(
        str(parameter.get("parameterType")))
    out: dict[str, Any] = {"name": parameter.get("name"), "type": kind}
    if kind is None:
        problems.append(Problem(f"{path}.parameterType", "expected int, double, categorical or discrete"))
        return out
    space = parameter.get("feasibleSpace") or {}
    if kind in ("categorical", "discrete"):
        values = list(space.get("list") or [])
        out["values"] = values if kind == "categorical" else [_number(v, "float", f"{path}.feasibleSpace.list", problems) for v in values]
        return out
    for katib, ours in (("min", "min"), ("max", "max"), ("step", "step")):
        if space.get(katib) is not None:
            out[ours] = _number(space[katib], kind, f"{path}.feasibleSpace.{katib}", problems)
    distribution = space.get("distribution", "uniform")
    if distribution == "logUniform":
        out["log"] = True
    elif distribution != "uniform":
        problems.append(Problem(f"{path}.feasibleSpace.distribution", f"{distribution} is not supported; expected uniform or logUniform"))
    return out


def _algorithm(algorithm: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    name = algorithm.get("algorithmName", "random")
    if name not in ALGORITHMS:
        problems.append(Problem("spec.algorithm.algorithmName", f"{name!r} is not supported; expected one of {', '.join(ALGORITHMS)}"))
    out: dict[str, Any] = {"name": ALGORITHMS.get(name, name), "settings": {}}
    for setting in algorithm.get("algorithmSettings") or []:
        key, value = setting.get("name"), typed_setting(setting.get("value"))
        if SETTINGS.get(key) == "seed":
            out["seed"] = value
        else:
            out["settings"][SETTINGS.get(key, key)] = value
    return out


def typed_setting(text: Any) -> Any:
    """A Katib setting (always a string) as the number or boolean it spells."""
    if not isinstance(text, str):
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(text.lower(), text)


def _trial_template(trial: Mapping[str, Any], parameters: list, problems: list[Problem]) -> dict[str, Any]:
    path = "spec.trialTemplate"
    for key in ("configMap",):
        if trial.get(key):
            problems.append(Problem(f"{path}.{key}", "a trial template in a ConfigMap is not supported; inline it as trialSpec"))
    if trial.get("retain"):
        problems.append(Problem(f"{path}.retain", "not supported: trial Jobs are removed after ttlSecondsAfterFinished"))
    for key in ("successCondition", "failureCondition"):
        why = trial_kinds.check_condition(trial[key]) if isinstance(trial.get(key), str) else None
        if why is not None:
            problems.append(Problem(f"{path}.{key}", f"expected a GJSON path katuna evaluates: {why}"))
    references = {}
    for i, item in enumerate(trial.get("trialParameters") or []):
        references[item.get("name")] = item.get("reference")
        if item.get("reference") not in {p.get("name") for p in parameters}:
            problems.append(Problem(f"{path}.trialParameters[{i}].reference", f"names no parameter: {item.get('reference')!r}"))
    counts = {p.get("name"): list(references.values()).count(p.get("name")) for p in parameters}
    problems += [Problem(f"{path}.trialParameters", f"parameter {name!r} must be referenced by exactly one trial parameter")
                 for name, count in counts.items() if count != 1]
    placeholders = {f"trialParameters.{name}": f"${{trialParameters.{ref}}}" for name, ref in references.items()}
    out: dict[str, Any] = {"trialSpec": template.substitute_tree(trial.get("trialSpec"), {}, placeholders,
                                                                 drop_inactive=False)}
    for key in ("primaryContainerName", "successCondition", "failureCondition", "primaryPodLabels"):
        if trial.get(key):
            out[key] = trial[key]
    return out


def _hyperband(native: dict[str, Any], problems: list[Problem]) -> None:
    """Katib's Hyperband as random search under Optuna's Hyperband pruner: the resource
    parameter is fixed at its maximum ``r_l``, and the pruner decides, from each trial's
    intermediate values, how far it gets (``eta`` is the reduction factor)."""
    path = "spec.algorithm.algorithmSettings"
    settings = native["algorithm"].pop("settings")
    native["algorithm"]["settings"] = {}
    unknown = set(settings) - {"resource_name", "eta", "r_l"}
    problems += [Problem(path, f"unknown hyperband setting {name!r}") for name in sorted(unknown)]
    resource, max_resource = settings.get("resource_name"), settings.get("r_l")
    names = [p.get("name") for p in native["parameters"]]
    if resource not in names:
        problems.append(Problem(path, f"resource_name must name a parameter; expected one of {', '.join(map(str, names))}"))
    if not isinstance(max_resource, int) or max_resource < 1:
        problems.append(Problem(path, "r_l (the maximum resource) must be a positive integer"))
    if "earlyStopping" in native:
        problems.append(Problem("spec.earlyStopping", "hyperband stops trials itself; remove earlyStopping"))
    if resource in names and isinstance(max_resource, int):
        native["parameters"][names.index(resource)] = {"name": resource, "type": "discrete", "values": [max_resource]}
    native["earlyStopping"] = {"algorithm": "hyperband", "settings": {
        "min_resource": 1, "max_resource": max_resource, "reduction_factor": settings.get("eta", 3)}}


def _early_stopping(early: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """Katib's median stop: ``min_trials_required`` completed trials before any stop, and no stop
    before ``start_step`` intermediate values."""
    if early.get("algorithmName") != "medianstop":
        problems.append(Problem("spec.earlyStopping.algorithmName",
                                f"{early.get('algorithmName')!r} is not supported; expected medianstop"))
    settings = {s.get("name"): typed_setting(s.get("value")) for s in early.get("algorithmSettings") or []}
    unknown = set(settings) - {"min_trials_required", "start_step"}
    problems += [Problem("spec.earlyStopping.algorithmSettings", f"unknown setting {name!r}") for name in sorted(unknown)]
    return {"algorithm": "median", "settings": {"n_startup_trials": settings.get("min_trials_required", 3),
                                                "n_warmup_steps": settings.get("start_step", 4) - 1}}


def _collector(spec: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any] | None:
    kind = (spec.get("collector") or {}).get("kind", "StdOut")
    source = spec.get("source") or {}
    filters = list((source.get("filter") or {}).get("metricsFormat") or [])
    if kind == "StdOut":
        return {"kind": "stdout", "filters": filters} if filters else None
    if kind == "File":
        file = source.get("fileSystemPath") or {}
        return {"kind": "file", "path": file.get("path"), "format": str(file.get("format", "TEXT")).lower(),
                **({"filters": filters} if filters else {})}
    problems.append(Problem("spec.metricsCollectorSpec.collector.kind", f"{kind} is not supported; expected StdOut or File"))
    return None


def _node_pool(data: Mapping[str, Any], parallelism: Any, problems: list[Problem]) -> Any:
    """The Experiment's ``nodePool`` block: beside its spec in a document, or (in a resource,
    whose schema has no place for it) in the ``katuna.dev/node-pool`` annotation, checked here
    so that problems name the annotation's fields."""
    metadata = data.get("metadata") or {}
    raw, given = annotated_pool(metadata), data.get("nodePool")
    if raw is None:
        return given
    if given is not None:
        problems.append(Problem("nodePool", f"given twice, here and in {ANNOTATION_FIELD}; keep one"))
        return None
    block = _annotation_block(raw, problems)
    if block is not None:
        r = Reader()
        parse_node_pool(r, block, metadata.get("name"), parallelism if _is_count(parallelism) else None)
        problems += [Problem(ANNOTATION_FIELD + p.path.removeprefix("nodePool"), p.message) for p in r.problems]
    return block


def _annotation_block(raw: Any, problems: list[Problem]) -> Mapping[str, Any] | None:
    expected = "expected the nodePool block (provider, machineType or instanceTypes, maxNodes, ...) as JSON or YAML"
    if not isinstance(raw, str):
        problems.append(Problem(ANNOTATION_FIELD, f"{expected}, in a string"))
        return None
    try:
        block = bounded_yaml.load(raw)
    except yaml.YAMLError as exc:
        problems.append(Problem(ANNOTATION_FIELD, f"{expected}: {exc}"))
        return None
    if not isinstance(block, Mapping):
        problems.append(Problem(ANNOTATION_FIELD, f"{expected}, a mapping"))
        return None
    return block
