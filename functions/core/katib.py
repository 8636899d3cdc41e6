"""Katib ``kubeflow.org/v1beta1`` Experiments, translated to katuna's native study format.

The translation is structural: field by field, with Katib's defaults and its webhook's
validation rules, and every field katuna cannot honour reported as a problem (never dropped).
The result is a native definition, validated like any other; every problem, of the translation
or of the native study, is reported at once with the Experiment's path (:mod:`katib_paths`).
Values reach trials as the Experiment wrote them: a discrete ``"16"`` stays ``16``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

import yaml

from functions.core import bounded_yaml, katib_algorithms, katib_paths, katib_template, validate
from functions.core.errors import InvalidStudy, Problem
from functions.core.katib_paths import (
    ANNOTATION_FIELD,
    NODE_POOL_ANNOTATION,
    TYPED_FIELDS_ANNOTATION,
    TYPED_FIELDS_FIELD,
)
from functions.core.nodepool import parse_node_pool
from functions.core.reader import Reader
from functions.core.trial_template import NOT_USED

API_VERSION = "kubeflow.org/v1beta1"
ALGORITHMS = {"random": "random", "grid": "grid", "tpe": "tpe", "multivariate-tpe": "multivariate-tpe",
              "cmaes": "cmaes", "sobol": "sobol", "bayesianoptimization": "gp", "hyperband": "random"}
MEDIANSTOP_SETTINGS = {"min_trials_required": 1, "start_step": 1}
"""Katib's medianstop settings, each with the least value its service accepts."""
_SPEC = {"objective", "algorithm", "parallelTrialCount", "maxTrialCount", "maxFailedTrialCount", "parameters",
         "trialTemplate", "metricsCollectorSpec", "earlyStopping", "resumePolicy"}
_OBJECTIVE = {"type", "goal", "objectiveMetricName", "additionalMetricNames", "metricStrategies"}
_PARAMETER = {"name", "parameterType", "feasibleSpace"}
_FEASIBLE_SPACE = {"min", "max", "step", "list", "distribution"}
DISTRIBUTIONS: dict[str, dict[str, Any]] = {
    "uniform": {}, "logUniform": {"log": True},
    "normal": {"distribution": "normal"}, "logNormal": {"distribution": "normal", "log": True}}
"""Katib's ``feasibleSpace.distribution`` values, each as the native fields it becomes."""
_NAS = "neural architecture search is not supported: katuna tunes the values of spec.parameters"
_REFUSED = {"pbt": "population-based training is not supported: its trials resume from and mutate each other's "
                   "checkpoints, and katuna's trials share none",
            "enas": _NAS, "darts": _NAS}
"""Katib algorithms katuna does not run, each with the reason."""
_COLLECTORS_REFUSED = {
    "PrometheusMetric": "katuna reads metrics from text lines, and scrapes no trial",
    "Custom": "katuna runs no collector container of its own beside a trial",
    "Push": "katuna reads every trial's metrics from its output, and takes no pushed metrics",
}
"""Katib metrics collectors katuna does not run, each with the reason."""
EVENTS_DIRECTORY = "/var/log/katib/tfevent/"
"""Katib's default directory of the TensorFlowEvent collector."""
METRICS_FILE = "/var/log/katib/metrics.log"
"""Katib's default file of the File collector."""




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
    """The native definition of a Katib Experiment, or :class:`InvalidStudy` listing every
    problem with its Experiment path: those of the translation (Katib's webhook rules, fields
    katuna cannot honour) and those the native study they leave would have."""
    problems: list[Problem] = []
    metadata = data.get("metadata") or {}
    spec = data.get("spec") or {}
    problems += [Problem(f"spec.{key}", "unknown field") for key in spec if key not in _SPEC | {"nasConfig"}]
    if "nasConfig" in spec:
        problems.append(Problem("spec.nasConfig", _NAS))
    if spec.get("resumePolicy") not in (None, "", "Never", "LongRunning", "FromVolume"):
        problems.append(Problem("spec.resumePolicy", "expected Never, LongRunning or FromVolume"))
    _name(metadata.get("name"), problems)
    native: dict[str, Any] = {
        "name": metadata.get("name"),
        "objective": _objective(spec.get("objective") or {}, problems),
        "parameters": [_parameter(p, f"spec.parameters[{i}]", problems) for i, p in enumerate(spec.get("parameters") or [])],
        "algorithm": _algorithm(spec.get("algorithm") or {}, problems),
        "parallelism": _parallelism(spec, problems),
        "trialTemplate": katib_template.translate(spec.get("trialTemplate"), spec.get("parameters") or [], problems),
    }
    typed = _typed_fields(metadata, problems)
    if typed and native["trialTemplate"]:
        native["trialTemplate"]["typedFields"] = typed
    if (spec.get("algorithm") or {}).get("algorithmName") == "tpe":
        _as_hyperopt(native["algorithm"]["settings"], native["parallelism"])
    if spec.get("maxTrialCount") is not None:
        native["maxTrials"] = spec["maxTrialCount"]
    if spec.get("maxFailedTrialCount") is not None:
        native["maxFailedTrials"] = failures_allowed(spec["maxFailedTrialCount"])
    if spec.get("earlyStopping"):
        native["earlyStopping"] = _early_stopping(spec["earlyStopping"], problems)
    if (spec.get("algorithm") or {}).get("algorithmName") == "hyperband":
        _hyperband(native, problems)
    if (spec.get("algorithm") or {}).get("algorithmName") == "cmaes" and \
            sum(p.get("type") in ("int", "float") for p in native["parameters"]) < 2:
        problems.append(Problem("spec.algorithm.algorithmName", "cmaes needs two or more int or double parameters, "
                                                                "as Katib's CMA-ES services do"))
    pool = _node_pool(data, native["parallelism"], problems)
    if pool is not None:
        native["nodePool"] = pool
    collector = _collector(spec.get("metricsCollectorSpec") or {}, problems)
    if collector:
        native["metricsCollector"] = collector
    if metadata.get("namespace"):
        native["kubernetes"] = {"namespace": metadata["namespace"]}
    if problems:
        raise InvalidStudy(_leading(spec, problems + _native_problems(native, data, problems)))
    return native


def _leading(spec: Mapping[str, Any], problems: list[Problem]) -> list[Problem]:
    """The problems that are not mere consequences of another: with a ``nasConfig`` (refused),
    the parameters and trial template of neural architecture search, and a NAS algorithm's
    refusal, which says the same; and the native study's advice about a parameter no
    placeholder names (the translation says which ``trialParameters`` entry is at fault)."""
    nas = "nasConfig" in spec
    algorithm = (spec.get("algorithm") or {}).get("algorithmName")
    return [p for p in problems if NOT_USED not in p.message and not (nas and (
        any(p.path == f or p.path.startswith((f"{f}.", f"{f}[")) for f in ("spec.parameters", "spec.trialTemplate"))
        or (p.path == "spec.algorithm.algorithmName" and _REFUSED.get(str(algorithm)) == _NAS)))]


def _native_problems(native: dict[str, Any], data: Mapping[str, Any], found: list[Problem]) -> list[Problem]:
    """The problems the native study would have besides those already ``found``, so that a
    translation problem hides none of the others (none about a trial template left unread in
    its ConfigMap: ``found`` says why)."""
    try:
        validate.parse_study(native)
    except InvalidStudy as exc:
        problems = katib_paths.katib_problems(exc.problems, data, already=found)
        if katib_template.unread(data.get("spec") or {}):
            return [p for p in problems if not p.path.startswith(katib_template.PATH) and "trialTemplate" not in p.message]
        return problems
    return []


def katib_problems(problems: Iterable[Problem], data: Mapping[str, Any]) -> list[Problem]:
    """The problems of the native study an Experiment translated to, with the Experiment's paths."""
    return katib_paths.katib_problems(problems, data)


def failures_allowed(max_failed: Any) -> Any:
    """``maxFailedTrialCount`` as the native ``maxFailedTrials``: Katib fails an Experiment once
    its failed trials (those without metrics included) *reach* the count, and 0 fails it at the
    first failure like 1; the native rule fails a study when they *exceed* it. Any other value
    (negative, not an integer) goes through unchanged, for validation to report as written."""
    return max(max_failed - 1, 0) if _is_count(max_failed) and max_failed >= 0 else max_failed


def _name(name: Any, problems: list[Problem]) -> None:
    """Katib's webhook: a name starts with a lower-case letter and has at most 40 characters
    (its trials' names and labels derive from it)."""
    if isinstance(name, str) and (len(name) > 40 or not name[:1].islower()):
        problems.append(Problem("metadata.name", f"expected at most 40 characters starting with a lower-case letter, got {name!r}"))


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


HYPEROPT_GAMMA = 0.25
"""The fraction in hyperopt's TPE rule for the good trials, ``ceil(gamma * sqrt(n))``, by default."""


def _as_hyperopt(settings: dict[str, Any], parallelism: Any) -> None:
    """Katib's default service for ``tpe`` is hyperopt's: the trials of its first request (as
    many as ``parallelTrialCount``) are drawn at random and TPE starts with the next, taking
    ``ceil(0.25 * sqrt(n))`` trials as the good ones. Optuna's defaults differ (10 random trials,
    a tenth as good), so these are the settings unless the Experiment gives its own."""
    settings.setdefault("gamma", HYPEROPT_GAMMA)
    if _is_count(parallelism) and parallelism >= 1:
        settings.setdefault("n_startup_trials", parallelism)


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _unknown(given: Any, known: set[str], path: str, problems: list[Problem]) -> None:
    """A problem for each key of ``given`` that Katib's schema has no field for."""
    if isinstance(given, Mapping):
        problems += [Problem(f"{path}.{key}", f"unknown field; expected one of {', '.join(sorted(known))}")
                     for key in given if key not in known]


def _objective(objective: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    _unknown(objective, _OBJECTIVE, "spec.objective", problems)
    out: dict[str, Any] = {"metric": objective.get("objectiveMetricName"), "direction": objective.get("type")}
    if objective.get("goal") is not None:
        out["goal"] = objective["goal"]
    additional = list(objective.get("additionalMetricNames") or [])
    if additional:
        out["additionalMetrics"] = additional
    if objective.get("objectiveMetricName") in additional:
        problems.append(Problem("spec.objective.additionalMetricNames", "should not contain spec.objective.objectiveMetricName"))
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
    """One parameter; as Katib's webhook requires, a feasible space with min and max (int,
    double) or a list and no range (categorical, discrete)."""
    _unknown(parameter, _PARAMETER, path, problems)
    kind = {"int": "int", "double": "float", "categorical": "categorical", "discrete": "discrete"}.get(
        str(parameter.get("parameterType")))
    out: dict[str, Any] = {"name": parameter.get("name"), "type": kind}
    if kind is None:
        problems.append(Problem(f"{path}.parameterType", "expected int, double, categorical or discrete"))
        return out
    space = parameter.get("feasibleSpace") or {}
    where = f"{path}.feasibleSpace"
    _unknown(space, _FEASIBLE_SPACE, where, problems)
    if not space:
        problems.append(Problem(where, "required"))
        return out
    if kind in ("categorical", "discrete"):
        if {"min", "max", "step"} & set(space):
            problems.append(Problem(where, f"feasibleSpace.min, .max and .step are not supported for parameterType {kind}"))
        values = list(space.get("list") or [])
        out["values"] = values if kind == "categorical" else [_discrete(v, f"{where}.list[{i}]", problems)
                                                              for i, v in enumerate(values)]
        return out
    if space.get("list"):
        problems.append(Problem(f"{where}.list", f"not supported for parameterType {parameter.get('parameterType')}"))
    if space.get("min") is None or space.get("max") is None:
        problems.append(Problem(f"{where}.max", "feasibleSpace.min and feasibleSpace.max are required"))
    for key in ("min", "max", "step"):
        if space.get(key) is not None:
            out[key] = _number(space[key], kind, f"{where}.{key}", problems)
    distribution = space.get("distribution") or "uniform"
    if distribution in DISTRIBUTIONS:
        out.update(DISTRIBUTIONS[distribution])
    else:
        problems.append(Problem(f"{where}.distribution", f"{distribution!r} is not supported; expected one of "
                                                         f"{', '.join(DISTRIBUTIONS)}"))
    return out


def _discrete(value: Any, path: str, problems: list[Problem]) -> Any:
    """A discrete value as the Experiment wrote it (the trial receives ``16``, not ``16.0``),
    once checked to be a number."""
    _number(value, "float", path, problems)
    return value


def _algorithm(algorithm: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """The sampler, with each Katib setting in Optuna's terms (hyperband's kept as given, but
    ``random_state``, the seed of every algorithm: they are translated with the search space)."""
    name = algorithm.get("algorithmName")
    path = "spec.algorithm"
    if not name:
        problems.append(Problem(f"{path}.algorithmName", f"required; expected one of {', '.join(ALGORITHMS)}"))
    elif name in _REFUSED:
        problems.append(Problem(f"{path}.algorithmName", f"{name!r}: {_REFUSED[name]}"))
    elif name not in ALGORITHMS:
        problems.append(Problem(f"{path}.algorithmName", f"{name!r} is not supported; expected one of {', '.join(ALGORITHMS)}"))
    given = algorithm.get("algorithmSettings") or []
    out: dict[str, Any] = {"name": ALGORITHMS.get(str(name), name or "random"), "settings": {}}
    if name == "hyperband":
        out["settings"] = {s.get("name"): typed_setting(s.get("value")) for s in given}
        seed = out["settings"].pop("random_state", None)
        if isinstance(seed, int):
            out["seed"] = seed
        elif seed is not None:
            problems.append(Problem(f"{path}.algorithmSettings", f"random_state must be an integer, got {seed!r}"))
    elif name in ALGORITHMS:
        settings, seed, wrong = katib_algorithms.translate(name, given, f"{path}.algorithmSettings")
        problems += wrong
        out["settings"] = settings
        if seed is not None:
            out["seed"] = seed
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


def _hyperband(native: dict[str, Any], problems: list[Problem]) -> None:
    """Katib's Hyperband as random search under Optuna's Hyperband pruner: the resource
    parameter is fixed at its maximum ``r_l``, and the pruner decides, from each trial's
    intermediate values, how far it gets (``eta`` is the reduction factor)."""
    path = "spec.algorithm.algorithmSettings"
    settings = native["algorithm"].pop("settings")
    native["algorithm"]["settings"] = {}
    unknown = set(settings) - {"resource_name", "eta", "r_l"}
    problems += [Problem(path, f"unknown hyperband setting {name!r}") for name in sorted(unknown)]
    resource, max_resource = settings.get("resource_name"), _whole(settings.get("r_l"))
    names = [p.get("name") for p in native["parameters"]]
    if resource not in names:
        problems.append(Problem(path, f"resource_name must name a parameter; expected one of {', '.join(map(str, names))}"))
    if not _is_count(max_resource) or max_resource < 1:
        problems.append(Problem(path, f"r_l (the maximum resource) must be a positive whole number (9 or 9.0: the "
                                      f"pruner counts whole steps), got {settings.get('r_l')!r}"))
        max_resource = "auto"
    if "earlyStopping" in native:
        problems.append(Problem("spec.earlyStopping", "hyperband stops trials itself; remove earlyStopping"))
    if resource in names and _is_count(max_resource):
        native["parameters"][names.index(resource)] = {"name": resource, "type": "discrete", "values": [max_resource]}
    native["earlyStopping"] = {"algorithm": "hyperband", "settings": {
        "min_resource": 1, "max_resource": max_resource, "reduction_factor": settings.get("eta", 3)}}


def _whole(value: Any) -> Any:
    """A setting that spells a whole number (``9``, ``9.0``) as an int; any other as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _early_stopping(early: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """Katib's median stop, by Katib's own rule (the ``medianstop`` pruner): each report of the
    objective is a step; settings as Katib's service validates them."""
    path = "spec.earlyStopping"
    if early.get("algorithmName") != "medianstop":
        problems.append(Problem(f"{path}.algorithmName", f"{early.get('algorithmName')!r} is not supported; expected medianstop"))
    settings: dict[str, int] = {}
    for i, setting in enumerate(early.get("algorithmSettings") or []):
        name, value, where = setting.get("name"), setting.get("value"), f"{path}.algorithmSettings[{i}]"
        if name not in MEDIANSTOP_SETTINGS:
            problems.append(Problem(f"{where}.name", f"unknown setting {name!r} for algorithm medianstop; "
                                                     f"expected one of {', '.join(MEDIANSTOP_SETTINGS)}"))
            continue
        least = MEDIANSTOP_SETTINGS[name]
        number = typed_setting(value)
        if not _is_count(number) or number < least:
            problems.append(Problem(f"{where}.value", f"{name} must be an integer of at least {least}, got {value!r}"))
            continue
        settings[name] = number
    return {"algorithm": "medianstop", "settings": settings}


def _collector(spec: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any] | None:
    kind = (spec.get("collector") or {}).get("kind", "StdOut")
    source = spec.get("source") or {}
    filters = list((source.get("filter") or {}).get("metricsFormat") or [])
    if kind == "StdOut":
        return {"kind": "stdout", "filters": filters} if filters else None
    custom = (spec.get("collector") or {}).get("customCollector") is not None
    if custom:
        problems.append(Problem("spec.metricsCollectorSpec.collector.customCollector",
                                "a custom collector container is not run by katuna; use the StdOut or File collector"))
    if kind == "File":
        file = source.get("fileSystemPath") or {}
        if file.get("kind", "File") != "File":
            problems.append(Problem("spec.metricsCollectorSpec.source.fileSystemPath.kind",
                                    f"expected File: the File collector reads one file, got {file.get('kind')!r} "
                                    "(a Directory is read by the TensorFlowEvent collector)"))
        return {"kind": "file", "path": file.get("path") or METRICS_FILE, "format": str(file.get("format") or "TEXT").lower(),
                **({"filters": filters} if filters else {})}
    if kind == "TensorFlowEvent":
        return _event_collector(source, problems)
    why = _COLLECTORS_REFUSED.get(str(kind), "katuna reads metrics from text")
    if not (custom and kind == "Custom"):  # the custom collector's refusal says why already
        problems.append(Problem("spec.metricsCollectorSpec.collector.kind",
                                f"{kind} is not supported: {why}; expected StdOut, File or TensorFlowEvent"))
    return None


def _event_collector(source: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """Katib's TensorFlowEvent collector, with its defaults and its webhook's rules: an absolute
    directory (``/var/log/katib/tfevent/`` unless given), no format, and (katuna's own rule)
    no filters, which apply to text."""
    path = "spec.metricsCollectorSpec.source"
    file = source.get("fileSystemPath") or {}
    directory = file.get("path") or EVENTS_DIRECTORY
    if file.get("kind", "Directory") != "Directory":
        problems.append(Problem(f"{path}.fileSystemPath.kind", f"expected Directory: the TensorFlowEvent collector "
                                                               f"reads every event file under one, got {file.get('kind')!r}"))
    if not str(directory).startswith("/"):
        problems.append(Problem(f"{path}.fileSystemPath.path", f"expected an absolute directory path where the "
                                                               f"TensorFlow event files are written, got {directory!r}"))
    if file.get("format"):
        problems.append(Problem(f"{path}.fileSystemPath.format", "must be empty: the TensorFlowEvent collector reads "
                                                                 "TensorFlow event files"))
    if (source.get("filter") or {}).get("metricsFormat"):
        problems.append(Problem(f"{path}.filter.metricsFormat", "filters apply to text lines; the TensorFlowEvent "
                                                                "collector matches event tags to the metric names"))
    return {"kind": "tfevent", "path": directory}


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


def _typed_fields(metadata: Mapping[str, Any], problems: list[Problem]) -> Any:
    """The paths of :data:`TYPED_FIELDS_ANNOTATION` (JSON), which katuna sets on the Experiment
    it stores after reading its trial template from a ConfigMap; each is checked as the native
    ``typedFields``."""
    annotations = metadata.get("annotations")
    raw = annotations.get(TYPED_FIELDS_ANNOTATION) if isinstance(annotations, Mapping) else None
    if raw is None:
        return None
    try:
        return json.loads(raw) if isinstance(raw, str) else None
    except ValueError as exc:
        problems.append(Problem(TYPED_FIELDS_FIELD, f"expected a JSON list of paths into the trialSpec: {exc}"))
        return None


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
