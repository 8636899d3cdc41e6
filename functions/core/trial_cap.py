"""The most trials a study without ``maxTrials`` creates: what the service's limits allow it.

A study may leave ``maxTrials`` out where its ``timeBudget``, an objective's goal or the grid
ends it (a Katib Experiment its ``maxTrialCount``, which Katib then never counts). None of these
bounds what it costs: quick trials fill a long time budget by the thousand, a goal may never be
reached, and every trial grows the study's Optuna history, which every process serving it
loads. So such a study runs at most the largest ``maxTrials`` it would be admitted with:
``KATUNA_MAX_TRIALS``, fewer where its history would go past ``KATUNA_MAX_HISTORY`` trials
(:mod:`functions.core.history`) or ``KATUNA_MAX_HISTORY_CELLS`` values
(:mod:`functions.core.history_cells`, whose share of intermediate values its trials then keep),
and it ends there, its reason naming the setting.

The cap is worked out whenever the study is admitted (submitted, restarted, its resource
edited), from the limits and its history then, and kept with it, as a study's own ``maxTrials``
is: changing the settings later changes no running study's trials, as it changes no running
study's ``maxTrials``. An admission that would leave no trial more to run is refused, as a
``maxTrials`` not above the trials made is. A study stored before katuna kept the cap runs to
``KATUNA_MAX_TRIALS`` as set now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from functions.core.counted import counted
from functions.core.errors import Problem
from functions.core.grid import covered_points, grid_size
from functions.core.history import history_problem
from functions.core.history_cells import cells_problem, most_trials, steps_problem
from functions.core.limits import PREFIX, Limits
from functions.core.records import StudyRecord, TrialCap
from functions.core.spec import KnownResult, Study, known_results
from functions.core.tpe_history import MAX_TPE_HISTORY, room, tpe_problem

MAX_TRIALS = f"{PREFIX}MAX_TRIALS"
MAX_HISTORY = f"{PREFIX}MAX_HISTORY"
MAX_HISTORY_CELLS = f"{PREFIX}MAX_HISTORY_CELLS"
GRID = "grid"
"""What bounds the trials of a grid study without ``maxTrials`` whose grid (less the points its
warm start covers) is smaller than its cap."""


def admit(spec: Study, limits: Limits, held: int, values: int, made: int = 0, finished: int = 0,
          known: int = 0) -> tuple[TrialCap | None, Problem | None]:
    """Whether the study's Optuna history, holding ``held`` trials and ``values`` values, takes
    the trials ``spec`` may add to the ``made`` it has (``finished`` of them ended; 0 for a new
    study) and its ``known`` results of a warm start: the cap of a study without ``maxTrials``
    (None for one with it), and why it is refused (None when it is not): its history too large,
    or its trials keeping too few steps for its early-stopping rule ever to judge one
    (:func:`~functions.core.history_cells.steps_problem`)."""
    problem = history_problem(held, spec.max_trials, limits.history, made, warm_trials(held, known)) or \
        tpe_problem(spec, limits.tpe_history, held, made, warm_trials(held, known)) or \
        cells_problem(spec, limits.history_cells, values, finished, known)
    if problem is not None:
        return None, problem
    cap = implicit_cap(spec, limits, held, values, made, finished, known)
    problem = None if cap is None else _nothing_left(cap, made)
    return cap, problem or steps_problem(spec, limits.history_cells, known, None if cap is None else cap.trials)


def warm_trials(held: int, known: int) -> int:
    """The trials a warm start of ``known`` results adds to an Optuna history of ``held``: each
    a trial of it, given before the study's first trial to a history that holds none
    (:func:`functions.handlers.asking.warm_start`), none to one that holds trials already (a
    restarted study's holds those it was given then)."""
    return known if held == 0 else 0


def implicit_cap(spec: Study, limits: Limits, held: int, values: int, made: int = 0, finished: int = 0,
                 known: int = 0) -> TrialCap | None:
    """The largest ``maxTrials`` the study would be admitted with, and the setting that bounds
    it (the first of ``KATUNA_MAX_TRIALS``, ``KATUNA_MAX_HISTORY``, ``KATUNA_MAX_TPE_HISTORY``
    (:mod:`functions.core.tpe_history`) and ``KATUNA_MAX_HISTORY_CELLS`` on a tie); None for a
    study that gives ``maxTrials``. Its history as :func:`admit` takes it."""
    if spec.max_trials is not None:
        return None
    left = limits.history - held - warm_trials(held, known) + made
    tpe = room(spec, limits.tpe_history, held, made, warm_trials(held, known))
    caps = [TrialCap(limits.trials, MAX_TRIALS), TrialCap(left, MAX_HISTORY)] + \
        ([] if tpe is None else [TrialCap(tpe, MAX_TPE_HISTORY)])
    cap = min(caps, key=lambda c: c.trials)
    fit = most_trials(spec, limits.history_cells, values, finished, known, cap.trials)
    return TrialCap(fit, MAX_HISTORY_CELLS) if fit < cap.trials else cap


def study_cap(record: StudyRecord, limits: Limits) -> TrialCap:
    """The most trials the stored study creates: its ``maxTrials``, the cap it was admitted with,
    or (stored before katuna kept that) ``KATUNA_MAX_TRIALS`` of ``limits``."""
    if record.spec.max_trials is not None:
        return TrialCap(record.spec.max_trials)
    return record.trial_cap or TrialCap(limits.trials, MAX_TRIALS)


@dataclass(frozen=True)
class GridCover:
    """A grid study's grid: its ``points``, and the ``covered`` ones among them its warm start's
    known results lie on, which its own trials do not run again (the grid sampler counts them
    as visited: :class:`functions.core.optuna_compat.KnownGridSampler`)."""

    points: int
    covered: int

    @property
    def left(self) -> int:
        """The points the study's own trials visit: a study that has tried them all ends."""
        return self.points - self.covered


def grid_cover(spec: Study, taken: Sequence[KnownResult] | None) -> GridCover | None:
    """The study's grid, where its sampler is a grid's (None otherwise), with the points its
    known results cover: those given (inline or in a file) and those ``taken`` from an earlier
    study, each point counted once, one off the grid not at all."""
    covered = grid_covered(spec, taken)
    return None if covered is None else GridCover(grid_size(spec.parameters), len(covered))


def grid_covered(spec: Study, taken: Sequence[KnownResult] | None) -> frozenset[tuple[int, ...]] | None:
    """The points of the study's grid its known results cover (as
    :func:`~functions.core.grid.covered_points` gives them), where its sampler is a grid's
    (None otherwise): those given (inline or in a file) and those ``taken`` from an earlier study."""
    if spec.algorithm.name != "grid":
        return None
    return covered_points(spec.parameters, (k.params for k in known_results(spec, taken)))


def grid_points(record: StudyRecord) -> int | None:
    """The points of the stored study's grid its own trials visit (:attr:`GridCover.left`); None
    where its sampler is no grid's. A study that has tried them all ends, by a stop rule of
    katuna's."""
    cover = grid_cover(record.spec, record.warm_results)
    return None if cover is None else cover.left


def covered_problem(spec: Study, covered: frozenset[tuple[int, ...]]) -> Problem | None:
    """Why a new grid study is refused whose known results cover every point of its grid
    (``covered``, as :func:`grid_covered` gives them): not one trial would run (None where some
    point is left)."""
    points = grid_size(spec.parameters)
    if len(covered) < points:
        return None
    return Problem("warmStart", f"its known results cover every point of the grid (all {points:,}), so not one "
                               "trial would run; expected known results that leave points of the grid to visit, or "
                               "another algorithm to learn from them")


def shown_cap(record: StudyRecord) -> TrialCap | None:
    """The most trials the stored study creates, as every view shows its total (``katuna show``,
    ``katuna run``'s progress bar, ``GET /studies/{name}``, the dashboard, a resource's status):
    its ``maxTrials``; without one, the cap it was admitted with, or its grid's size
    (:data:`GRID`; less the points its warm start covers) where that is smaller, since the grid
    ends the study there. None only for a
    study stored before katuna kept its cap, that is no grid."""
    if record.spec.max_trials is not None:
        return TrialCap(record.spec.max_trials)
    points, cap = grid_points(record), record.trial_cap
    if points is not None and (cap is None or points < cap.trials):
        return TrialCap(points, GRID)
    return cap


def shown_total(record: StudyRecord) -> int | None:
    """The trials of :func:`shown_cap`, None where it has none."""
    cap = shown_cap(record)
    return None if cap is None else cap.trials


def _nothing_left(cap: TrialCap, made: int) -> Problem | None:
    """Why a study without ``maxTrials`` that has ``made`` trials is refused: its cap leaves it
    none more to run (a restart, an edit, after the limits were lowered); None when it does not."""
    if cap.trials > made:
        return None
    return Problem("maxTrials", f"expected maxTrials above the {counted(made, 'trial', ',')} the study has: without it, it may "
                                f"create {cap.trials:,} in all (set by {cap.setting}), and none more would run")
