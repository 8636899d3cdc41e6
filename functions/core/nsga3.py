"""NSGA-III's reference points, as a study gives them and as Optuna's ``NSGAIIISampler`` takes them.

A study gives ``reference_points`` as a list of points, each a list of one number per objective
(in the normalised objective space Optuna's selection works in), or leaves them to Optuna, which
spreads them evenly over the simplex with ``dividing_parameter`` divisions of each axis. Optuna
checks neither until its first selection, a whole population after the study started, where a
point of the wrong length fails every later suggestion with words that name no setting, and an
all-zero point divides by zero. Both are refused at submission here, naming the setting, and so
is a selection so large that it would hold the database's write lock for long: each selection
measures every member of two generations against every reference point on every objective.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from functions.core.errors import Problem

NAME = "nsga3"

REFERENCE_POINTS = 10_000
"""The most reference points a study may give."""

SELECTION_CELLS = 4_000_000
"""The most distances one selection computes (2 × ``population_size`` × reference points ×
objectives): Optuna holds a few arrays of that many floats at once, about 100 MB at this size,
in the database's write lock. Optuna's defaults come far below it (50 of a population, 3
divisions: 100 × 120 × 8 = 96,000 cells at 8 objectives)."""

DEFAULT_POPULATION = 50
DEFAULT_DIVISIONS = 3


def reference_problems(value: Any, path: str) -> list[Problem]:
    """Why ``value`` is not a list of reference points (each a list of finite numbers, not all
    zero, all of one length); its length is checked against the objectives by :func:`objectives_problems`."""
    expected = "a list of reference points, each a list of one number per objective"
    if not isinstance(value, list) or not value:
        return [Problem(path, f"expected {expected}, got {value!r:.80}")]
    if len(value) > REFERENCE_POINTS:
        return [Problem(path, f"expected at most {REFERENCE_POINTS:,} reference points, got {len(value):,}")]
    problems = []
    for index, point in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(point, list) or not point or not all(_finite(v) for v in point):
            problems.append(Problem(where, f"expected a list of finite numbers, one per objective, got {point!r:.80}"))
        elif not any(point):
            problems.append(Problem(where, "expected a point off the origin (a number other than 0): the point "
                                           "gives the direction of a line from the origin"))
        elif len(point) != len(value[0]):
            problems.append(Problem(where, f"expected {len(value[0])} numbers as the first point has, "
                                           f"got {len(point)}"))
    return problems


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def objectives_problems(settings: Mapping[str, Any], n_objectives: int) -> list[Problem]:
    """Why the settings of ``nsga3`` do not fit the study's objectives or one another:
    ``dividing_parameter`` beside the ``reference_points`` that make Optuna ignore it, reference
    points of another length, or a selection past :data:`SELECTION_CELLS`. Settings already
    refused for their own values are left to that refusal."""
    ignored = [] if settings.get("reference_points") is None or "dividing_parameter" not in settings else [
        Problem("algorithm.settings.dividing_parameter", "not used beside reference_points: NSGA-III spreads its "
                "own reference points by dividing_parameter only where none are given; give one of the two")]
    return ignored + _selection_problems(settings, n_objectives)


def _selection_problems(settings: Mapping[str, Any], n_objectives: int) -> list[Problem]:
    """Reference points of another length than the objectives, or a selection past
    :data:`SELECTION_CELLS`, named by the setting that makes it: the points' (given, or
    ``dividing_parameter``), else ``population_size`` where the study set it alone."""
    points = settings.get("reference_points")
    path = "algorithm.settings.reference_points"
    if n_objectives < 1:
        return []
    if points is not None:
        if reference_problems(points, path):
            return []
        if len(points[0]) != n_objectives:
            return [Problem(path, f"expected points of {n_objectives} numbers, one per objective, got "
                                  f"{len(points[0])}")]
        count, cause = len(points), "reference_points"
    else:
        divisions = settings.get("dividing_parameter", DEFAULT_DIVISIONS)
        if not isinstance(divisions, int) or divisions < 1:
            return []
        count, cause = math.comb(n_objectives + divisions - 1, divisions), "dividing_parameter"
    population = settings.get("population_size", DEFAULT_POPULATION)
    if not isinstance(population, int) or population < 2:
        return []
    cells = 2 * population * count * n_objectives
    if cells <= SELECTION_CELLS:
        return []
    if cause not in settings and "population_size" in settings:
        cause = "population_size"
    return [Problem(f"algorithm.settings.{cause}",
                    f"{count:,} reference points for {n_objectives} objectives and population_size {population} "
                    f"make {cells:,} distances per selection (2 x population x points x objectives); expected at "
                    f"most {SELECTION_CELLS:,}: fewer points (a smaller dividing_parameter) or a smaller population")]


def sampler_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings as ``NSGAIIISampler`` takes them: the reference points as an array."""
    if settings.get("reference_points") is None:
        return dict(settings)
    import numpy

    return {**settings, "reference_points": numpy.array(settings["reference_points"], dtype=float)}
