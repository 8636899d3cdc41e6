"""What Optuna's charts draw, as Optuna prepares it: the data of its parallel-coordinate and
optimization-history charts, the text they show over a trial and the colors they shade with.

katuna draws these charts itself (over its own trials, or from the data as JSON), so it reads
what Optuna computes for them rather than computing it again. Their internals are imported on
first use: they load plotly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

__all__ = ["OptimizationHistory", "color_scale", "hover_text", "optimization_history", "parallel_coordinate_info"]


def parallel_coordinate_info(study: optuna.Study, target: Callable[[optuna.trial.FrozenTrial], float] | None,
                             target_name: str) -> Any:
    """The data Optuna's parallel-coordinate chart draws: ``dims_objectives`` and
    ``dims_params`` (each with ``label``, ``values``, ``range``, ``tickvals``, ``ticktext``),
    ``color_values``, ``reverse_scale`` and ``colorbar_title``."""
    from optuna.visualization._parallel_coordinate import _get_parallel_coordinate_info

    return _get_parallel_coordinate_info(study, None, target, target_name)


@dataclass(frozen=True)
class OptimizationHistory:
    """What Optuna's optimization-history chart draws of a study: the numbers and values of its
    feasible completed trials (``points``) and of its infeasible ones (``infeasible``), every
    trial's number (``numbers``) and the best feasible value up to it (``best``: None where the
    chart has a target, since Optuna cannot tell which way it is better), and their names."""

    points: tuple[list[int], list[float]]
    infeasible: tuple[list[int], list[float]]
    numbers: list[int]
    best: list[float] | None
    label: str
    best_label: str


def optimization_history(study: optuna.Study, target: Callable[[optuna.trial.FrozenTrial], float] | None,
                         target_name: str) -> OptimizationHistory:
    """The data of Optuna's optimization-history chart of ``study`` (which has a completed
    trial), as Optuna prepares it: without error bars, of one study."""
    from optuna.visualization._optimization_history import _get_optimization_history_info_list, _ValueState

    info = _get_optimization_history_info_list(study, target, target_name, error_bar=False)[0]
    values, states = info.values_info.values, info.values_info.states

    def of(state: Any) -> tuple[list[int], list[float]]:
        kept = [(number, value) for number, value, s in zip(info.trial_numbers, values, states, strict=True)
                if s == state]
        return [number for number, _ in kept], [value for _, value in kept]

    best = info.best_values_info
    return OptimizationHistory(of(_ValueState.Feasible), of(_ValueState.Infeasible), list(info.trial_numbers),
                               None if best is None else [float(value) for value in best.values],
                               info.values_info.label_name, "" if best is None else best.label_name)


def hover_text(trial: FrozenTrial) -> str:
    """The text Optuna's charts show over a trial's point: its number, values, parameters and
    user attributes, as indented JSON lines."""
    from optuna.visualization._utils import _make_hovertext

    return _make_hovertext(trial)


def color_scale() -> Sequence[str]:
    """The colors Optuna's charts shade values with."""
    from optuna.visualization._utils import COLOR_SCALE

    return COLOR_SCALE
