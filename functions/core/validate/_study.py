"""A whole study definition: each section read by its own module, then the rules that tie
sections together (counts, the algorithm, early stopping, the grid, the names of trial workloads)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from functions.core import collector_path, quantiles
from functions.core.cluster import parse_cluster
from functions.core.code_placeholders import code_problems
from functions.core.early_stopping import EarlyStopping
from functions.core.errors import InvalidStudy, Problem
from functions.core.exec_limits import exec_problems
from functions.core.initial_trials import parse_initial_trials
from functions.core.limits import DEFAULTS, MAX_SEED, Limits
from functions.core.naming import LABEL_EXPECTED, is_label
from functions.core.nodepool import parse_node_pool
from functions.core.parameters import ChoiceParameter, Parameter
from functions.core.pruners import parse_early_stopping
from functions.core.reader import Reader, kind_of, shown, unfit_characters
from functions.core.sampler_settings import check_algorithm, check_sampler, convert_settings, objectives_problems
from functions.core.space import distribution_problems
from functions.core.spec import Algorithm, MetricsCollector, Objective, Study, TrialTemplate
from functions.core.study_limits import over_limits
from functions.core.trial_template import parse_trial_template
from functions.core.validate._collector import check_wrappable, parse_collector
from functions.core.validate._objective import check_metric_names, parse_objective
from functions.core.validate._parameters import check_values, parameter_names, parse_parameters
from functions.core.validate._workload_names import workload_name_problems
from functions.core.warm import parse_warm_start

TOP_FIELDS = {
    "name", "objective", "parameters", "algorithm", "parallelism", "maxTrials",
    "maxFailedTrials", "timeBudget", "trialTemplate", "metricsCollector", "description", "kubernetes",
    "earlyStopping", "warmStart", "nodePool", "initialTrials",
}
"""The fields of a study definition's top level; any other is a problem. The ``studies.katuna.dev``
schema and the study format's page list the same (tests compare them)."""


def none_stored(name: str) -> bool:
    """No study is stored: every study is new (the default of :func:`parse_study`)."""
    return False


def parse_study(data: Any, limits: Limits = DEFAULTS, stored: Callable[[str], bool] = none_stored,
                unused_parameters: bool = False, counted: Callable[[Problem], bool] | None = None) -> Study:
    """A validated :class:`Study` from the native format, or :class:`InvalidStudy` listing every
    problem; ``limits`` bound what the study may ask of the service. ``stored`` tells whether a
    study of a name is stored already (asked only of a study whose list values clash, which are
    then no problem: the stored study runs on as it was); by default none is, as for ``katuna
    render`` and ``convert``. With ``unused_parameters``, a parameter no placeholder names is no
    problem (a Katib Experiment's: Katib samples it and passes it to no trial). ``counted`` tells
    which of the fields' problems the caller reports (:class:`~functions.core.reader.Reader`):
    the others are neither listed nor counted, yet still refuse the study."""
    where = _Where()
    r = Reader(counted, seen=where)
    top, name = _top(r, data)
    objectives, additional, strategies = parse_objective(r, top.get("objective"))
    listed = parse_parameters(r, top.get("parameters"), limits)
    parameters = tuple(p for p in listed if p is not None)
    check_values(r, listed, name, stored)
    algorithm = _algorithm(r, top.get("algorithm"), limits)
    r.add(objectives_problems(algorithm, len(objectives)))
    parallelism, max_trials, max_failed, time_budget = _counts(r, top)
    named = parameter_names(top.get("parameters")) if _listed(top.get("parameters")) else None
    trial_template = parse_trial_template(r, top.get("trialTemplate"), named, unused_parameters)
    collector = parse_collector(r, top.get("metricsCollector"), limits)
    if collector.path is not None and named is not None:
        r.add(collector_path.problems(collector.path, parameters))
    cluster = parse_cluster(r, top.get("kubernetes"), trial_spec=trial_template.trial_spec is not None)
    early_stopping = parse_early_stopping(r, top.get("earlyStopping"), len(objectives), limits)
    warm_start = parse_warm_start(r, top.get("warmStart"), parameters, [o.metric for o in objectives])
    node_pool = parse_node_pool(r, top.get("nodePool"), name, parallelism, limits)
    initial_trials = parse_initial_trials(r, top.get("initialTrials"), parameters, algorithm.name,
                                          dict(algorithm.settings), max_trials)
    _check_counts(r, parallelism, max_trials, max_failed)
    check_wrappable(r, trial_template, collector)
    _check_across_sections(r, top, objectives, parameters, algorithm, collector, early_stopping, time_budget)
    if r.found:
        r.add(_pasted_code(where, trial_template, listed, limits))
        raise InvalidStudy(r.problems, r.more)
    study = Study(name=name, objectives=objectives, parameters=parameters, trial_template=trial_template,
                  additional_metrics=additional, strategies=strategies, algorithm=algorithm,
                  parallelism=parallelism if parallelism is not None else min(3, max_trials or 3),
                  max_trials=max_trials, max_failed_trials=max_failed, time_budget=time_budget,
                  metrics_collector=collector, kubernetes=cluster, early_stopping=early_stopping,
                  warm_start=warm_start, node_pool=node_pool, initial_trials=initial_trials)
    problems = _valid_study_problems(study, limits)
    if problems:
        raise InvalidStudy(problems)
    return study


def _counts(r: Reader, top: Mapping[str, Any]) -> tuple[int | None, int | None, int | None, float | None]:
    """The study's ``parallelism``, ``maxTrials``, ``maxFailedTrials`` and ``timeBudget``, read in
    that order (None for each one not given, or wrong)."""
    return (r.get(top, "parallelism", "", "int"), r.get(top, "maxTrials", "", "int"),
            r.get(top, "maxFailedTrials", "", "int"), r.duration(top, "timeBudget", ""))



def _top(r: Reader, data: Any) -> tuple[Mapping[str, Any], Any]:
    """The definition's top-level fields and the study's name, its problems (unknown fields,
    characters no study may hold, a name that is no label, a description that is no text) in
    ``r``; :class:`InvalidStudy` at once for a definition that is no mapping, as nothing else
    can be read of it."""
    top = r.mapping(data, "", TOP_FIELDS)
    if not isinstance(data, Mapping):
        raise InvalidStudy(r.problems or [Problem("", "expected a mapping: the study definition")], r.more)
    r.add_by_path(unfit_characters(data))
    name = r.get(top, "name", "", "str", required=True)
    if name is not None and not is_label(name):
        r.fail("name", f"expected {LABEL_EXPECTED}, got {shown(name)}")
    if top.get("description") is not None and not isinstance(top["description"], str):
        r.fail("description", f"expected text, got {kind_of(top['description'])}")
    return top, name

def _listed(data: Any) -> bool:
    """Whether ``parameters`` is a list of them (``parameters`` misspelt or left out is none): a
    placeholder can name no parameter only of a list, the problem of a missing one is its own."""
    return isinstance(data, list) and bool(data)


def _check_across_sections(r: Reader, top: Mapping[str, Any], objectives: tuple[Objective, ...],
                           parameters: tuple[Parameter, ...], algorithm: Algorithm, collector: MetricsCollector,
                           early_stopping: EarlyStopping | None, time_budget: float | None) -> None:
    """The rules between sections, each read on its own first: early stopping needs values as a
    trial runs (the tfevent collector reads them at its end), the grid a set of values (a normal
    has none), the study an end (``maxTrials`` unless something else ends it), and the metric
    names the default text filter must read (no filters of the study's own, nor JSON, nor tfevent)."""
    if collector.kind == "tfevent" and early_stopping is not None:
        r.fail("earlyStopping", "not available with the tfevent collector: it reads the event files once the trial "
                                "has ended, as Katib's TensorFlowEvent collector does, so no value comes in between")
    if algorithm.name == "grid":
        for i, parameter in enumerate(parameters):
            if quantiles.is_normal(parameter):
                r.fail(f"parameters[{i}].distribution", "grid visits the values between min and max on their step, "
                                                        "a normal has no such set; expected uniform, or another algorithm")
    if top.get("maxTrials") is None and time_budget is None and not any(o.goal is not None for o in objectives) and algorithm.name != "grid":
        r.fail("maxTrials", "required unless timeBudget, an objective goal or the grid algorithm ends the study")
    if objectives and not collector.filters and collector.kind != "tfevent" and collector.format != "json":
        check_metric_names(r, top["objective"])


def _valid_study_problems(study: Study, limits: Limits) -> list[Problem]:
    """The problems checked only of a study whose fields are all valid, listed together but
    where one check needs another to pass: the limits come first, alone, as the other checks
    cost more the larger the study (its values, its space, the sampler's trial runs); and the
    sampler is tried only on a space Optuna can sample and the algorithm can search, else its
    failure there would be blamed on a setting."""
    problems = over_limits(study, limits)
    if problems:
        return problems
    parameters, n_objectives = study.parameters, len(study.objectives)
    unsearchable = [*distribution_problems(parameters), *check_algorithm(study.algorithm, parameters, limits)]
    problems = [*exec_problems(study), *code_problems(study.trial_template, parameters),
                *workload_name_problems(study, limits), *unsearchable]
    if not unsearchable:
        problems += check_sampler(study.algorithm, parameters, n_objectives)
    return problems


class _Where:
    """Where the problems of a study's fields are, each told by its path as it is found (kept
    or not, :class:`~functions.core.reader.Reader`), for :func:`_pasted_code`: whether any is
    of the trial template or of the parameters as a whole, and which parameters have their own."""

    def __init__(self) -> None:
        self.template_or_parameters = False
        self.parameters: set[int] = set()

    def __call__(self, path: str) -> None:
        if _under(path, "trialTemplate") or path == "parameters":
            self.template_or_parameters = True
        if (match := _PARAMETER.match(path)) is not None:
            self.parameters.add(int(match.group(1)))


def _pasted_code(where: _Where, template: TrialTemplate, listed: list[Parameter | None],
                 limits: Limits) -> list[Problem]:
    """The placeholders pasted into code (:func:`code_problems`) of a study with problems
    (``where`` they are), so that they are listed with those: looked for only when the trial
    template has no problem of its own (a ``trialSpec`` of the wrong shape is not read), nor the
    parameters as a whole, and no list parameter holds more values than the limit (the check
    reads every value at every placeholder). A parameter with problems of its own (a name an
    earlier one has, say) is left out, and its placeholders get none."""
    if where.template_or_parameters:
        return []
    fit = tuple(parameter for i, parameter in enumerate(listed) if parameter is not None and i not in where.parameters)
    if any(isinstance(p, ChoiceParameter) and len(p.values) > limits.values for p in fit):
        return []
    return code_problems(template, fit)


_PARAMETER = re.compile(r"parameters\[(\d+)\](?:$|[.\[])")
"""The path of a parameter's problem (``parameters[2]``, ``parameters[2].values[0]``), its index the group."""


def _under(path: str, field: str) -> bool:
    """Whether ``path`` is ``field`` or one of its fields or items."""
    return path == field or path.startswith((f"{field}.", f"{field}["))


def _check_counts(r: Reader, parallelism: int | None, max_trials: int | None, max_failed: int | None) -> None:
    if parallelism is not None and parallelism < 1:
        r.fail("parallelism", f"expected an integer >= 1, got {parallelism}")
    if max_trials is not None and max_trials < 1:
        r.fail("maxTrials", f"expected an integer >= 1, got {max_trials}")
    if max_failed is not None and max_failed < 0:
        r.fail("maxFailedTrials", f"expected an integer >= 0, got {max_failed}")
    if parallelism and max_trials and parallelism > max_trials >= 1:
        r.fail("parallelism", f"expected at most maxTrials ({max_trials}), got {parallelism}")


def _algorithm(r: Reader, data: Any, limits: Limits) -> Algorithm:
    """The sampler, its settings converted to the types it takes (Katib gives strings)."""
    item = r.mapping(data, "algorithm", {"name", "settings", "seed"})
    name = r.get(item, "name", "algorithm", "str") or "tpe"
    settings = r.get(item, "settings", "algorithm", "mapping") or {}
    seed = r.get(item, "seed", "algorithm", "int")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        r.fail("algorithm.seed", f"expected an integer from 0 to {MAX_SEED}, got {seed}")
    algorithm, problems = convert_settings(Algorithm(name, tuple(settings.items()), seed), limits.setting)
    r.add(problems)
    return algorithm
