"""CMA-ES restarting when a run converges, as Katib's goptuna restarts it: with a doubled
population (IPOP), or alternating runs of larger and small populations (BIPOP)."""

from __future__ import annotations

import optuna
import pytest

from functions.core.optuna_compat import RestartingCmaEsSampler, restart_keys
from functions.core.parameters import FloatParameter
from functions.core.samplers import build_sampler
from functions.core.spec import Algorithm

SPACE = {"x": optuna.distributions.FloatDistribution(-1.0, 1.0)}
IPOP = restart_keys("ipop")
TRIALS = 100
"""Enough for a one-dimensional run (population 4) on a flat function to converge and restart:
its stop rule waits for about 18 generations of equal values."""


def _flat(trial: optuna.trial.FrozenTrial) -> float:
    """A function CMA-ES converges on quickly: every point is as good as any other."""
    return 1.0


def _run(sampler_for_trial, trials: int = TRIALS) -> list[optuna.trial.FrozenTrial]:
    """A study of ``trials`` one at a time, each asked of the sampler ``sampler_for_trial``
    gives for its number (a study loaded afresh from the storage each time)."""
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="s")
    for number in range(trials):
        study = optuna.load_study(storage=storage, study_name="s", sampler=sampler_for_trial(number))
        trial = study.ask(SPACE)
        study.tell(trial, _flat(trial))
    return optuna.load_study(storage=storage, study_name="s").trials


@pytest.fixture(scope="module")
def rebuilt() -> list[optuna.trial.FrozenTrial]:
    """The study run as katuna runs it: the sampler built afresh for every trial, seeded per trial."""
    algorithm = Algorithm("cmaes", (("restart_strategy", "ipop"),), 7)
    parameters = (FloatParameter("x", -1.0, 1.0),)
    return _run(lambda number: build_sampler(algorithm, parameters, number))


def test_a_converged_run_restarts_with_a_doubled_population(rebuilt):
    popsizes = [t.system_attrs[IPOP.popsize] for t in rebuilt if IPOP.popsize in t.system_attrs]
    restarts = [t.system_attrs[IPOP.restarts] for t in rebuilt if IPOP.restarts in t.system_attrs]
    first = popsizes.index(8)
    assert set(popsizes[:first]) == {4} and set(popsizes[first:]) == {8}, popsizes
    assert set(restarts[:first]) == {0} and set(restarts[first:]) == {1}, restarts


def test_a_long_lived_sampler_restarts_too():
    sampler = RestartingCmaEsSampler(restart_strategy="ipop", seed=3)
    popsizes = {t.system_attrs.get(IPOP.popsize) for t in _run(lambda number: sampler)}
    assert {4, 8} <= popsizes


def test_a_seeded_study_rebuilt_from_storage_suggests_the_same_trials(rebuilt):
    algorithm = Algorithm("cmaes", (("restart_strategy", "ipop"),), 7)
    parameters = (FloatParameter("x", -1.0, 1.0),)
    repeated = _run(lambda number: build_sampler(algorithm, parameters, number))
    assert [t.params for t in repeated] == [t.params for t in rebuilt]


def test_without_a_restart_strategy_it_is_optunas_cma_es():
    sampler = RestartingCmaEsSampler(seed=3)
    plain = optuna.samplers.CmaEsSampler(seed=3)
    ours, theirs = _run(lambda number: sampler), _run(lambda number: plain)
    assert [t.params for t in ours] == [t.params for t in theirs]
    assert all(IPOP.popsize not in t.system_attrs for t in ours)


def _runs(trials: list[optuna.trial.FrozenTrial], strategy: str) -> list[int]:
    """The population of each run, in the order the runs came."""
    keys = restart_keys(strategy)
    by_run = {t.system_attrs[keys.restarts]: t.system_attrs[keys.popsize] for t in trials if keys.popsize in t.system_attrs}
    return [by_run[restart] for restart in sorted(by_run)]


def test_bipop_alternates_larger_runs_with_small_ones_on_their_budgets():
    """The first run's 72 evaluations count as small; a doubled run follows (112 evaluations), then
    small runs, each drawn between the first population and the last large one, until their
    evaluations pass the large runs'; then the population doubles again."""
    algorithm = Algorithm("cmaes", (("restart_strategy", "bipop"),), 11)
    parameters = (FloatParameter("x", -1.0, 1.0),)
    populations = _runs(_run(lambda number: build_sampler(algorithm, parameters, number), trials=300), "bipop")
    assert populations[:2] == [4, 8] and 16 in populations, populations
    small = populations[2:populations.index(16)]
    assert small and all(4 <= p < 8 for p in small), populations


def test_a_bipop_study_rebuilt_from_storage_suggests_the_same_trials():
    algorithm = Algorithm("cmaes", (("restart_strategy", "bipop"),), 11)
    parameters = (FloatParameter("x", -1.0, 1.0),)
    once, again = (_run(lambda number: build_sampler(algorithm, parameters, number), trials=200) for _ in range(2))
    assert [t.params for t in once] == [t.params for t in again]
    assert len(_runs(once, "bipop")) >= 3
