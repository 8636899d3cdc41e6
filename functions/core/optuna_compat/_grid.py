"""Optuna's grid sampler that counts the points a warm start's known results cover as visited.

Optuna's ``add_trials`` gives a known result no ``grid_id``, so Optuna's own grid sampler runs
its point again. :class:`KnownGridSampler` finds the known points in the shuffled grid Optuna
keeps, and among the points it reckons visited.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.samplers import GridSampler
from optuna.trial import FrozenTrial, TrialState

__all__ = ["KnownGridSampler"]


class KnownGridSampler(GridSampler):
    """Optuna's grid sampler that counts the points of a warm start's known results as visited:
    the first ``known`` trials of the study's history (Optuna's ``add_trials`` gives them no
    ``grid_id``, so Optuna's own runs those points again). With known results, each trial takes
    the first point of the seeded shuffle no trial has visited, runs or knows, rather than the
    point of its trial number (Optuna's rule, which would give a known point to a trial numbered
    past the known ones); without them it is Optuna's, point for point."""

    def __init__(self, search_space: Mapping[str, Sequence[Any]], seed: int | None = None, known: int = 0) -> None:
        super().__init__(search_space, seed)
        self._known = known
        self._covered: frozenset[int] | None = None

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Give the trial its point (see the class)."""
        taken = "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs
        unvisited = [] if taken or not self._known else self._get_unvisited_grid_ids(study)
        if not unvisited:
            super().before_trial(study, trial)
            return
        study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
        study._storage.set_trial_system_attr(trial._trial_id, "grid_id", min(unvisited))

    def _get_unvisited_grid_ids(self, study: optuna.Study) -> list[int]:
        """Optuna's points neither finished nor running (failing those, the ones not finished),
        less the known ones."""
        if not self._known:
            return super()._get_unvisited_grid_ids(study)
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        visited, running = set(self._known_ids(trials)), set()
        for t in trials:
            if "grid_id" in t.system_attrs and self._same_search_space(t.system_attrs["search_space"]):
                if t.state.is_finished():
                    visited.add(t.system_attrs["grid_id"])
                elif t.state == TrialState.RUNNING:
                    running.add(t.system_attrs["grid_id"])
        every = set(range(self._n_min_trials))
        return sorted(every - visited - running or every - visited)

    def _known_ids(self, trials: Sequence[FrozenTrial]) -> frozenset[int]:
        """The grid's points the known results lie on: the completed trials among the first
        ``known`` of the history that Optuna gave no point. Found once a sampler, as they never change."""
        if self._covered is None:
            known = {tuple(t.params.get(name) for name in self._param_names) for t in trials
                     if t.number < self._known and t.state == TrialState.COMPLETE and "grid_id" not in t.system_attrs}
            self._covered = frozenset(i for i, point in enumerate(self._all_grids) if point in known)
        return self._covered
