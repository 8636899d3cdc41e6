"""How a Katib Experiment searches, in katuna's terms: its algorithm (the sampler, with each
setting as Optuna takes it: :mod:`katib_algorithms`), hyperband as random search under a
Hyperband pruner, and Katib's median stop as early stopping."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from functions.core import katib_algorithms, katib_sigma
from functions.core.errors import Problem
from functions.core.reader import listed

ALGORITHMS = {"random": "random", "grid": "grid", "tpe": "tpe", "multivariate-tpe": "multivariate-tpe",
              "cmaes": "cmaes", "sobol": "sobol", "bayesianoptimization": "gp", "hyperband": "random",
              "pbt": "pbt"}
"""Katib's algorithms katuna runs, each with the native sampler it becomes."""
MEDIANSTOP_SETTINGS = {"min_trials_required": 1, "start_step": 1}
"""Katib's medianstop settings, each with the least value its service accepts."""
NAS = ("neural architecture search is not supported: katuna tunes the values of spec.parameters, and trains no "
       "ENAS controller or DARTS supernet (the closest it runs: a few architectures written as categorical "
       "parameters, such as a layer count and each layer's operation, searched by tpe or random)")
"""Why an Experiment of neural architecture search is refused, and what comes closest."""
NAS_CONFIG = f"{NAS}; expected spec.parameters in place of spec.nasConfig"
"""The refusal of a ``nasConfig``, with what katuna takes instead."""
REFUSED = {"enas": NAS, "darts": NAS}
"""Katib algorithms katuna does not run, each with the reason."""
HYPEROPT_GAMMA = 0.25
"""The fraction in hyperopt's TPE rule for the good trials, ``ceil(gamma * sqrt(n))``, by default."""
HYPEROPT_STARTUP = 1
"""The trials that must have ended with a result before Katib's hyperopt service suggests by TPE
a trial asked alone (its request's size: :func:`as_hyperopt`)."""


def sampler(algorithm: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """The sampler, with each Katib setting in Optuna's terms (hyperband's kept as given, but
    ``random_state``, the seed of every algorithm: they are translated with the search space)."""
    name = algorithm.get("algorithmName")
    path = "spec.algorithm"
    if not name:
        problems.append(Problem(f"{path}.algorithmName", f"required; expected one of {', '.join(ALGORITHMS)}"))
    elif name in REFUSED:
        problems.append(Problem(f"{path}.algorithmName", f"{name!r}: {REFUSED[name]}; expected one of "
                                                         f"{', '.join(ALGORITHMS)}"))
    elif name not in ALGORITHMS:
        problems.append(Problem(f"{path}.algorithmName", f"{name!r} is not supported; expected one of {', '.join(ALGORITHMS)}"))
    given = algorithm.get("algorithmSettings") or []
    out: dict[str, Any] = {"name": ALGORITHMS.get(str(name), name or "random"), "settings": {}}
    if name == "hyperband":
        out["settings"] = {s.get("name"): typed_setting(s.get("value")) for s in given}
        out["settings"].pop("random_state", None)
        _hyperband_seed(given, out, problems)
    elif name in ALGORITHMS:
        settings, seed, wrong = katib_algorithms.translate(name, given, f"{path}.algorithmSettings")
        problems += wrong
        out["settings"] = settings
        if seed is not None:
            out["seed"] = seed
    return out


def _hyperband_seed(given: list[Any], out: dict[str, Any], problems: list[Problem]) -> None:
    """Hyperband's ``random_state`` as the study's seed (in ``out``), checked as every other
    algorithm's is (:func:`katib_algorithms.random_state`); a refusal names the setting, at its
    entry of ``algorithmSettings``."""
    for i, setting in enumerate(given):
        if setting.get("name") != "random_state":
            continue
        text = setting.get("value")
        try:
            out["seed"] = katib_algorithms.random_state("hyperband").convert(katib_algorithms.setting_text(text))
        except ValueError as exc:
            problems.append(Problem(f"spec.algorithm.algorithmSettings[{i}].value", f"random_state of hyperband: {exc}"))


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


def as_hyperopt(settings: dict[str, Any]) -> None:
    """Katib's default service for ``tpe`` is hyperopt's, which asks hyperopt's TPE for each
    request's trials with ``n_startup_jobs`` the request's size, counted against the trials that
    succeeded or stopped early: its first request (``parallelTrialCount`` trials, none ended) is
    drawn at random, and each later one, for the slots trials just freed, by TPE, taking
    ``ceil(0.25 * sqrt(n))`` trials as the good ones. katuna asks one trial at a time, so TPE
    starts once one trial has completed (or been pruned), ``n_startup_trials`` 1: the trials
    asked before, the first ``parallelTrialCount`` and any prepared ahead with them, are drawn at
    random. Optuna's defaults differ (10 random trials, a tenth as good), so these are the
    settings unless the Experiment gives its own."""
    settings.setdefault("gamma", HYPEROPT_GAMMA)
    settings.setdefault("n_startup_trials", HYPEROPT_STARTUP)


def hyperband(native: dict[str, Any], given: Any, problems: list[Problem]) -> None:
    """Katib's Hyperband as random search under Optuna's Hyperband pruner: the resource
    parameter is fixed at its maximum ``r_l``, and the pruner decides, from each trial's
    intermediate values, how far it gets (``eta`` is the reduction factor). With ``medianstop``
    early stopping, which Katib runs beside Hyperband, the pruner is both rules
    (``hyperband-medianstop``). ``given`` is the Experiment's ``algorithmSettings``, where each
    problem is reported."""
    settings = native["algorithm"].pop("settings")
    native["algorithm"]["settings"] = {}
    unknown = set(settings) - {"resource_name", "eta", "r_l"}
    problems += [Problem(_at(given, name, "name"), f"unknown hyperband setting {name!r}; expected one of "
                                                   f"resource_name, eta, r_l, random_state"
                                                   f"{katib_algorithms.ignored_by_katib('hyperband')}")
                 for name in sorted(unknown)]
    resource, max_resource = settings.get("resource_name"), _whole(settings.get("r_l"))
    names = [p.get("name") for p in native["parameters"]]
    if resource not in names:
        problems.append(Problem(_at(given, "resource_name"),
                                f"resource_name must name a parameter; expected one of {listed(names)}"))
    if not is_count(max_resource) or max_resource < 1:
        problems.append(Problem(_at(given, "r_l"), f"r_l (the maximum resource) must be a positive whole number (9 or "
                                                   f"9.0: the pruner counts whole steps), got {settings.get('r_l')!r}"))
        max_resource = "auto"
    if resource in names and is_count(max_resource):
        native["parameters"][names.index(resource)] = {"name": resource, "type": "discrete", "values": [max_resource]}
    eta = _eta(settings, given, problems)
    if eta is not None and is_count(max_resource):
        _largest_bracket(native["parallelism"], max_resource, eta, problems)
    pruner = {"min_resource": 1, "max_resource": max_resource, "reduction_factor": eta or 3}
    median = native.get("earlyStopping")
    if median is None:
        native["earlyStopping"] = {"algorithm": "hyperband", "settings": pruner}
    else:
        native["earlyStopping"] = {"algorithm": "hyperband-medianstop", "settings": {**pruner, **median["settings"]}}


def _eta(settings: Mapping[str, Any], given: Any, problems: list[Problem]) -> int | None:
    """Hyperband's ``eta`` as the pruner's reduction factor: a whole number of at least 2,
    written ``3`` or ``3.0`` as Katib's service reads it (``float``); 3, Katib's default, when
    it is not given or is 0 or less (Katib's service takes such an ``eta`` as 3). Any other is a
    problem (None): Katib's service fails the Experiment on an ``eta`` from 1 to 2 (a division
    by ``log(1)``) and makes no trial with one below 1, and it runs a fractional ``eta`` (2.5)
    as it is, which Optuna's pruner, promoting 1 in a whole number of trials, cannot."""
    given_eta = settings.get("eta", 3)
    number = isinstance(given_eta, int | float) and not isinstance(given_eta, bool)
    eta = 3 if number and given_eta <= 0 else _whole(given_eta)
    if is_count(eta) and eta >= 2:
        return eta
    problems.append(Problem(_at(given, "eta"), f"eta (the reduction factor) must be a whole number of at least 2 "
                                               f"(3 or 3.0: each rung keeps 1 in eta of its trials; 0 or less is "
                                               f"Katib's default 3), got {settings['eta']!r}"))
    return None


def _largest_bracket(parallelism: Any, max_resource: int, eta: int, problems: list[Problem]) -> None:
    """Katib's Hyperband service refuses a ``parallelTrialCount`` below the trials of its
    largest bracket, ``ceil(eta ** smax)`` with ``smax = int(log(r_l) / log(eta))``, which it
    asks for at once (``ValidateAlgorithmSettings``): so does katuna, though its trials need
    no bracket, for the Experiment to run on Katib alike."""
    smax = int(math.log(max_resource) / math.log(eta))
    least = math.ceil(eta ** smax)
    if is_count(parallelism) and parallelism < least:
        problems.append(Problem("spec.parallelTrialCount", f"parallelTrialCount must be not less than {least}, as "
                                                           f"Katib's hyperband service requires: its largest bracket "
                                                           f"runs eta ** int(log(r_l) / log(eta)) = {eta} ** {smax} "
                                                           f"trials at once; got {parallelism}"))


def _at(given: Any, name: str, field: str = "value") -> str:
    """The path of the hyperband setting ``name`` in the Experiment's ``algorithmSettings``."""
    path = "spec.algorithm.algorithmSettings"
    for i, item in enumerate(given if isinstance(given, list) else []):
        if isinstance(item, Mapping) and item.get("name") == name:
            return f"{path}[{i}].{field}"
    return path


def _whole(value: Any) -> Any:
    """A setting that spells a whole number (``9``, ``9.0``) as an int; any other as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def early_stopping(early: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """Katib's median stop, by Katib's own rule (the ``medianstop`` pruner): each report of the
    objective is a step; settings as Katib's service validates them."""
    path = "spec.earlyStopping"
    if not early.get("algorithmName"):
        problems.append(Problem(f"{path}.algorithmName", "required, as Katib's webhook says (must be specified): "
                                                         "expected medianstop; without early stopping, leave out "
                                                         "spec.earlyStopping"))
    elif early.get("algorithmName") != "medianstop":
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
        if not is_count(number) or number < least:
            problems.append(Problem(f"{where}.value", f"{name} must be an integer of at least {least}, got {value!r}"))
            continue
        settings[name] = number
    return {"algorithm": "medianstop", "settings": settings}


def is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def algorithm_specifics(algorithm: Any, native: dict[str, Any], spec: Mapping[str, Any],
                         problems: list[Problem]) -> None:
    """What one Katib algorithm asks of the native study beyond its sampler: hyperopt's settings
    for ``tpe`` where Katib runs it on hyperopt's service (its default), Optuna's Hyperband
    pruner for ``hyperband`` (after ``earlyStopping``, whose median stop it joins), and
    CMA-ES's parameters and ``sigma`` for ``cmaes``."""
    given = (spec.get("algorithm") or {}).get("algorithmSettings") or []
    if algorithm == "tpe" and not katib_algorithms.tpe_on_optuna(given):
        as_hyperopt(native["algorithm"]["settings"])
    elif algorithm == "hyperband":
        hyperband(native, given, problems)
    elif algorithm == "cmaes":
        _cmaes(native, problems)


def _cmaes(native: dict[str, Any], problems: list[Problem]) -> None:
    """Katib's CMA-ES: two or more int or double parameters, as Katib's services require, and
    ``sigma`` in Optuna's unit (:func:`katib_sigma.sigma_as_optuna_takes_it`)."""
    if sum(p.get("type") in ("int", "float") for p in native["parameters"]) < 2:
        problems.append(Problem("spec.algorithm.algorithmName", "cmaes needs two or more int or double parameters, "
                                                                "as Katib's CMA-ES services do"))
    katib_sigma.sigma_as_optuna_takes_it(native["algorithm"]["settings"], native["parameters"])
