"""Optuna's grid sampler that counts the points a warm start's known results cover as visited.

Optuna's ``add_trials`` gives a known result no ``grid_id``, so Optuna's own grid sampler runs
its point again. :class:`KnownGridSampler` is told which points are covered, as katuna counts
them (:func:`functions.core.grid.covered_points`, from which a grid study's trial cap follows
too), and finds them in the shuffled grid Optuna keeps, and among the points it reckons visited.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import optuna
from optuna.samplers import GridSampler
from optuna.trial import FrozenTrial, TrialState

__all__ = ["KnownGridSampler"]


class KnownGridSampler(GridSampler):
    """Optuna's grid sampler that counts the ``covered`` points as visited: each a mapping of
    every parameter to a value of its grid. Given them (a warm started study, even one whose
    known results lie on no point), each trial takes the first point of the seeded shuffle no
    trial has visited or runs and none covers, rather than the point of its trial number
    (Optuna's rule, which would give a covered point to a trial numbered past the known
    results); without them it is Optuna's, point for point."""

    def __init__(self, search_space: Mapping[str, Sequence[Any]], seed: int | None = None,
                 covered: Collection[Mapping[str, Any]] | None = None) -> None:
        super().__init__(search_space, seed)
        self._covered = None if covered is None else self._grid_ids(covered)

    def _grid_ids(self, covered: Collection[Mapping[str, Any]]) -> frozenset[int]:
        """Where the ``covered`` points are in the shuffled grid (a parameter's values differ as
        Optuna compares them: :mod:`functions.core.choices` refuses others)."""
        wanted = {tuple(point[name] for name in self._param_names) for point in covered}
        return frozenset(i for i, point in enumerate(self._all_grids) if point in wanted)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Give the trial its point (see the class); an enqueued trial that fixes a whole point
        of the grid takes that point, which no later trial then visits again (Optuna's grid
        gives it none, and visits its point again)."""
        fixed = trial.system_attrs.get("fixed_params")
        given = self._given_id(fixed) if "grid_id" not in trial.system_attrs and fixed else None
        if given is not None:
            study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
            study._storage.set_trial_system_attr(trial._trial_id, "grid_id", given)
            return
        taken = "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs
        unvisited = [] if taken or self._covered is None else self._get_unvisited_grid_ids(study)
        if not unvisited:
            super().before_trial(study, trial)
            return
        study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
        study._storage.set_trial_system_attr(trial._trial_id, "grid_id", min(unvisited))

    def _given_id(self, fixed: Mapping[str, Any]) -> int | None:
        """Where the point ``fixed`` gives (every parameter of the grid) is in the shuffled
        grid; None where it gives no whole point of it."""
        if set(fixed) != set(self._param_names):
            return None
        return min(self._grid_ids([fixed]), default=None)

    def _same_search_space(self, search_space: Mapping[str, Sequence[Any]]) -> bool:
        """Optuna's comparison of a trial's grid with this one, taken only where plain equality
        of the lists fails (it is true wherever theirs is, NaN aside): every trial stores the whole
        grid, and every tell compares each trial's value by value in Python, which grew with the
        trials times the grid's values (0.35 s a tell at 150 trials of a 300 x 300 grid)."""
        return search_space == self._search_space or super()._same_search_space(search_space)

    def _get_unvisited_grid_ids(self, study: optuna.Study) -> list[int]:
        """Optuna's points neither finished nor running (failing those, the ones not finished),
        less the covered ones."""
        if self._covered is None:
            return super()._get_unvisited_grid_ids(study)
        visited, running = set(self._covered), set()
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
            if "grid_id" in t.system_attrs and self._same_search_space(t.system_attrs["search_space"]):
                if t.state.is_finished():
                    visited.add(t.system_attrs["grid_id"])
                elif t.state == TrialState.RUNNING:
                    running.add(t.system_attrs["grid_id"])
        every = set(range(self._n_min_trials))
        return sorted(every - visited - running or every - visited)
