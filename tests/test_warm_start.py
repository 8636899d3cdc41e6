"""Warm start: known results given to the sampler before the first trial, not counted as trials."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import run_study, study_definition
from optuna.distributions import FloatDistribution

from functions.core.errors import InvalidStudy
from functions.core.skopt_sampler import fitted
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


@pytest.mark.slow
def test_the_cli_reads_known_results_from_csv_and_json_files(tmp_path: Path):
    import json
    import subprocess

    import yaml
    from http_helpers import KATUNA

    (tmp_path / "known.csv").write_text("x,loss\n2.0,0.0\n-1.0,9.0\n")
    (tmp_path / "known.json").write_text(json.dumps([{"params": {"x": 3.0}, "value": 1.0}]))
    for name, file in (("from-csv", "known.csv"), ("from-json", "known.json")):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(
            study_definition(name=name, maxTrials=2, warmStart={"file": file})))
        subprocess.run([KATUNA, "run", f"{name}.yaml"], cwd=tmp_path, check=True, capture_output=True)
    from functions.adapters.sqlite_store import SqliteStore

    store = SqliteStore(tmp_path / "katuna.db")
    try:
        csv_study = optuna.load_study(study_name="from-csv", storage=store.optuna_storage())
        assert [(t.params["x"], t.value) for t in csv_study.trials[:2]] == [(2.0, 0.0), (-1.0, 9.0)]
        json_study = optuna.load_study(study_name="from-json", storage=store.optuna_storage())
        assert (json_study.trials[0].params["x"], json_study.trials[0].value) == (3.0, 1.0)
        assert len(store.trials("from-csv")) == 2
    finally:
        store.close()


def test_a_service_cannot_read_the_submitters_files():
    import yaml

    from functions.core.formats import load_study

    with pytest.raises(InvalidStudy, match="only the CLI reads files"):
        load_study(yaml.safe_dump(study_definition(warmStart={"file": "known.csv"})))


@pytest.mark.parametrize("sign, expected", [(1.0, [1, 7, 8, 9]), (-1.0, [4, 5, 8, 9])])
def test_past_its_bound_the_gp_is_told_the_better_half_and_the_latest_of_the_rest(sign: float, expected: list[int]):
    study = optuna.create_study()
    study.add_trials([optuna.trial.create_trial(params={"x": float(v)}, distributions={"x": FloatDistribution(0, 9)},
                                                value=v) for v in (5, 1, 7, 2, 9, 8, 6, 3, 4, 0)])
    assert [t.number for t in fitted(study.trials, sign, limit=4)] == expected
    assert fitted(study.trials, sign, limit=10) == study.trials
