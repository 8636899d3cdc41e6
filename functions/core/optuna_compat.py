"""Every use of Optuna's private API, in one place.

katuna leans on a few Optuna internals that no public API offers: whether a value lies in a
distribution (within its bounds and on its step), the random states inside samplers (reseeded in place, far cheaper than building a sampler per trial), the journal
storage's replayed state (snapshotted so a fresh process need not replay the whole journal), its
records' format and the name it gives a study created without one (each study's records are
kept in a journal of their own), the study attribute in which genetic samplers keep trial ids,
the data Optuna prepares for its parallel-coordinate chart and the text its charts show over a trial, the optimizer state inside
Optuna's CMA-ES (:class:`RestartingCmaEsSampler` restarts it as Katib's IPOP- and BIPOP-CMA-ES
do, which Optuna's own CMA-ES no longer offers), the QMC sampler's count of the points it
drew (:class:`KnownSpaceQMCSampler` starts after the origin, as Katib's Sobol sampler does), and
the grid sampler's shuffled points and its reckoning of those visited (:class:`KnownGridSampler`
counts a warm start's known points among them). An Optuna release may change
any of them without notice; ``tests/test_optuna_compat.py`` (and, for the CMA-ES restarts,
``tests/test_restarting_cmaes.py``) pins the behaviour relied on here,
so an upgrade that changes it fails there first, and only this module needs adapting.

The visualization internals are imported on first use: they load plotly.
"""

from __future__ import annotations

import copy
import math
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna._transform import _SearchSpaceTransform
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, CmaEsSampler, GridSampler, QMCSampler
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.storages import JournalStorage
from optuna.storages._base import DEFAULT_STUDY_NAME_PREFIX
from optuna.storages.journal._base import BaseJournalSnapshot
from optuna.storages.journal._storage import JournalOperation
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

CREATE_STUDY = int(JournalOperation.CREATE_STUDY)
DELETE_STUDY = int(JournalOperation.DELETE_STUDY)
CREATE_TRIAL = int(JournalOperation.CREATE_TRIAL)
"""The ``op_code`` of a journal record that creates a trial (Optuna's journal format)."""
STUDY_RECORDS = frozenset({int(JournalOperation.SET_STUDY_USER_ATTR), int(JournalOperation.SET_STUDY_SYSTEM_ATTR)})
"""The ``op_code`` of the journal records that change a study, named by its ``study_id``."""
TRIAL_RECORDS = frozenset(int(op) for op in (
    JournalOperation.SET_TRIAL_PARAM, JournalOperation.SET_TRIAL_STATE_VALUES,
    JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE, JournalOperation.SET_TRIAL_USER_ATTR,
    JournalOperation.SET_TRIAL_SYSTEM_ATTR))
"""The ``op_code`` of the journal records that change a trial, named by its ``trial_id``."""
_PARENT_CACHE = re.compile(r"[A-Za-z_]\w*:parent:\d+")
"""The study system attributes in which Optuna's genetic samplers (NSGA-II, NSGA-III) keep a
generation's parents, as trial ids (``BaseGASampler._PARENT_CACHE_KEY_PREFIX`` and the generation)."""

__all__ = ["CREATE_STUDY", "CREATE_TRIAL", "DEFAULT_STUDY_NAME_PREFIX", "DELETE_STUDY", "STUDY_RECORDS", "TRIAL_RECORDS", "BaseJournalSnapshot",
           "FrozenStudy", "KnownGridSampler", "KnownSpaceQMCSampler", "OptimizationHistory", "RestartKeys", "RestartingCmaEsSampler", "color_scale", "contains", "hover_text",
           "journal_position", "journal_snapshot", "optimization_history", "parallel_coordinate_info", "reseed", "restart_keys",
           "trial_id_of", "trial_ids_in", "with_study_id", "with_trial_id"]


def contains(distribution: optuna.distributions.BaseDistribution, value: Any) -> bool:
    """Whether ``value``, as a trial's parameter holds it, is a point of ``distribution``: within
    its bounds and on its step, or one of its choices. Optuna converts before it compares (``"0.5"``
    is 0.5, ``true`` is the choice ``1``), so a value's kind is checked before it is asked
    (:func:`functions.core.assignments.value_problem`); one it cannot convert raises
    ``ValueError`` or ``TypeError``."""
    return distribution._contains(distribution.to_internal_repr(value))


def reseed(sampler: optuna.samplers.BaseSampler, seed: int) -> None:
    """Seed every random state of ``sampler`` and of the samplers it delegates to, in place,
    as its constructor would with ``seed``."""
    for value in vars(sampler).values():
        if isinstance(value, LazyRandomState):
            value.rng.seed(seed)
        elif isinstance(value, optuna.samplers.BaseSampler):
            reseed(value, seed)


def journal_position(storage: JournalStorage) -> int:
    """How many journal records the storage has replayed so far."""
    return storage._replay_result.log_number_read


def journal_snapshot(storage: JournalStorage) -> tuple[int, bytes]:
    """The storage's replayed state as Optuna's own snapshots hold it, and how many records it
    covers: a snapshot backend (:class:`BaseJournalSnapshot`) hands it back to a new storage,
    which then replays only the records after those."""
    with storage._thread_lock:
        return storage._replay_result.log_number_read, pickle.dumps(storage._replay_result)


def with_trial_id(trial: FrozenTrial, trial_id: int, copied: bool) -> FrozenTrial:
    """``trial`` under another storage's id for it (changed in place where it is a copy already)."""
    shown = trial if copied else copy.copy(trial)
    shown._trial_id = trial_id
    return shown


def trial_id_of(trial: FrozenTrial) -> int:
    """The id the storage ``trial`` was read from gives it."""
    return trial._trial_id


def with_study_id(study: FrozenStudy, study_id: int) -> FrozenStudy:
    """``study`` (a copy) under another storage's id for it, changed in place."""
    study._study_id = study_id
    return study


def trial_ids_in(key: str, value: Any) -> bool:
    """Whether a study system attribute holds trial ids: the parents a genetic sampler cached."""
    return bool(_PARENT_CACHE.fullmatch(key)) and isinstance(value, list) \
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def parallel_coordinate_info(study: optuna.Study, target: Callable[[optuna.trial.FrozenTrial], float] | None,
                             target_name: str, params: Sequence[str] | None = None) -> Any:
    """The data Optuna's parallel-coordinate chart draws: ``dims_objectives`` and
    ``dims_params`` (each with ``label``, ``values``, ``range``, ``tickvals``, ``ticktext``),
    ``color_values``, ``reverse_scale`` and ``colorbar_title``."""
    from optuna.visualization._parallel_coordinate import _get_parallel_coordinate_info

    return _get_parallel_coordinate_info(study, list(params) if params is not None else None, target, target_name)


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


RESTART_STRATEGIES = ("ipop", "bipop")
SMALL, LARGE = "small", "large"
"""BIPOP's two regimes: runs with a small population, and runs with ever larger ones."""


@dataclass(frozen=True)
class RestartKeys:
    """The system attributes a restarting run keeps on its trials, under its strategy's prefix."""

    prefix: str
    restarts: str
    """How many times the run had restarted when the trial was sampled."""
    popsize: str
    """The population size of the run that sampled the trial."""
    regime: str
    """BIPOP: the regime of the run that sampled the trial."""
    budget: str
    """BIPOP: the large runs so far, and the evaluations spent in each regime."""

    def generation(self, restarts: int) -> str:
        return f"{self.prefix}restart_{restarts}:generation"


WARM_MIN = 10
"""Known results a warm start gives CMA-ES for its first run to start from them: it takes their
best tenth, so ten at least."""


def restart_keys(strategy: str) -> RestartKeys:
    prefix = f"{strategy}:"
    return RestartKeys(prefix, *(prefix + name for name in ("restarts", "popsize", "regime", "budget")))


@dataclass(frozen=True)
class _Runs:
    """Where a restarting CMA-ES stands: its restarts, and for BIPOP the large runs so far, the
    regime of the current run and the evaluations spent in each regime."""

    restarts: int = 0
    large_runs: int = 0
    regime: str = SMALL
    small_evals: int = 0
    large_evals: int = 0


class RestartingCmaEsSampler(CmaEsSampler):
    """Optuna's CMA-ES, restarting from a random point of the space when a run converges
    (without ``restart_strategy``, Optuna's CMA-ES as it is). ``"ipop"`` multiplies the
    population by ``inc_popsize`` at each restart; ``"bipop"`` alternates such ever larger runs
    with runs of a small population drawn between the first run's and the last large run's,
    choosing a small one while the small runs have spent fewer evaluations than the large."""

    def __init__(  # noqa: PLR0913 - the settings of Optuna's CMA-ES, and the two of restarts
        self,
        *,
        x0: dict[str, Any] | None = None,
        sigma0: float | None = None,
        n_startup_trials: int = 1,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
        seed: int | None = None,
        consider_pruned_trials: bool = False,
        restart_strategy: str | None = None,
        popsize: int | None = None,
        inc_popsize: int = 2,
        use_separable_cma: bool = False,
        with_margin: bool = False,
        lr_adapt: bool = False,
        source_trials: list[FrozenTrial] | None = None,
        search_space: dict[str, BaseDistribution] | None = None,
        known: int = 0,
    ) -> None:
        if restart_strategy is not None and restart_strategy not in RESTART_STRATEGIES:
            raise ValueError(f"restart_strategy {restart_strategy!r} is not run by katuna; expected "
                             f"{' or '.join(map(repr, RESTART_STRATEGIES))} or none")
        if inc_popsize < 1:
            raise ValueError(f"inc_popsize must be an integer >= 1, got {inc_popsize}")
        if restart_strategy is not None and with_margin:
            raise ValueError("restart_strategy cannot be combined with with_margin")
        super().__init__(
            x0=x0, sigma0=sigma0, n_startup_trials=n_startup_trials, independent_sampler=independent_sampler,
            warn_independent_sampling=warn_independent_sampling, seed=seed,
            consider_pruned_trials=consider_pruned_trials, popsize=popsize, use_separable_cma=use_separable_cma,
            with_margin=with_margin, lr_adapt=lr_adapt, source_trials=source_trials)
        self._restart_strategy = restart_strategy
        self._inc_popsize = inc_popsize
        self._known = None if search_space is None else {
            name: distribution for name, distribution in search_space.items()
            if not distribution.single() and isinstance(distribution, (FloatDistribution, IntDistribution))}
        """The space given up front, but what CMA-ES leaves to the independent sampler, as
        Optuna's inference leaves it: a categorical parameter, one of a single value."""
        if restart_strategy is not None:
            self._keys = restart_keys(restart_strategy)
            self._attr_prefix = self._keys.prefix
        starts_given = source_trials is not None or x0 is not None or sigma0 is not None or use_separable_cma
        self._known_count = 0 if starts_given else known
        """The study's first trials that are a warm start's known results, which the first run
        starts from; none where a setting gives the start (Optuna refuses both at once)."""
        self._sources: list[FrozenTrial] = []

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """The space given up front, so that trials asked before any completes (a first wave of
        parallel ones) come from CMA-ES too, where Optuna infers the space from completed trials;
        else that inference."""
        if self._known is None:
            return super().infer_relative_search_space(study, trial)
        return dict(self._known)

    def _get_trials(self, study: optuna.Study) -> list[FrozenTrial]:
        """The completed trials CMA-ES reads, noting the known results among them."""
        completed = super()._get_trials(study)
        self._sources = [t for t in completed if t.number < self._known_count]
        return completed

    def _init_optimizer(self, trans: Any, direction: StudyDirection) -> Any:
        """The first run: with :data:`WARM_MIN` or more known results, from the distribution
        their best tenth suggests (Warm Starting CMA-ES, Optuna's ``source_trials``, told them
        over the space CMA-ES samples); else from the middle of the space, as Optuna starts."""
        space = trans._search_space
        sources = [t for t in self._sources if space.keys() <= t.params.keys()]
        if len(sources) < WARM_MIN:
            return super()._init_optimizer(trans, direction)
        self._source_trials = [optuna.trial.create_trial(params={name: t.params[name] for name in space},
                                                         distributions=dict(space), value=t.value) for t in sources]
        try:
            return super()._init_optimizer(trans, direction)
        finally:
            self._source_trials = None

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """The next point of the current run; after a converged run's last tell, the first of the
        next run."""
        if self._restart_strategy is None:
            return super().sample_relative(study, trial, search_space)
        self._raise_error_if_multi_objective(study)
        completed = self._get_trials(study)
        if not search_space or len(completed) < self._n_startup_trials:
            return {}
        trans = _SearchSpaceTransform(search_space, transform_step=True, transform_0_1=True)
        optimizer, runs = self._restore(completed)
        if optimizer is None:
            optimizer = self._init_optimizer(trans, study.direction)
        if optimizer.dim != len(trans.bounds):
            return {}
        keys = self._keys
        solutions = [t for t in completed if t.system_attrs.get(keys.generation(runs.restarts)) == optimizer.generation]
        if len(solutions) >= optimizer.population_size:
            sign = 1 if study.direction == StudyDirection.MINIMIZE else -1
            optimizer.tell([(trans.transform(t.params), sign * float(t.value or 0.0))
                            for t in solutions[: optimizer.population_size]])
            if optimizer.should_stop():
                popsize, runs = self._next_run(optimizer, runs, len(trans.bounds))
                optimizer = self._restarted(popsize, trans, study.direction)
            self._store(study, trial, optimizer, runs)
        optimizer._rng.seed(self._cma_rng.rng.randint(1, 2**16) + trial.number)
        params = optimizer.ask()
        for key, value in ((keys.generation(runs.restarts), optimizer.generation), (keys.restarts, runs.restarts),
                           (keys.popsize, optimizer.population_size)):
            study._storage.set_trial_system_attr(trial._trial_id, key, value)
        return trans.untransform(params)

    def _next_run(self, converged: Any, runs: _Runs, dim: int) -> tuple[int, _Runs]:
        """The population of the run after ``converged``, and where the restarts stand then."""
        if self._restart_strategy == "ipop":
            return converged.population_size * self._inc_popsize, replace(runs, restarts=runs.restarts + 1)
        spent = converged.population_size * converged.generation
        small = runs.small_evals + (spent if runs.regime == SMALL else 0)
        large = runs.large_evals + (spent if runs.regime == LARGE else 0)
        first = self._popsize or 4 + math.floor(3 * math.log(dim))
        if small < large:
            largest = self._inc_popsize ** runs.large_runs
            popsize = math.floor(first * largest ** (self._cma_rng.rng.uniform() ** 2))
            return popsize, _Runs(runs.restarts + 1, runs.large_runs, SMALL, small, large)
        popsize = first * self._inc_popsize ** (runs.large_runs + 1)
        return popsize, _Runs(runs.restarts + 1, runs.large_runs + 1, LARGE, small, large)

    def _restore(self, completed: list[FrozenTrial]) -> tuple[Any, _Runs]:
        """The latest stored optimizer and where the restarts stood then (None and none before any)."""
        for stored in reversed(completed):
            attrs = stored.system_attrs
            if any(key.startswith(self._attr_key_optimizer) for key in attrs):
                large_runs, small_evals, large_evals = attrs.get(self._keys.budget, (0, 0, 0))
                runs = _Runs(int(attrs.get(self._keys.restarts, 0)), large_runs, attrs.get(self._keys.regime, SMALL),
                             small_evals, large_evals)
                return self._restore_optimizer([stored]), runs
        return None, _Runs()

    def _restarted(self, popsize: int, trans: Any, direction: StudyDirection) -> Any:
        """A new run of ``popsize`` from a random point of the space."""
        first = self._popsize
        self._popsize = popsize
        try:
            optimizer = super()._init_optimizer(trans, direction)
        finally:
            self._popsize = first
        lower, upper = trans.bounds[:, 0], trans.bounds[:, 1]
        optimizer._mean = lower + (upper - lower) * self._cma_rng.rng.rand(len(lower))
        return optimizer

    def _store(self, study: optuna.Study, trial: FrozenTrial, optimizer: Any, runs: _Runs) -> None:
        """The optimizer's state on this trial, with where the restarts stand, for the next ask to restore."""
        for key, value in self._split_optimizer_str(pickle.dumps(optimizer).hex()).items():
            study._storage.set_trial_system_attr(trial._trial_id, key, value)
        study._storage.set_trial_system_attr(trial._trial_id, self._keys.restarts, runs.restarts)
        if self._restart_strategy == "bipop":
            study._storage.set_trial_system_attr(trial._trial_id, self._keys.regime, runs.regime)
            study._storage.set_trial_system_attr(trial._trial_id, self._keys.budget,
                                                 [runs.large_runs, runs.small_evals, runs.large_evals])


class KnownSpaceQMCSampler(QMCSampler):
    """Optuna's quasi-Monte Carlo sampler told the whole search space up front, as Katib's
    goptuna ``sobol`` is, so that its first trial is a point of the sequence too (Optuna's own
    infers the space from the first trial, which it draws at random). With ``skip_origin`` an
    unscrambled sequence starts after its first point, the origin (every parameter at its low
    end), as goptuna's Sobol engine does: the points are then goptuna's, in order."""

    def __init__(  # noqa: PLR0913 - the settings of Optuna's QMC sampler, and the two of the known space
        self,
        *,
        qmc_type: str = "sobol",
        scramble: bool = False,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_asynchronous_seeding: bool = True,
        warn_independent_sampling: bool = True,
        search_space: dict[str, BaseDistribution] | None = None,
        skip_origin: bool = False,
    ) -> None:
        super().__init__(qmc_type=qmc_type, scramble=scramble, seed=seed, independent_sampler=independent_sampler,
                         warn_asynchronous_seeding=warn_asynchronous_seeding,
                         warn_independent_sampling=warn_independent_sampling)
        self._known = dict(search_space) if search_space is not None else None
        self._skipped = int(skip_origin and not scramble)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """The space given up front, else Optuna's inference (from the first trial)."""
        if self._known is None:
            return super().infer_relative_search_space(study, trial)
        return dict(self._known)

    def _find_sample_id(self, study: optuna.Study, search_space: dict[str, BaseDistribution]) -> int:
        """The index into the sequence of the next point: Optuna's count of the points drawn,
        one further on where the origin is skipped."""
        return super()._find_sample_id(study, search_space) + self._skipped


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
