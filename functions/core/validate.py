"""Parse and validate the native study format, reporting every problem at once.

Each problem names its field path (``parameters[1].max``) and what was expected. Unknown
fields are problems too, so a misspelt key is caught instead of silently ignored.

List values a trial or the sampler cannot tell apart (:mod:`functions.core.choices`) are
problems of a new study only: one stored before that check was made is taken as it was when it
is submitted again to resume it, edited or restarted, so the caller says which names are stored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from functions.core import collector_path, file_collector, quantiles, trial_spec
from functions.core.choices import clashes
from functions.core.cluster import parse_cluster
from functions.core.code_placeholders import code_problems
from functions.core.errors import InvalidStudy, Problem
from functions.core.exec_limits import exec_problems
from functions.core.limits import DEFAULTS, MAX_SEED, PREFIX, Limits
from functions.core.metrics import check_filter
from functions.core.naming import LABEL_EXPECTED, indexed_excess, is_label, job_name
from functions.core.nodepool import parse_node_pool
from functions.core.parameters import (
    DISTRIBUTIONS,
    UNIFORM,
    CategoricalParameter,
    ChoiceParameter,
    DiscreteParameter,
    FloatParameter,
    IntParameter,
    Parameter,
    same_value,
)
from functions.core.pruners import parse_early_stopping
from functions.core.reader import Reader, is_number, join, kind_of, unfit_characters
from functions.core.samplers import check_algorithm, check_sampler, convert_settings, objectives_problem
from functions.core.space import distribution_problems
from functions.core.spec import (
    MAXIMIZE,
    MINIMIZE,
    STRATEGIES,
    Algorithm,
    MetricsCollector,
    Objective,
    Study,
    TrialTemplate,
)
from functions.core.study_limits import over_limits
from functions.core.trial_template import parse_trial_template
from functions.core.warm import parse_warm_start

METRIC_NAME = re.compile(r"[\w|-]+", re.ASCII)
"""What Katib's default filter (RE2, whose ``\\w`` is ASCII) reads as a metric name."""
NAME_UNFIT = {"}": "it ends a ${trialParameters.<name>} placeholder",
              '"': "a query sorting or filtering trials by the parameter names it in quotes",
              "=": "katuna render --params reads NAME=VALUE",
              ",": "the dashboard asks for a chart's parameters as a comma-separated list"}
"""Characters a parameter name cannot hold, and why; any other printable text is a name (Katib
checks none), so ``model/lr`` or ``optimizer[lr]`` reaches the trial and the tables as written."""

RANGE_TYPES = ("int", "float")
LIST_TYPES = ("categorical", "discrete")
PARAMETER_TYPES = RANGE_TYPES + LIST_TYPES
COLLECTOR_KINDS = ("stdout", "file", "tfevent")
COLLECTOR_FORMATS = ("text", "json")
NON_FINITE_RULES = ("fail", "skip")
STEP_RULES = ("named", "reports")
"""The values these fields take; the ``studies.katuna.dev`` schema lists the same (a test compares them)."""

_TOP = {
    "name", "objective", "parameters", "algorithm", "parallelism", "maxTrials",
    "maxFailedTrials", "timeBudget", "trialTemplate", "metricsCollector", "description", "kubernetes",
    "earlyStopping", "warmStart", "nodePool",
}


def none_stored(name: str) -> bool:
    """No study is stored: every study is new (the default of :func:`parse_study`)."""
    return False


def parse_study(data: Any, limits: Limits = DEFAULTS, stored: Callable[[str], bool] = none_stored,
                unused_parameters: bool = False) -> Study:
    """A validated :class:`Study` from the native format, or :class:`InvalidStudy` listing every
    problem; ``limits`` bound what the study may ask of the service. ``stored`` tells whether a
    study of a name is stored already (asked only of a study whose list values clash, which are
    then no problem: the stored study runs on as it was); by default none is, as for ``katuna
    render`` and ``convert``. With ``unused_parameters``, a parameter no placeholder names is no
    problem (a Katib Experiment's: Katib samples it and passes it to no trial)."""
    r = Reader()
    top = r.mapping(data, "", _TOP)
    if not isinstance(data, Mapping):
        raise InvalidStudy(r.problems or [Problem("", "expected a mapping: the study definition")])
    r.problems += unfit_characters(data)
    name = r.get(top, "name", "", "str", required=True)
    if name is not None and not is_label(name):
        r.fail("name", f"expected {LABEL_EXPECTED}")
    if top.get("description") is not None and not isinstance(top["description"], str):
        r.fail("description", f"expected text, got {kind_of(top['description'])}")
    objectives, additional, strategies = _objective(r, top.get("objective"))
    listed = _parameters(r, top.get("parameters"), limits)
    parameters = tuple(p for p in listed if p is not None)
    _check_values(r, listed, name, stored)
    algorithm = _algorithm(r, top.get("algorithm"), limits)
    if (unfit := objectives_problem(algorithm, len(objectives))) is not None:
        r.problems.append(unfit)
    parallelism = r.get(top, "parallelism", "", "int")
    max_trials = r.get(top, "maxTrials", "", "int")
    max_failed = r.get(top, "maxFailedTrials", "", "int")
    time_budget = r.duration(top, "timeBudget", "")
    trial_template = parse_trial_template(r, top.get("trialTemplate"), _names(top.get("parameters")),
                                          unused_parameters)
    collector = _collector(r, top.get("metricsCollector"), limits)
    if collector.path is not None:
        r.problems += collector_path.problems(collector.path, parameters)
    cluster = parse_cluster(r, top.get("kubernetes"), trial_spec=trial_template.trial_spec is not None)
    early_stopping = parse_early_stopping(r, top.get("earlyStopping"), len(objectives), limits)
    warm_start = parse_warm_start(r, top.get("warmStart"), parameters, [o.metric for o in objectives])
    node_pool = parse_node_pool(r, top.get("nodePool"), name, parallelism, limits)
    _check_counts(r, parallelism, max_trials, max_failed)
    _check_wrappable(r, trial_template, collector)
    if collector.kind == "tfevent" and early_stopping is not None:
        r.fail("earlyStopping", "not available with the tfevent collector: it reads the event files once the trial "
                                "has ended, as Katib's TensorFlowEvent collector does, so no value comes in between")
    if algorithm.name == "grid":
        for i, parameter in enumerate(parameters):
            if quantiles.is_normal(parameter):
                r.fail(f"parameters[{i}].distribution", "grid visits the values between min and max on their step, "
                                                        "a normal has no such set; expected uniform, or another algorithm")
    if "maxTrials" not in top and time_budget is None and not any(o.goal is not None for o in objectives) and algorithm.name != "grid":
        r.fail("maxTrials", "required unless timeBudget, an objective goal or the grid algorithm ends the study")
    if objectives and not collector.filters and collector.kind != "tfevent" and collector.format != "json":
        _check_metric_names(r, top["objective"])
    if r.problems:
        raise InvalidStudy(r.problems)
    study = Study(
        name=name,
        objectives=objectives,
        parameters=parameters,
        trial_template=trial_template,
        additional_metrics=additional,
        strategies=strategies,
        algorithm=algorithm,
        parallelism=parallelism if parallelism is not None else min(3, max_trials or 3),
        max_trials=max_trials,
        max_failed_trials=max_failed,
        time_budget=time_budget,
        metrics_collector=collector,
        kubernetes=cluster,
        early_stopping=early_stopping,
        warm_start=warm_start,
        node_pool=node_pool,
    )
    problems = over_limits(study, limits)
    if not problems:
        problems = [*exec_problems(study), *code_problems(study), *_indexed_names(study, limits),
                    *distribution_problems(parameters)]
    problems = problems or check_algorithm(algorithm, parameters, len(objectives), limits)
    problems = problems or check_sampler(algorithm, parameters, len(objectives))
    if problems:
        raise InvalidStudy(problems)
    return study


def _indexed_names(study: Study, limits: Limits) -> list[Problem]:
    """An Indexed ``trialSpec`` Job's pods are named ``<job name>-<index>``, which the API server
    requires to be a DNS-1123 label for the last index when it takes the Job: a name whose later
    trials (up to ``maxTrials``, else ``KATUNA_MAX_TRIALS``) or retries would be refused is refused
    now, saying how many characters must go, rather than fail its study mid-run."""
    job = study.trial_template.trial_spec or {}
    spec = job.get("spec") or {}
    if not isinstance(spec, Mapping):
        return []
    completions = spec.get("completions", 1 if spec.get("parallelism") is None else None)
    if (job.get("apiVersion"), job.get("kind"), spec.get("completionMode")) != ("batch/v1", "Job", "Indexed") \
            or not isinstance(completions, int) or completions < 1:
        return []
    trials, attempts = study.max_trials or limits.trials, study.trial_template.max_attempts
    excess = indexed_excess(study.name, trials, attempts, completions)
    if not excess:
        return []
    last = f"{job_name(study.name, trials - 1, attempts)}-{completions - 1}"
    return [Problem("name", f"expected at most {len(study.name) - excess} characters for an Indexed trialSpec Job of "
                            f"{completions} completions: the last pod of trial {trials - 1}'s attempt {attempts} would "
                            f"be named {last} ({len(last)} characters), and the API server refuses a Job whose pod "
                            f"names pass the 63 of a DNS-1123 label; shorten the name by {excess} characters, or "
                            f"lower maxTrials, trialTemplate.maxAttempts or completions")]


def _check_values(r: Reader, listed: list[Parameter | None], name: str | None, stored: Callable[[str], bool]) -> None:
    """List values a trial or the sampler cannot tell apart (:func:`clashes`) are problems, unless
    the study's name is stored already: the store is asked only when some clash."""
    clashing = clashes(listed)
    if clashing and not (name is not None and stored(name)):
        r.problems += clashing


def _check_wrappable(r: Reader, trial: TrialTemplate, collector: MetricsCollector) -> None:
    """A ``trialSpec`` whose metrics a file or tfevent collector reads has a primary container
    katuna can wrap on Kubernetes (:func:`file_collector.unwrappable`): refused here, not at its
    first trial."""
    if collector.kind not in ("file", "tfevent") or trial.trial_spec is None:
        return
    name = trial_spec.primary_container_name(trial.trial_spec, trial.primary_container,
                                             dict(trial.primary_pod_labels) or None)
    why = None if name is None else file_collector.unwrappable(
        trial.trial_spec, name, "File" if collector.kind == "file" else "TensorFlowEvent")
    if why is not None:
        r.problems.append(why)


def _check_metric_names(r: Reader, objective: Mapping[str, Any]) -> None:
    """Metric names the default filter reads, each refused by its own path (a JSON metrics file
    names its metrics by its keys, so this holds for text only)."""
    metrics, additional = objective.get("metrics"), objective.get("additionalMetrics")
    names = ([(f"objective.metrics[{i}].name", m.get("name")) for i, m in enumerate(metrics) if isinstance(m, Mapping)]
             if isinstance(metrics, list) else [("objective.metric", objective.get("metric"))])
    names += [(f"objective.additionalMetrics[{i}]", m) for i, m in enumerate(additional or [])]
    for path, metric in names:
        if isinstance(metric, str) and not METRIC_NAME.fullmatch(metric):
            r.fail(path, f"metric name {metric!r} cannot be matched by the default metric filter: use ASCII "
                         "letters (a-z, A-Z), digits, '_', '-' or '|', or a filter that reads it")


def _check_counts(r: Reader, parallelism: int | None, max_trials: int | None, max_failed: int | None) -> None:
    if parallelism is not None and parallelism < 1:
        r.fail("parallelism", "expected an integer >= 1")
    if max_trials is not None and max_trials < 1:
        r.fail("maxTrials", "expected an integer >= 1")
    if max_failed is not None and max_failed < 0:
        r.fail("maxFailedTrials", "expected an integer >= 0")
    if parallelism and max_trials and parallelism > max_trials >= 1:
        r.fail("parallelism", f"expected at most maxTrials ({max_trials}), got {parallelism}")


def _objective(r: Reader, data: Any) -> tuple[tuple[Objective, ...], tuple[str, ...], tuple[tuple[str, str], ...]]:
    if data is None:
        r.fail("objective", "required; expected a mapping with metric and direction, or metrics")
        return (), (), ()
    obj = r.mapping(data, "objective", {"metric", "direction", "goal", "metrics", "additionalMetrics", "strategies"})
    if "metrics" in obj and ("metric" in obj or "direction" in obj or "goal" in obj):
        r.fail("objective", "give either metric/direction/goal or metrics, not both")
    if "metrics" in obj:
        items = r.get(obj, "metrics", "objective", "list", required=True) or []
        if not items:
            r.fail("objective.metrics", "expected at least one objective")
        objectives = [_one_objective(r, item, f"objective.metrics[{i}]", "name") for i, item in enumerate(items)]
    else:
        objectives = [_one_objective(r, obj, "objective", "metric")]
    found = tuple(o for o in objectives if o is not None)
    additional = tuple(r.get(obj, "additionalMetrics", "objective", "list") or ())
    for i, metric in enumerate(additional):
        if not isinstance(metric, str) or not metric:
            r.fail(f"objective.additionalMetrics[{i}]", "expected a metric name")
    names = [o.metric for o in found] + [m for m in additional if isinstance(m, str)]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        r.fail("objective", f"metric {dup!r} is listed more than once")
    strategies = r.get(obj, "strategies", "objective", "mapping") or {}
    for metric, strategy in strategies.items():
        if metric not in names:
            r.fail(f"objective.strategies.{metric}",
                   f"not a collected metric; expected one of {', '.join(dict.fromkeys(names))}")
        if strategy not in STRATEGIES:
            r.fail(f"objective.strategies.{metric}", f"expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    return found, tuple(m for m in additional if isinstance(m, str)), tuple(sorted(strategies.items()))


def _one_objective(r: Reader, data: Any, path: str, name_key: str) -> Objective | None:
    allowed = {name_key, "direction", "goal"} if name_key == "name" else None
    item = r.mapping(data, path, allowed) if allowed else data
    metric = r.get(item, name_key, path, "str", required=True)
    direction = r.get(item, "direction", path, "str", required=True)
    goal = r.get(item, "goal", path, "number")
    if direction is not None and direction not in (MINIMIZE, MAXIMIZE):
        r.fail(join(path, "direction"), f"expected minimize or maximize, got {direction!r}")
        return None
    if metric is None or direction is None:
        return None
    return Objective(metric, direction, float(goal) if goal is not None else None)


def _parameters(r: Reader, data: Any, limits: Limits) -> list[Parameter | None]:
    """Each parameter at its index in ``data``; None for one with problems."""
    if not isinstance(data, list) or not data:
        r.fail("parameters", "required; expected a non-empty list of parameters")
        return []
    if len(data) > limits.parameters:
        r.fail("parameters", f"expected at most {limits.parameters:,} (set by KATUNA_MAX_PARAMETERS), got {len(data):,}")
        return []
    parameters = [_parameter(r, item, f"parameters[{i}]", limits) for i, item in enumerate(data)]
    names = _names(data)
    for dup in sorted({n for n in names if n is not None and names.count(n) > 1}):
        r.fail("parameters", f"parameter {dup!r} is defined more than once")
    _check_conditions(r, parameters)
    return parameters


def _check_conditions(r: Reader, parameters: list[Parameter | None]) -> None:
    """A condition names a list parameter defined earlier, and values it can take."""
    earlier: dict[str, Parameter] = {}
    for i, parameter in enumerate(parameters):
        for name, values in parameter.when if parameter else ():
            parent = earlier.get(name)
            where = f"parameters[{i}].when.{name}"
            if not isinstance(parent, ChoiceParameter):
                r.fail(where, "expected a categorical or discrete parameter defined before this one")
            elif unknown := [v for v in values if not any(same_value(v, choice) for choice in parent.values)]:
                r.fail(where, f"expected values among {', '.join(map(json.dumps, parent.values))}, "
                              f"got {', '.join(map(json.dumps, unknown))}")
        if parameter is not None:
            earlier[parameter.name] = parameter


def _names(data: Any) -> list[str | None]:
    """Parameter names by position, None where a parameter has no usable name."""
    if not isinstance(data, list):
        return []
    return [item.get("name") if isinstance(item, Mapping) and isinstance(item.get("name"), str) else None
            for item in data]


def _parameter(r: Reader, data: Any, path: str, limits: Limits) -> Parameter | None:
    item = r.mapping(data, path, {"name", "type", "min", "max", "step", "log", "distribution", "values", "when"})
    name = r.get(item, "name", path, "str", required=True)
    kind = r.get(item, "type", path, "str", required=True)
    if name is not None and (why := _name_problem(name, limits.text)) is not None:
        r.fail(join(path, "name"), why)
    parameter = None
    if kind in RANGE_TYPES:
        parameter = _range_parameter(r, item, path, name, kind)
    elif kind in LIST_TYPES:
        parameter = _list_parameter(r, item, path, name, kind)
    elif kind is not None:
        r.fail(join(path, "type"), f"expected int, float, categorical or discrete, got {kind!r}")
    when = r.get(item, "when", path, "mapping") or {}
    conditions = tuple((str(k), tuple(v) if isinstance(v, list) else (v,)) for k, v in when.items())
    return replace(parameter, when=conditions) if parameter is not None else None


def _name_problem(name: str, most: int) -> str | None:
    """Why ``name`` is no parameter name: empty, longer than ``most`` characters, or holding a
    control character (no terminal, table or log shows it as written) or one of
    :data:`NAME_UNFIT`. None for a name."""
    unfit = next((c for c in name if c in NAME_UNFIT), None)
    if name and len(name) <= most and name.isprintable() and unfit is None:
        return None
    why = f" ({unfit!r}: {NAME_UNFIT[unfit]})" if unfit is not None else ""
    return (f"expected printable text without control characters, '}}', '\"', '=' or ',', 1 to {most:,} characters, "
            f"got {name[:80]!r}{why}")


def _range_parameter(r: Reader, item: Mapping[str, Any], path: str, name: str | None, kind: str) -> Parameter | None:
    number = "int" if kind == "int" else "number"
    low = r.get(item, "min", path, number, required=True)
    high = r.get(item, "max", path, number, required=True)
    step = r.get(item, "step", path, number)
    log = bool(r.get(item, "log", path, "bool"))
    drawn = r.get(item, "distribution", path, "str") or UNIFORM
    if drawn not in DISTRIBUTIONS:
        r.fail(join(path, "distribution"), f"expected {' or '.join(DISTRIBUTIONS)} (with log: true, log-uniform or "
                                           f"log-normal), got {drawn!r}")
    if "values" in item:
        r.fail(join(path, "values"), f"not used by {kind} parameters; use min and max")
    if low is not None and high is not None and low > high:
        r.fail(join(path, "max"), f"expected >= min ({low}), got {high}")
    elif low is not None and high is not None and not math.isfinite(float(high) - float(low)):
        r.fail(join(path, "max"), f"the range from min ({low}) to max ({high}) is wider than a float can hold; "
                                  "expected max - min below 1.7e308")
    if step is not None and step <= 0:
        r.fail(join(path, "step"), "expected a positive step")
    elif step is not None and low is not None and high is not None and _wider_than_range(step, low, high):
        r.fail(join(path, "step"), f"expected at most max - min ({_span(low, high)}), got {step}: a larger step "
                                   "leaves min as the only value")
    if log and low is not None and low <= 0:
        r.fail(join(path, "min"), "expected > 0 on a log scale")
    if name is None or low is None or high is None:
        return None
    drawn = drawn if drawn in DISTRIBUTIONS else UNIFORM
    if kind == "int":
        return IntParameter(name, low, high, 1 if step is None else step, log, drawn)
    return FloatParameter(name, low, high, step, log, drawn)


def _wider_than_range(step: float, low: float, high: float) -> bool:
    """Whether ``step`` exceeds ``max - min`` of a range wider than one point (compared in
    decimal, as written: 0.2 is not wider than [0.1, 0.3])."""
    return low < high and Decimal(str(step)) > Decimal(str(high)) - Decimal(str(low))


def _span(low: float, high: float) -> str:
    """``max - min`` as written, without float noise."""
    return str(Decimal(str(high)) - Decimal(str(low)))


def _list_parameter(r: Reader, item: Mapping[str, Any], path: str, name: str | None, kind: str) -> Parameter | None:
    values = r.get(item, "values", path, "list", required=True)
    for key in ("min", "max", "step", "log", "distribution"):
        if key in item:
            r.fail(join(path, key), f"not used by {kind} parameters; use values")
    if values is None:
        return None
    if not values:
        r.fail(join(path, "values"), "expected at least one value")
    check = _is_discrete if kind == "discrete" else (lambda v: v is None or isinstance(v, (str, int, float, bool)))
    expected = "a finite number (or a string spelling one)" if kind == "discrete" else "a string, number, boolean or null"
    for i, value in enumerate(values):
        if not check(value):
            r.fail(f"{path}.values[{i}]", f"expected {expected}, got {kind_of(value)}")
    if len({repr(v) for v in values}) != len(values):
        r.fail(join(path, "values"), "expected distinct values")
    if not name:
        return None
    return DiscreteParameter(name, tuple(values)) if kind == "discrete" else CategoricalParameter(name, tuple(values))


def _is_discrete(value: Any) -> bool:
    """A discrete value: a finite number, or a string spelling one, which the trial receives as
    written (Katib lists discrete values as strings: ``"16"`` stays ``16``, never ``16.0``)."""
    if isinstance(value, str):
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return is_number(value)


def _algorithm(r: Reader, data: Any, limits: Limits) -> Algorithm:
    """The sampler, its settings converted to the types it takes (Katib gives strings)."""
    item = r.mapping(data, "algorithm", {"name", "settings", "seed"})
    name = r.get(item, "name", "algorithm", "str") or "tpe"
    settings = r.get(item, "settings", "algorithm", "mapping") or {}
    seed = r.get(item, "seed", "algorithm", "int")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        r.fail("algorithm.seed", f"expected an integer from 0 to {MAX_SEED}, got {seed}")
    algorithm, problems = convert_settings(Algorithm(name, tuple(settings.items()), seed), limits.setting)
    r.problems.extend(problems)
    return algorithm


def _collector(r: Reader, data: Any, limits: Limits) -> MetricsCollector:
    path = "metricsCollector"
    item = r.mapping(data, path, {"kind", "path", "format", "filters", "nonFinite", "steps"})
    kind = r.get(item, "kind", path, "str") or "stdout"
    file_path = r.get(item, "path", path, "str")
    fmt = r.get(item, "format", path, "str") or "text"
    filters = r.get(item, "filters", path, "list") or []
    non_finite = r.get(item, "nonFinite", path, "str") or "fail"
    if non_finite not in NON_FINITE_RULES:
        r.fail(join(path, "nonFinite"), f"expected fail (a NaN or infinite objective fails the trial) or skip (such a "
                                        f"report is no value, as in Katib), got {non_finite!r}")
    steps = r.get(item, "steps", path, "str") or "named"
    if steps not in STEP_RULES:
        r.fail(join(path, "steps"), f"expected named (a line's step or epoch key names its step) or reports (each "
                                    f"report of the objective is the next step, as Katib counts them), got {steps!r}")
    if kind not in COLLECTOR_KINDS:
        r.fail(join(path, "kind"), f"expected stdout, file or tfevent, got {kind!r}")
    if kind in ("file", "tfevent") and file_path is None:
        r.fail(join(path, "path"), f"required when kind is {kind}")
    if kind == "stdout" and file_path is not None:
        r.fail(join(path, "path"), "only used when kind is file or tfevent")
    if kind == "tfevent":
        _event_collector(r, item)
    if fmt not in COLLECTOR_FORMATS:
        r.fail(join(path, "format"), f"expected text or json, got {fmt!r}")
    if len(filters) > limits.filters:
        r.fail(join(path, "filters"), f"expected at most {limits.filters:,} (set by {PREFIX}MAX_FILTERS), "
                                      f"got {len(filters):,}")
        return MetricsCollector(kind, file_path, fmt, (), non_finite, steps)
    for i, pattern in enumerate(filters):
        message = check_filter(pattern, limits.text)
        if message:
            r.fail(f"{path}.filters[{i}]", message)
    return MetricsCollector(kind, file_path, fmt, tuple(filters), non_finite, steps)


def _event_collector(r: Reader, item: Mapping[str, Any]) -> None:
    """The tfevent collector reads the scalars of TensorFlow event files, not lines of text."""
    if item.get("format") not in (None, "text"):
        r.fail("metricsCollector.format", "only used when kind is stdout or file: the tfevent collector reads "
                                          "TensorFlow event files")
    if item.get("filters"):
        r.fail("metricsCollector.filters", "only used when kind is stdout or file: the tfevent collector matches "
                                           "event tags to the metric names, not lines to filters")
