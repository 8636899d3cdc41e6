"""Katib ``kubeflow.org/v1beta1`` Experiments, translated to katuna's native study format.

The translation is structural: field by field, with Katib's defaults and its webhook's
validation rules, and every field katuna cannot honour reported as a problem (never dropped).
The result is a native definition, validated like any other; every problem, of the translation
or of the native study, is reported at once with the Experiment's path (:mod:`katib_paths`).
Values reach trials as the Experiment wrote them: a discrete ``"16"`` stays ``16``. How the
Experiment searches is translated in :mod:`katib_search`, its metrics collector in
:mod:`katib_collectors`, its trial template in :mod:`katib_template`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from functions.core import (
    bounded_yaml,
    katib_algorithms,
    katib_collectors,
    katib_grid,
    katib_numbers,
    katib_paths,
    katib_search,
    katib_shapes,
    katib_template,
    labels,
    validate,
)
from functions.core.errors import InvalidStudy, Problem
from functions.core.katib_paths import (
    ANNOTATION_FIELD,
    NODE_POOL_ANNOTATION,
    TYPED_FIELDS_ANNOTATION,
    TYPED_FIELDS_FIELD,
)
from functions.core.katib_search import is_count
from functions.core.limits import DEFAULTS, Limits
from functions.core.nodepool import parse_node_pool
from functions.core.reader import Reader, shown

API_VERSION = "kubeflow.org/v1beta1"
_SPEC = {"objective", "algorithm", "parallelTrialCount", "maxTrialCount", "maxFailedTrialCount", "parameters",
         "trialTemplate", "metricsCollectorSpec", "earlyStopping", "resumePolicy"}
_OBJECTIVE = {"type", "goal", "objectiveMetricName", "additionalMetricNames", "metricStrategies"}
_PARAMETER = {"name", "parameterType", "feasibleSpace"}
_FEASIBLE_SPACE = {"min", "max", "step", "list", "distribution"}
DISTRIBUTIONS: dict[str, dict[str, Any]] = {
    "uniform": {}, "logUniform": {"log": True},
    "normal": {"distribution": "normal"}, "logNormal": {"distribution": "normal", "log": True}}
"""Katib's ``feasibleSpace.distribution`` values, each as the native fields it becomes."""
UNSPECIFIED = "unknown"
"""The ``distribution`` Katib's webhook also takes (``DistributionUnknown``), which its controller
passes to every suggestion service as no distribution at all: uniform, as when none is given."""
DEFAULT_PARALLELISM = 3
"""Katib's ``parallelTrialCount`` when an Experiment gives none (its defaulting webhook's)."""


def is_experiment(data: Mapping[str, Any]) -> bool:
    return data.get("apiVersion") == API_VERSION and data.get("kind") == "Experiment"


def document_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata of an Experiment that katuna reads: name, namespace, its labels (which
    Katib gives its Trials and their pods: :func:`~functions.core.katib_trials.experiment_labels`)
    and katuna's own annotation (not the others: kubectl's copy of the last applied object, say,
    which Katib carries nowhere)."""
    out = {"name": metadata.get("name"), "namespace": metadata.get("namespace")}
    if isinstance(metadata.get("labels"), Mapping) and metadata["labels"]:
        out["labels"] = dict(metadata["labels"])
    annotated = annotated_pool(metadata)
    if annotated is not None:
        out["annotations"] = {NODE_POOL_ANNOTATION: annotated}
    return out


def label_problems(metadata: Mapping[str, Any]) -> list[Problem]:
    """The Experiment's ``metadata.labels`` the API server would refuse (a file given to
    ``katuna run`` was never checked by one), and those of katuna's own prefix: Katib gives
    them to every pod of its trials, where katuna's select the pods of each attempt (and
    ``katuna.dev/client`` admits a pod to the service), so they are refused rather than left
    to lose to katuna's own or to take their place."""
    given = metadata.get("labels")
    if not isinstance(given, Mapping):
        return []
    found = labels.problems(given, "metadata.labels")
    return found + [Problem(f"metadata.labels.{key}", labels.OWN_PREFIX_EXPECTED) for key in sorted(given)
                    if isinstance(key, str) and key.startswith(labels.OWN_PREFIX)] + [
        Problem(f"metadata.labels.{key}", JOB_SELECTING_EXPECTED) for key in sorted(given) if key in JOB_SELECTING]


JOB_SELECTING = frozenset({"job-name", "controller-uid", "batch.kubernetes.io/job-name",
                           "batch.kubernetes.io/controller-uid"})
"""The pod labels by which a Job's pods are its own, which the API server gives a Job's pod
template itself and refuses there at any other value (``validateGeneratedSelector``: ``must be
'<job name>'``): an Experiment's label of such a key, which katuna puts on its trials' pod
templates, would have every trial's Job refused, where Katib's pod webhook sets it on each pod
after the Job made it."""
JOB_SELECTING_EXPECTED = ("expected a label of another key: the API server gives each trial's Job pod template this "
                          "label (the Job's name or uid, which select its pods) and refuses any other value there")


def annotated_pool(metadata: Mapping[str, Any]) -> Any:
    """The raw value of the node-pool annotation, or None."""
    annotations = metadata.get("annotations")
    return annotations.get(NODE_POOL_ANNOTATION) if isinstance(annotations, Mapping) else None


def from_experiment(data: Mapping[str, Any], limits: Limits = DEFAULTS) -> dict[str, Any]:
    """The native definition of a Katib Experiment, or :class:`InvalidStudy` listing every
    problem with its Experiment path: those of the translation (Katib's webhook rules, fields
    katuna cannot honour) and those the native study they leave would have under ``limits``. A
    field holding the wrong kind of value is refused before anything is translated, as Katib's
    webhook refuses an Experiment it cannot decode (:mod:`katib_shapes`)."""
    shaped = katib_shapes.problems(data)
    if shaped:
        raise InvalidStudy(shaped)
    metadata = data.get("metadata") or {}
    spec = data.get("spec") or {}
    algorithm = (spec.get("algorithm") or {}).get("algorithmName")
    problems = katib_shapes.unknown_document_fields(data) + katib_shapes.repeated_names(spec)
    problems += katib_shapes.unknown_fields(spec)
    problems += [Problem(f"spec.{key}", f"unknown field; expected one of {', '.join(sorted(_SPEC))}")
                 for key in spec if key not in _SPEC | {"nasConfig"}]
    if spec.get("nasConfig") is not None:  # Katib decodes a null nasConfig as none
        problems.append(Problem("spec.nasConfig", katib_search.NAS_CONFIG))
    if spec.get("resumePolicy") not in (None, "", "Never", "LongRunning", "FromVolume"):
        problems.append(Problem("spec.resumePolicy", "expected Never, LongRunning or FromVolume"))
    _name(metadata.get("name"), problems)
    problems += label_problems(metadata)
    native: dict[str, Any] = {
        "name": metadata.get("name"),
        "objective": _objective(spec.get("objective") or {}, problems),
        "parameters": [_parameter(p, f"spec.parameters[{i}]", problems) for i, p in enumerate(spec.get("parameters") or [])],
        "algorithm": katib_search.sampler(spec.get("algorithm") or {}, problems),
        "parallelism": _parallelism(spec, problems),
        "trialTemplate": katib_template.translate(spec.get("trialTemplate"), spec.get("parameters") or [], problems),
    }
    typed = _typed_fields(metadata, problems)
    if typed and native["trialTemplate"]:
        native["trialTemplate"]["typedFields"] = typed
    if spec.get("maxTrialCount") is not None:
        native["maxTrials"] = spec["maxTrialCount"]
    _bounded(spec, algorithm, native["parameters"], problems)
    if spec.get("maxFailedTrialCount") is not None:
        native["maxFailedTrials"] = failures_allowed(spec["maxFailedTrialCount"])
    if spec.get("earlyStopping") is not None:
        native["earlyStopping"] = katib_search.early_stopping(spec["earlyStopping"], problems)
    _algorithm_specifics(algorithm, native, spec, problems, limits)
    pool = _node_pool(data, native["parallelism"], problems, limits)
    if pool is not None:
        native["nodePool"] = pool
    collector = katib_collectors.collector(spec.get("metricsCollectorSpec") or {}, problems)
    # Katib's collector reads no number from loss=nan, and its reduction passes over what is none.
    native["metricsCollector"] = {**(collector or {"kind": "stdout"}), "nonFinite": "skip"}
    if (native.get("earlyStopping") or {}).get("algorithm") == "medianstop":
        # Katib's collector counts each report of the objective toward start_step, whatever its line names.
        native["metricsCollector"]["steps"] = "reports"
    if metadata.get("namespace"):
        native["kubernetes"] = {"namespace": metadata["namespace"]}
    if problems:
        raise InvalidStudy(_leading(spec, algorithm, problems + _native_problems(native, data, problems, limits)))
    return native


def _algorithm_specifics(algorithm: Any, native: dict[str, Any], spec: Mapping[str, Any],
                         problems: list[Problem], limits: Limits) -> None:
    """What one Katib algorithm asks of the native study beyond its sampler: hyperopt's settings
    for ``tpe``, Optuna's Hyperband pruner for ``hyperband`` (after ``earlyStopping``, which it
    refuses), and CMA-ES's parameters and ``sigma`` for ``cmaes``."""
    if algorithm == "tpe":
        katib_search.as_hyperopt(native["algorithm"]["settings"], native["parallelism"], limits.parallelism)
    elif algorithm == "hyperband":
        katib_search.hyperband(native, (spec.get("algorithm") or {}).get("algorithmSettings"), problems)
    elif algorithm == "cmaes":
        _cmaes(native, problems)


def _cmaes(native: dict[str, Any], problems: list[Problem]) -> None:
    """Katib's CMA-ES: two or more int or double parameters, as Katib's services require, and
    ``sigma`` in Optuna's unit (:func:`katib_algorithms.sigma_as_optuna_takes_it`)."""
    if sum(p.get("type") in ("int", "float") for p in native["parameters"]) < 2:
        problems.append(Problem("spec.algorithm.algorithmName", "cmaes needs two or more int or double parameters, "
                                                                "as Katib's CMA-ES services do"))
    katib_algorithms.sigma_as_optuna_takes_it(native["algorithm"]["settings"], native["parameters"])


def _leading(spec: Mapping[str, Any], algorithm: Any, problems: list[Problem]) -> list[Problem]:
    """The problems that are not mere consequences of another: with a ``nasConfig`` (refused),
    the parameters and trial template of neural architecture search, and a NAS algorithm's
    (``algorithm``) refusal, which says the same."""
    nas = spec.get("nasConfig") is not None
    return [p for p in problems if not (nas and (
        any(p.path == f or p.path.startswith((f"{f}.", f"{f}[")) for f in ("spec.parameters", "spec.trialTemplate"))
        or (p.path == "spec.algorithm.algorithmName" and katib_search.REFUSED.get(str(algorithm)) == katib_search.NAS)))]


def _native_problems(native: dict[str, Any], data: Mapping[str, Any], found: list[Problem],
                     limits: Limits) -> list[Problem]:
    """The problems the native study would have besides those already ``found``, so that a
    translation problem hides none of the others (none about a trial template that is missing,
    or left unread in its ConfigMap: ``found`` says why, and the native study's words for it,
    its ``command``, are no field of an Experiment)."""
    try:
        validate.parse_study(native, limits, unused_parameters=True)
    except InvalidStudy as exc:
        problems = katib_paths.katib_problems(exc.problems, data, already=found)
        if katib_template.without_trial_spec(data.get("spec") or {}):
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
    return max(max_failed - 1, 0) if is_count(max_failed) and max_failed >= 0 else max_failed


def _name(name: Any, problems: list[Problem]) -> None:
    """Katib's webhook: a name starts with a lower-case letter and has at most 40 characters
    (its trials' names and labels derive from it)."""
    if isinstance(name, str) and (len(name) > 40 or not name[:1].islower()):
        problems.append(Problem("metadata.name", f"expected at most 40 characters starting with a lower-case letter, got {name!r}"))


def _parallelism(spec: Mapping[str, Any], problems: list[Problem]) -> Any:
    """``parallelTrialCount``, by default 3, as Katib's defaulting webhook sets it; as its
    validating webhook then requires, neither it (given or defaulted) nor
    ``maxFailedTrialCount`` may exceed ``maxTrialCount``."""
    given = spec.get("parallelTrialCount")
    parallelism = DEFAULT_PARALLELISM if given is None else given
    limit = spec.get("maxTrialCount")
    if not is_count(limit):
        return parallelism
    if is_count(parallelism) and parallelism > limit and (given is not None or limit >= 1):  # else the limit is wrong
        defaulted = "" if given is not None else (f" (defaulted to {DEFAULT_PARALLELISM}, as Katib's webhook "
                                                  f"defaults it; give a parallelTrialCount of at most {limit})")
        problems.append(Problem("spec.parallelTrialCount", f"expected at most spec.maxTrialCount ({limit}), "
                                                           f"got {parallelism}{defaulted}"))
    failures = spec.get("maxFailedTrialCount")
    if is_count(failures) and failures > limit:
        problems.append(Problem("spec.maxFailedTrialCount", f"expected at most spec.maxTrialCount ({limit}), "
                                                            f"got {failures}"))
    return parallelism






def _bounded(spec: Mapping[str, Any], algorithm: Any, parameters: list[dict[str, Any]],
             problems: list[Problem]) -> None:
    """katuna runs no study without an end (every request's cost is bounded): an Experiment needs
    ``maxTrialCount`` unless its goal (or the grid, which runs out) ends it, where Katib runs one
    with neither until it is deleted. A grid's is at most its points (of the translated
    ``parameters``), as Katib's grid service refuses more."""
    if algorithm == "grid":
        problems += katib_grid.problems(spec.get("maxTrialCount"), parameters)
    elif spec.get("maxTrialCount") is None and (spec.get("objective") or {}).get("goal") is None:
        problems.append(Problem("spec.maxTrialCount", "required unless spec.objective.goal is set: katuna runs no "
                                                      "Experiment without an end (Katib would run this one until "
                                                      "it is deleted)"))


def _unknown(given: Any, known: set[str], path: str, problems: list[Problem]) -> None:
    """A problem for each key of ``given`` that Katib's schema has no field for."""
    if isinstance(given, Mapping):
        problems += [Problem(f"{path}.{key}", f"unknown field; expected one of {', '.join(sorted(known))}")
                     for key in given if key not in known]


def _objective(objective: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """The objective; a strategy of a metric that is neither the objective nor an additional
    metric is left out, as Katib, which collects no such metric, never reads it. The objective
    among the additional metrics is refused once, as Katib refuses it, not again as a metric
    listed twice."""
    _unknown(objective, _OBJECTIVE, "spec.objective", problems)
    out: dict[str, Any] = {"metric": objective.get("objectiveMetricName"), "direction": objective.get("type")}
    if objective.get("goal") is not None:
        out["goal"] = objective["goal"]
    additional = list(objective.get("additionalMetricNames") or [])
    if objective.get("objectiveMetricName") in additional:
        problems.append(Problem("spec.objective.additionalMetricNames", "should not contain spec.objective.objectiveMetricName"))
    # A name listed twice is one metric, collected once, as Katib collects it.
    others = list(dict.fromkeys(name for name in additional if name != objective.get("objectiveMetricName")))
    if others:
        out["additionalMetrics"] = others
    collected = [objective.get("objectiveMetricName"), *additional]
    strategies = {s.get("name"): s.get("value") for s in objective.get("metricStrategies") or []
                  if s.get("name") in collected}  # Katib reads the strategies of collected metrics only
    if strategies:
        out["strategies"] = strategies
    return out


def _number(text: Any, kind: str, path: str, problems: list[Problem]) -> float | int | None:
    number, problem = katib_numbers.parse(text, kind)
    if problem is not None:
        problems.append(Problem(path, problem))
    return number


def _parameter(parameter: Mapping[str, Any], path: str, problems: list[Problem]) -> dict[str, Any]:
    """One parameter; as Katib's webhook requires, a feasible space with min and max (int,
    double) or a list and no range (categorical, discrete)."""
    _unknown(parameter, _PARAMETER, path, problems)
    kind = {"int": "int", "double": "float", "categorical": "categorical", "discrete": "discrete"}.get(
        str(parameter.get("parameterType")))
    out: dict[str, Any] = {"name": parameter.get("name"), "type": kind}
    if kind is None:
        given = parameter.get("parameterType")
        problems.append(Problem(f"{path}.parameterType", "expected int, double, categorical or discrete, got "
                                + ("nothing" if given is None else shown(given))))
        return out
    space = parameter.get("feasibleSpace") or {}
    where = f"{path}.feasibleSpace"
    _unknown(space, _FEASIBLE_SPACE, where, problems)
    if not space:
        problems.append(Problem(where, "required"))
        return out
    # Katib's feasible space holds strings, and an empty one is a field left out (Go's zero value).
    given = {key: value for key, value in space.items() if value is not None and value != ""}
    if kind in ("categorical", "discrete"):
        if {"min", "max", "step"} & set(given):
            problems.append(Problem(where, f"feasibleSpace.min, .max and .step are not supported for parameterType {kind}"))
        values = list(space.get("list") or [])
        out["values"] = values if kind == "categorical" else [_discrete(v, f"{where}.list[{i}]", problems)
                                                              for i, v in enumerate(values)]
        return out
    if space.get("list"):
        problems.append(Problem(f"{where}.list", f"not supported for parameterType {parameter.get('parameterType')}"))
    for key in ("min", "max"):
        if key not in given:
            problems.append(Problem(f"{where}.{key}", f"required for parameterType {parameter.get('parameterType')}: "
                                                      "feasibleSpace.min and feasibleSpace.max"))
    for key in ("min", "max", "step"):
        if key in given:
            out[key] = _number(given[key], kind, f"{where}.{key}", problems)
    distribution = space.get("distribution") or "uniform"
    distribution = "uniform" if distribution == UNSPECIFIED else distribution
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









def _node_pool(data: Mapping[str, Any], parallelism: Any, problems: list[Problem], limits: Limits) -> Any:
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
        parse_node_pool(r, block, metadata.get("name"), parallelism if is_count(parallelism) else None, limits)
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
    except (ValueError, RecursionError) as exc:
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
