"""A decision of population-based training reads only the trials it needs
(:meth:`~functions.adapters.sqlite_store.SqliteStore.population_trials`: the failed ones with the
later trials of their generation and parent, and the newest full generation with the next), and
decides as it did from every trial: histories grown by the algorithm itself in a real SQLite
file, with successes, failures (answered and not, and children refused their parent's checkpoint), pruned and running trials and completed trials
without values, each decision compared with the one made from all the trials, its
random draws included."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from conftest import study_definition

from functions.adapters.sqlite_store import SqliteStore
from functions.core import pbt
from functions.core.records import COMPLETE, FAIL, PRUNED, RUNNING, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.handlers.population import member


def pbt_study(store: SqliteStore, name: str, population: int, direction: str = "maximize") -> StudyRecord:
    definition = study_definition(
        name=name, maxTrials=10_000, objective={"metric": "acc", "direction": direction},
        parameters=[{"name": "lr", "type": "float", "min": 0.001, "max": 0.1},
                    {"name": "layers", "type": "categorical", "values": ["2", "3", "4"]}],
        algorithm={"name": pbt.NAME, "seed": 1, "settings": {
            "suggestion_trial_dir": "/ckpt", "n_population": population, "truncation_threshold": 0.2}},
        trialTemplate={"command": ["train", "--lr=${trialParameters.lr}", "--layers=${trialParameters.layers}"]})
    return store.add_study(StudyRecord(parse_study(definition), definition, ".", f"uid-{name}",
                                       created_at=time.time()))


def decisions(store: SqliteStore, record: StudyRecord, seed: int) -> tuple[tuple, tuple]:
    """The plan (and the random generator's state after it) from every trial, and from the
    trials the store gives a decision."""
    settings = pbt.settings_of(dict(record.spec.algorithm.settings))
    made = []
    for trials in (store.trials(record.name), store.population_trials(record.name, settings.n_population)):
        rng = random.Random(seed)
        plan = pbt.next_plan(settings, record.spec.parameters, [member(record, t) for t in trials], rng)
        made.append((plan, rng.getstate()))
    return made[0], made[1]


def grow(store: SqliteStore, record: StudyRecord, trials: int, seed: int) -> None:
    """``trials`` trials added as the algorithm asks for them, each ending at random; each
    decision compared, from all the trials and from those the store gives."""
    outcomes = random.Random(seed)
    settings = pbt.settings_of(dict(record.spec.algorithm.settings))
    for number in range(trials):
        every, read = decisions(store, record, number)
        assert read == every, f"decision for trial {number} differs"
        members = [member(record, t) for t in store.trials(record.name)]
        plan = pbt.next_plan(settings, record.spec.parameters, members, random.Random(number))
        params = dict(plan.params) if plan.params is not None else \
            {"lr": outcomes.uniform(0.001, 0.1), "layers": outcomes.choice(["2", "3", "4"])}
        state, values = outcome(outcomes)
        reason = REFUSED if state == FAIL and plan.parent is not None and outcomes.random() < 0.3 else ""
        store.add_trial(TrialRecord(record.name, number, params, state=state, values=values, reason=reason,
                                    generation=plan.generation, parent=plan.parent))


REFUSED = ("katuna refused to start the attempt: trial 9 was not given its parent's checkpoint: the parent's "
           "checkpoint folder 3 holds more bytes than katuna copies for a child trial (KATUNA_MAX_CHECKPOINT)")
"""A child's reason where its parent's checkpoint folder was refused: it is not run again."""


def outcome(rng: random.Random) -> tuple[str, list[float] | None]:
    draw = rng.random()
    if draw < 0.15:
        return FAIL, None
    if draw < 0.2:
        return PRUNED, None
    if draw < 0.23:
        return RUNNING, None
    if draw < 0.24:
        return COMPLETE, []
    return COMPLETE, [rng.random()]


@pytest.mark.parametrize(("population", "direction", "seed"), [(5, "maximize", 1), (6, "minimize", 2),
                                                               (8, "maximize", 3)])
def test_each_decision_from_the_trials_read_is_the_one_from_every_trial(tmp_path: Path, population: int,
                                                                       direction: str, seed: int):
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        record = pbt_study(store, "grown", population, direction)
        grow(store, record, 160, seed)
        assert max(t.generation or 0 for t in store.trials("grown")) >= 3, "several generations were compared"
        assert any(t.reason == REFUSED for t in store.trials("grown")), "children refused a copy were compared"
    finally:
        store.close()


def test_a_decision_reads_the_newest_generations_and_the_failures_not_every_trial(tmp_path: Path):
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        record = pbt_study(store, "long", 5)
        for generation in range(200):
            for index in range(5):
                number = generation * 5 + index
                store.add_trial(TrialRecord("long", number, {"lr": 0.01 * (index + 1), "layers": "2"},
                                            state=COMPLETE, values=[generation + index / 10],
                                            generation=generation, parent=None if generation == 0 else number - 5))
        store.add_trial(TrialRecord("long", 1000, {"lr": 0.02, "layers": "3"}, state=FAIL, generation=200, parent=995))
        read = store.population_trials("long", 5)
        assert [t.number for t in read] == [*range(995, 1001)], "the newest full generation, the failure"
        assert decisions(store, record, 7)[0] == decisions(store, record, 7)[1]
    finally:
        store.close()
