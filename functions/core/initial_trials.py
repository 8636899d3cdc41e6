"""Initial trials: points the study's first trials run, given with the study (``initialTrials``),
as Optuna's ``study.enqueue_trial`` and Ray Tune's ``points_to_evaluate`` give them.

Each entry maps parameter names to values; a parameter an entry leaves out is drawn by the
sampler, as Optuna samples what an enqueued trial does not fix. Entries are checked against the
space when the study is submitted, each problem at ``initialTrials[i].<name>``. They run before
any suggestion of the sampler's, in order, each once: a trial asked for one records which
(``TrialRecord.initial_trial``), and the next trial asked runs the first entry no trial records
(:func:`pending`), so a redelivered event, a resumed study or a trial discarded before it started
never runs an entry twice, nor skips one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from functions.core import pbt, quantiles
from functions.core.assignments import value_problem, when_text
from functions.core.errors import Problem
from functions.core.grid import covered_points
from functions.core.parameters import ChoiceParameter, FloatParameter, IntParameter, Parameter
from functions.core.reader import Reader, join, kind_of, listed

PATH = "initialTrials"
MOST = 1_000
"""Entries a study may give at most (and no more than its ``maxTrials``): each is a trial."""


def parse_initial_trials(r: Reader, data: Any, parameters: Sequence[Parameter], algorithm: str,
                         settings: Mapping[str, Any], max_trials: int | None) -> tuple[dict[str, Any], ...]:
    """The study's initial trials, each value as its parameter holds it (``1.0`` for an int is
    ``1``; a list parameter's value is the one listed), or problems on ``r``."""
    if data is None:
        return ()
    if not isinstance(data, list):
        r.fail(PATH, f"expected a list of mappings of parameter names to values, got {kind_of(data)}")
        return ()
    if not _bounded(r, len(data), algorithm, settings, max_trials):
        return ()
    by_name = {p.name: p for p in parameters}
    entries = [_entry(r, f"{PATH}[{i}]", raw, by_name, algorithm == "grid") for i, raw in enumerate(data)]
    if algorithm == "grid":
        _check_distinct(r, entries, tuple(parameters))
    return tuple(entry for entry in entries if entry is not None)


def _bounded(r: Reader, count: int, algorithm: str, settings: Mapping[str, Any], max_trials: int | None) -> bool:
    """Whether the study may give ``count`` entries: at most :data:`MOST`, its ``maxTrials``, and
    under population-based training its population (each entry is a member of the first
    generation, which holds that many)."""
    population = settings.get("n_population") if algorithm == pbt.NAME else None
    bounds = [(MOST, f"{MOST:,}"), (max_trials, f"maxTrials ({max_trials}): each entry is a trial of the study"),
              (population, f"n_population ({population}): pbt runs them as members of its first generation")]
    for most, why in bounds:
        if isinstance(most, int) and not isinstance(most, bool) and count > most:
            r.fail(PATH, f"expected at most {why}; got {count:,} entries")
            return False
    return True


def _entry(r: Reader, path: str, raw: Any, by_name: Mapping[str, Parameter], whole: bool) -> dict[str, Any] | None:
    """One entry, its values as the parameters hold them, or None with its problems on ``r``.
    ``whole``: every parameter must have a value (a grid runs given points whole)."""
    if not isinstance(raw, Mapping) or not raw:
        got = "an empty mapping" if isinstance(raw, Mapping) else kind_of(raw)
        r.fail(path, f"expected a mapping of parameter names to values (at least one), got {got}")
        return None
    found = r.found
    entry: dict[str, Any] = {}
    for name, value in raw.items():
        parameter = by_name.get(name) if isinstance(name, str) else None
        if parameter is None:
            r.fail(join(path, str(name)), f"not a parameter of the study; expected one of {listed(by_name)}")
        elif (problem := value_problem(parameter, value)) is not None:
            r.fail(join(path, name), problem)
        else:
            entry[name] = held(parameter, value)
    for name, parameter in by_name.items():
        if whole and name not in raw:
            r.fail(join(path, name), "missing; the grid runs a given point whole: expected a value of each parameter")
        elif name in entry and (problem := _condition_problem(parameter, entry)) is not None:
            r.fail(join(path, name), problem)
    return entry if r.found == found else None


def held(parameter: Parameter, value: Any) -> Any:
    """A value the parameter admits as the parameter holds it: a list parameter's as listed
    (``32.0`` for ``[32, 64]`` is ``32``), an int's as an int, a float's as a float."""
    if isinstance(parameter, ChoiceParameter):
        index = parameter.index_of(value)
        if index is None:
            raise ValueError(f"{value!r} is none of the values of {parameter.name!r}")
        return parameter.values[index]
    if isinstance(parameter, IntParameter):
        return int(value)
    if isinstance(parameter, FloatParameter) and not quantiles.is_normal(parameter):
        return float(value)
    return value


def _condition_problem(parameter: Parameter, entry: Mapping[str, Any]) -> str | None:
    """Why a conditional parameter's value cannot be given in ``entry``: it does not apply to the
    values given, or the parameters its condition names are left to the sampler, which may draw
    values where it does not apply (its value would then be dropped without a word)."""
    if not parameter.when:
        return None
    condition = when_text(parameter)
    missing = [name for name, _ in parameter.when if name not in entry]
    if missing:
        return f"applies only when {condition}; expected {', '.join(missing)} given too"
    return None if parameter.active(entry) else f"does not apply: it applies only when {condition}"


def _check_distinct(r: Reader, entries: Sequence[dict[str, Any] | None], parameters: tuple[Parameter, ...]) -> None:
    """A grid visits each point once: an entry giving a point an earlier one gave is refused."""
    first: dict[frozenset[tuple[int, ...]], int] = {}
    for i, entry in enumerate(entries):
        if entry is None:
            continue
        point = covered_points(parameters, [entry])
        if point in first:
            r.fail(f"{PATH}[{i}]", f"the point of {PATH}[{first[point]}] again; expected each point of the grid once, "
                                   "as the grid visits it once")
        first.setdefault(point, i)


def as_given(parameters: Sequence[Parameter], drawn: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The values a trial that runs the entry ``given`` gets, from those the sampler ``drawn``
    read back (:func:`functions.core.space.values`): a normal parameter's as it was given, since
    the sampler holds its quantile, which comes back off by a rounding."""
    return {**drawn, **{p.name: given[p.name] for p in parameters
                        if quantiles.is_normal(p) and p.name in given and p.name in drawn}}


def pending(given: int, held_by_trials: Collection[int]) -> list[int]:
    """The entries of ``given`` no trial runs yet, in order: the next trials asked run them."""
    return [i for i in range(given) if i not in held_by_trials]


def covered_problems(initial: Sequence[Mapping[str, Any]], parameters: tuple[Parameter, ...],
                     covered: frozenset[tuple[int, ...]]) -> list[Problem]:
    """For a grid study, each entry on a point its warm start's known results cover (``covered``,
    as :func:`~functions.core.grid.covered_points` gives them): the grid counts that point as
    visited, so running it would take a trial from a point left."""
    return [Problem(f"{PATH}[{i}]", "a point of the grid the warm start's known results cover, which the grid does "
                                    "not visit again; expected a point they leave")
            for i, entry in enumerate(initial) if (point := covered_points(parameters, [entry])) and point <= covered]
