"""Warm start: known results given to the sampler before the first trial, not counted as trials."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import run_study, study_definition

from functions.core.errors import InvalidStudy
from functions.core.validate import parse_study


def test_inline_known_results_inform_the_sampler_without_counting_as_trials(embedded, tmp_path: Path):
    definition = study_definition(maxTrials=4, algorithm={"name": "tpe", "seed": 2, "settings": {"n_startup_trials": 2}},
                                  warmStart={"trials": [{"params": {"x": 2.0}, "value": 0.0},
                                                        {"params": {"x": -4.0}, "value": 36.0},
                                                        {"params": {"x": 4.5}, "value": 6.25}]})
    record = run_study(embedded, definition, tmp_path)
    assert record.status == "completed"
    trials = embedded.store.trials("demo")
    assert [t.number for t in trials] == [3, 4, 5, 6], "the study's own trials come after the known ones"
    study = optuna.load_study(study_name="demo", storage=embedded.store.optuna_storage())
    assert [t.params["x"] for t in study.trials[:3]] == [2.0, -4.0, 4.5]
    assert len(study.trials) == 7
    assert embedded.store.best_trials("demo", 1)[0].number >= 3


def test_a_study_starts_warm_from_an_earlier_one(embedded, tmp_path: Path):
    run_study(embedded, study_definition(name="first", maxTrials=3), tmp_path)
    run_study(embedded, study_definition(name="second", maxTrials=2, warmStart={"study": "first"}), tmp_path)
    first = {t.params["x"] for t in embedded.store.trials("first")}
    second = optuna.load_study(study_name="second", storage=embedded.store.optuna_storage())
    assert {t.params["x"] for t in second.trials[:3]} == first
    assert len(embedded.store.trials("second")) == 2


def test_known_results_must_fit_the_space():
    with pytest.raises(InvalidStudy) as caught:
        parse_study(study_definition(warmStart={"trials": [{"params": {"x": 99.0}, "value": 1.0},
                                                           {"params": {"x": 1.0}}]}))
    found = [str(p) for p in caught.value.problems]
    assert "warmStart.trials[0].params: expected a value for each parameter that applies, within its range" in found
    assert "warmStart.trials[1]: expected value (or values: a list of 1) with finite numbers" in found
