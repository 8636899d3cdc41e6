"""Asking for a trial of population-based training (``pbt``): :mod:`functions.core.pbt` decides
its hyperparameters, generation and parent from the study's trials (those its decision reads:
:meth:`~functions.core.store_port.Store.population_trials`); Optuna's storage keeps the
trial, its hyperparameters given as fixed (a trial of generation 0 drawn by the study's random
sampler), with its generation and parent as user attributes for anyone reading it with Optuna.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple

import optuna

from functions.core import checkpoints, pbt
from functions.core.records import COMPLETE, FAIL, FINISHED_STATES, StudyRecord, TrialRecord
from functions.core.samplers import sampler_for, trial_seed
from functions.core.space import sample, sampler_params
from functions.core.spec import KnownResult
from functions.core.trial_reads_port import PopulationTrial
from functions.handlers.deps import Deps


class Asked(NamedTuple):
    """A trial of population-based training as asked: the trial, the fields of its record (its
    generation and parent), and whether it runs the initial trial's values it was given."""

    trial: optuna.trial.Trial
    lineage: dict[str, Any]
    given: bool


def ask(record: StudyRecord, deps: Deps, study: optuna.Study, seed_number: int, known: tuple[KnownResult, ...],
        given: dict[str, Any] | None = None) -> Asked:
    """The next trial, asked of ``study``, with its generation and parent (the fields of its
    record); ``seed_number`` seeds the decision and the sampler, as every sampler's trial.
    ``given`` (an initial trial's values, as the sampler holds them) is run where the decision
    is a new member of the first generation, in place of a draw of those values
    (:attr:`Asked.given`)."""
    spec = record.spec
    settings = pbt.settings_of(dict(spec.algorithm.settings))
    members = [member(record, t) for t in deps.store.population_trials(spec.name, settings.n_population)]
    seed = trial_seed(record.algorithm.seed, seed_number)
    rng = random.Random(seed)  # noqa: S311 - draws hyperparameters, reproducibly for a seeded study: no secret
    plan = pbt.next_plan(settings, spec.parameters, members, rng)
    taken = plan.params is None and given is not None
    fixed = given if plan.params is None else sampler_params(spec.parameters, plan.params)
    if fixed is not None:
        study.enqueue_trial(fixed, skip_if_exists=False)
    study.sampler = sampler_for(study.sampler, record.algorithm, spec.parameters, seed_number, known)
    trial = sample(study, spec.parameters)
    lineage = {"generation": plan.generation, "parent": plan.parent}
    for key, value in lineage.items():
        trial.set_user_attr(f"pbt_{key}", value)
    return Asked(trial, lineage, taken)


def member(record: StudyRecord, trial: TrialRecord | PopulationTrial) -> pbt.Member:
    """A stored trial as a member of the population: its objective scaled so more is better."""
    ended = {COMPLETE: pbt.SUCCEEDED, FAIL: pbt.FAILED}.get(trial.state, pbt.OTHER)
    score = None
    if trial.state == COMPLETE and trial.values:
        score = trial.values[0] if record.spec.objectives[0].direction == "maximize" else -trial.values[0]
    refused = ended == pbt.FAILED and checkpoints.refused(trial.reason)
    return pbt.Member(trial.number, trial.params, trial.generation or 0, trial.parent, ended, score, refused,
                      trial.state in FINISHED_STATES)
