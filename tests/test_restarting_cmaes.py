"""CMA-ES restarting with a doubled population when it converges (IPOP, as Katib's goptuna)."""

from __future__ import annotations

import optuna
import pytest

from functions.core.optuna_compat import POPSIZE, RESTARTS, RestartingCmaEsSampler
from functions.core.parameters import FloatParameter
from functions.core.samplers import build_sampler
from functions.core.spec import Algorithm

SPACE = {"x": optuna.distributions.FloatDistribution(-1.0, 1.0)}
TRIALS = 100
"""Enough for a one-dimensional run (population 4) on a flat function to converge and restart:
its stop rule waits for about 18 generations of equal values."""


def _flat(trial: optuna.trial.FrozenTrial) -> float:
    """A function CMA-ES converges on quickly: every point is as good as any other."""
    return 1.0


def _run(sampler_for_trial) -> list[optuna.trial.FrozenTrial]:
    """A study of :data:`TRIALS` one at a time, each asked of the sampler ``sampler_for_trial``
    gives for its number (a study loaded afresh from the storage each time)."""
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="s")
    for number in range(TRIALS):
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
    popsizes = [t.system_attrs[POPSIZE] for t in rebuilt if POPSIZE in t.system_attrs]
    restarts = [t.system_attrs[RESTARTS] for t in rebuilt if RESTARTS in t.system_attrs]
    first = popsizes.index(8)
    assert set(popsizes[:first]) == {4} and set(popsizes[first:]) == {8}, popsizes
    assert set(restarts[:first]) == {0} and set(restarts[first:]) == {1}, restarts


def test_a_long_lived_sampler_restarts_too():
    sampler = RestartingCmaEsSampler(restart_strategy="ipop", seed=3)
    popsizes = {t.system_attrs.get(POPSIZE) for t in _run(lambda number: sampler)}
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
    assert all(POPSIZE not in t.system_attrs for t in ours)
