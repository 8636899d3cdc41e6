"""The values of a study's Optuna history, bounded at submission by ``KATUNA_MAX_HISTORY_CELLS``:
what a process serving a study loads grows with its trials' parameters, objective values and
intermediate values, so a study whose ``maxTrials`` would take its history past the limit is
refused at ``maxTrials`` (a Katib Experiment's ``spec.maxTrialCount``), saying how many trials
fit, and nothing is stored; a narrower study of as many trials is taken."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from click.testing import CliRunner
from conftest import study_definition, unlined
from test_katib import experiment

from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app
from functions.cli import main
from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.limits import Limits
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.runtime import Runtime
from functions.settings import Settings

WIDE_REFUSAL = ("maxTrials: a study's Optuna history holds at most 500,000 values (set by KATUNA_MAX_HISTORY_CELLS), and "
                "this study may create 4,000 trials (maxTrials) of 257 values each (256 parameters, 1 objective value): "
                "every process that serves the study first loads its whole history, whose values take up to about 350 MB at "
                "the limit. "
                "At most 1,945 trials fit for 256 parameters")


def wide(name: str, width: int, max_trials: int, **overrides: Any) -> dict[str, Any]:
    """A study of ``width`` parameters, each given to its trial's command."""
    names = [f"p{i}" for i in range(width)]
    definition = study_definition(name=name, maxTrials=max_trials, parallelism=1,
                                  parameters=[{"name": p, "type": "float", "min": 0.0, "max": 1.0} for p in names],
                                  **overrides)
    definition["trialTemplate"]["command"] = [sys.executable, "-c", "print('loss=1')",
                                              *(f"${{trialParameters.{p}}}" for p in names)]
    return definition


def refused(runner: Embedded, tmp_path: Path, definition: dict[str, Any]) -> str:
    """The refusal of ``definition``, which leaves the stored studies and Optuna's journal as they were."""
    before = ([s.name for s in runner.store.list_studies()],
              runner.store.db.execute("SELECT count(*) FROM optuna_journal").fetchone())
    with pytest.raises(InvalidStudy) as caught:
        runner.submit(*load_study(yaml.safe_dump(definition)), tmp_path)
    after = ([s.name for s in runner.store.list_studies()],
             runner.store.db.execute("SELECT count(*) FROM optuna_journal").fetchone())
    assert after == before, "nothing stored"
    return " ".join(str(caught.value).split())


def test_a_wide_study_is_refused_with_a_422_naming_max_trials_and_a_narrow_one_of_as_many_trials_is_taken(
        tmp_path: Path):
    """4,000 trials of 256 parameters load about 700 MB in every process that serves them:
    refused by default, saying how many trials of 256 parameters fit; 4,000 of three, and 1,945
    of 256, are taken."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        assert client.post("/studies", json=study_definition(name="earlier")).status_code == 201
        answer = client.post("/studies", json=wide("wide", 256, 4_000))
        body = answer.get_json()
        assert (answer.status_code, body["error"], [p["path"] for p in body["problems"]]) == \
            (422, "invalid_study", ["maxTrials"]), body
        assert body["problems"][0]["message"].startswith(WIDE_REFUSAL.removeprefix("maxTrials: ")), body
        assert [s["name"] for s in client.get("/studies").get_json()] == ["earlier"], "nothing stored"
        assert runtime.store().optuna_version("wide") == 0, "no Optuna study made"
        assert client.post("/studies", json=wide("narrow", 3, 4_000)).status_code == 201
        assert client.post("/studies", json=wide("widest", 256, 1_945)).status_code == 201
    finally:
        runtime.close()


def test_katuna_run_refuses_a_wide_study_with_exit_2_in_a_new_database_and_in_one_that_exists(tmp_path: Path):
    study = tmp_path / "wide.yaml"
    study.write_text(yaml.safe_dump(wide("wide", 256, 4_000)))
    for db in (tmp_path / "new.db", tmp_path / "old.db"):
        if db.name == "old.db":
            SqliteStore(db).close()
        result = CliRunner().invoke(main, ["run", str(study), "--db", str(db)])
        assert result.exit_code == 2, result.output
        assert WIDE_REFUSAL in " ".join(unlined(result.stderr).split()), result.stderr
    assert not (tmp_path / "new.db").exists(), "no empty database left behind"
    store = SqliteStore(tmp_path / "old.db")
    assert store.list_studies() == [] and store.optuna_version("wide") == 0
    store.close()


def test_a_katib_experiment_past_the_history_values_is_refused_at_its_max_trial_count(tmp_path: Path):
    """An Experiment goes through the same check, its refusal at its own field."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history_cells=10)))
    message = refused(runner, tmp_path, experiment(maxTrialCount=6))
    assert "spec.maxTrialCount: a study's Optuna history holds at most 10 values (set by KATUNA_MAX_HISTORY_CELLS), " \
           "and this study may create 6 trials (maxTrials) of 2 values each (1 parameter, 1 objective value)" in message
    assert "At most 5 trials fit for 1 parameter" in message
    assert runner.submit(*load_study(yaml.safe_dump(experiment(maxTrialCount=5))), tmp_path).spec.max_trials == 5
    runner.close()


def test_a_study_with_early_stopping_counts_a_hundred_steps_a_trial_at_least(tmp_path: Path):
    """Each of its trials keeps the limit's share of intermediate values, and a study whose share
    would be below 100 is refused: 100 trials of one parameter need 100 * (1 + 1 + 100) values."""
    stopping = {"earlyStopping": {"algorithm": "median"}}
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history_cells=10_199)))
    message = refused(runner, tmp_path, study_definition(name="pruned", maxTrials=100, **stopping))
    assert "may create 100 trials (maxTrials) of 102 values each (1 parameter, 1 objective value, 100 intermediate " \
           "values for earlyStopping)" in message, message
    assert "At most 99 trials fit for 1 parameter with earlyStopping" in message
    definition = study_definition(name="pruned", maxTrials=99, **stopping)
    assert runner.submit(parse_study(definition), definition, tmp_path).spec.max_trials == 99
    unpruned = study_definition(name="unpruned", maxTrials=5_000)
    assert runner.submit(parse_study(unpruned), unpruned, tmp_path).spec.max_trials == 5_000, \
        "without early stopping a trial holds its parameter and objective value"
    runner.close()


def test_a_medianstop_whose_start_step_no_trial_keeps_is_refused_at_that_setting_and_one_within_is_taken(
        tmp_path: Path):
    """Katib's median stop judges a trial once, at its ``start_step``-th step: past the steps
    each trial keeps (10,000 at most; here 100, the share of 10,200 values among 100 trials) no
    trial would ever be judged, and the study would run as if it had no early stopping. Refused
    at the setting, a Katib Experiment's at its entry of ``algorithmSettings``; nothing stored."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history_cells=10_200)))
    rule = {"algorithm": "medianstop", "settings": {"start_step": 101}}
    message = refused(runner, tmp_path, study_definition(name="late", maxTrials=100, earlyStopping=rule))
    assert "- earlyStopping.settings.start_step: expected at most 100, the steps each trial of this study keeps " \
           "(its share of the 10,200 values KATUNA_MAX_HISTORY_CELLS allows)" in message, message
    assert message.endswith("got 101"), message
    both = {"algorithm": "hyperband-medianstop", "settings": {"start_step": 101}}
    assert "earlyStopping.settings.start_step: expected at most 100" in \
        refused(runner, tmp_path, study_definition(name="late", maxTrials=100, earlyStopping=both))
    kept = study_definition(name="late", maxTrials=100, earlyStopping={**rule, "settings": {"start_step": 100}})
    assert runner.submit(parse_study(kept), kept, tmp_path).name == "late"
    runner.close()
    runner = Embedded(Settings(db=tmp_path / "other.db"))
    medianstop = {"algorithmName": "medianstop", "algorithmSettings": [
        {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "10001"}]}
    message = refused(runner, tmp_path, experiment(earlyStopping=medianstop))
    assert "- spec.earlyStopping.algorithmSettings[1].value: expected at most 10,000, the steps each trial of " \
           "this study keeps (10,000 at most)" in message, message
    runner.close()


def test_a_hyperband_whose_rungs_go_past_the_steps_each_trial_keeps_is_refused_at_max_resource(tmp_path: Path):
    """With every report the next step, a trial's steps end at the count it keeps (here 100):
    Hyperband's rungs below a ``max_resource`` of 1,000 (1, 3, 9, 27, 81, 243, 729) include two
    no trial reaches, so the trials of those brackets would never be stopped. Refused at the
    setting, naming the largest it takes; that one is taken, and so are named steps, which may
    go past the count kept."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history_cells=10_200)))
    counted = {"steps": "reports"}
    rule = {"algorithm": "hyperband", "settings": {"max_resource": 1000}}
    message = refused(runner, tmp_path, study_definition(name="rungs", maxTrials=100, earlyStopping=rule,
                                                         metricsCollector=counted))
    assert "- earlyStopping.settings.max_resource: expected at most 243, the first of Hyperband's rungs past the " \
           "100 steps each trial of this study keeps (its share of the 10,200 values KATUNA_MAX_HISTORY_CELLS " \
           "allows): each report is the next step, so no trial would reach the rungs at steps 243, 729" in message, \
        message
    assert message.endswith("got 1,000"), message
    for taken in (study_definition(name="rungs", maxTrials=100, metricsCollector=counted,
                                   earlyStopping={**rule, "settings": {"max_resource": 243}}),
                  study_definition(name="named", maxTrials=100, earlyStopping=rule)):
        assert runner.submit(parse_study(taken), taken, tmp_path).name == taken["name"]
    runner.close()


def test_a_warm_starts_known_results_count_as_the_trials_they_become(tmp_path: Path):
    known = {"warmStart": {"trials": [{"params": {"x": float(x)}, "value": float(x)} for x in range(3)]}}
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history_cells=7)))
    message = refused(runner, tmp_path, study_definition(name="warm", maxTrials=1, parallelism=1, **known))
    assert "may create 1 trial (maxTrials) of 2 values each (1 parameter, 1 objective value) and take 3 known " \
           "results (warmStart)" in message, message
    runner.close()
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history_cells=8)))
    definition = study_definition(name="warm", maxTrials=1, parallelism=1, **known)
    assert runner.submit(parse_study(definition), definition, tmp_path).name == "warm"
    runner.close()


def test_a_restart_counts_the_values_its_history_holds_and_a_refused_one_changes_nothing(tmp_path: Path):
    """An ended Experiment restarted with a raised ``maxTrialCount``: what its journal holds and
    two values for each trial it may add."""
    doc = experiment(resumePolicy="LongRunning", maxTrialCount=2, parallelTrialCount=1)
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    runner.submit(*load_study(yaml.safe_dump(doc)), tmp_path)
    ended = runner.run(doc["metadata"]["name"])
    held = runner.store.optuna_version(ended.name)
    runner.close()
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history_cells=held + 3)))
    before = runner.store.get_study(ended.name)
    doc["spec"]["maxTrialCount"] = 4
    message = refused(runner, tmp_path, doc)
    assert f"spec.maxTrialCount: a study's Optuna history holds at most {held + 3} values (set by " \
           f"KATUNA_MAX_HISTORY_CELLS), and this study, with maxTrials 4 after 2 finished trials, holds {held} values " \
           "and may add 2 trials of 2 values each (1 parameter, 1 objective value)" in message, message
    assert "At most 3 trials fit for 1 parameter" in message
    assert runner.store.get_study(ended.name) == before, "nothing changed"
    doc["spec"]["maxTrialCount"] = 3
    restarted = runner.submit(*load_study(yaml.safe_dump(doc)), tmp_path)
    assert (restarted.status, restarted.restarts, restarted.spec.max_trials) == ("running", 1, 3)
    runner.close()


def test_a_running_study_past_a_lowered_limit_runs_on_to_its_max_trials_and_the_service_says_so_at_start(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A study stored before ``KATUNA_MAX_HISTORY_CELLS`` was lowered below what its history
    holds is served on, as the warning at start says: it runs to its ``maxTrials``, its new
    trials keeping the fewest steps a trial keeps (100), and adding trials to it is refused."""
    from functions.cli_servers import _warn_of_history

    stopping = {"algorithm": "threshold", "settings": {"lower": -1e3, "upper": 1e3}}
    definition = study_definition(name="long", maxTrials=2, parallelism=1, mode="curve", earlyStopping=stopping)
    definition["trialTemplate"]["command"] += ["--epochs", "150"]
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    runner.submit(parse_study(definition), definition, tmp_path)
    runner.run("long")
    raised = {**definition, "maxTrials": 4}
    assert runner.submit(parse_study(raised), raised, tmp_path).status == "running"
    held = runner.store.optuna_version("long")
    runner.close()
    _warn_of_history(tmp_path / "katuna.db", Limits(history_cells=10), 5.0, Settings().network_rule(service=True))
    assert " ".join(capsys.readouterr().err.split()) == (
        f"warning: the study 'long' holds {held} values in its Optuna history, past KATUNA_MAX_HISTORY_CELLS (10), and "
        "is served on: each worker that serves one loads its whole history first (under a megabyte); a running one "
        "runs on to its maxTrials (or the cap it was admitted with), its trials with earlyStopping keeping only the "
        "steps the limit leaves each (at least 100); a restart or an edit that would add trials is refused")
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history_cells=10)))
    ended = runner.run("long")
    assert (ended.status, ended.reason) == ("completed", "max trials reached (4)")
    trials = runner.store.optuna_study("long", ["minimize"]).trials
    assert [len(t.intermediate_values) for t in trials] == [150, 150, 100, 100]
    message = refused(runner, tmp_path, {**definition, "maxTrials": 5})
    assert "maxTrials: a study's Optuna history holds at most 10 values (set by KATUNA_MAX_HISTORY_CELLS)" in message
    runner.close()


def test_the_warning_at_start_names_every_study_past_the_values_limit_the_largest_first_then_a_count(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from functions.cli_servers import _warn_of_history

    store = SqliteStore(tmp_path / "katuna.db")
    with store.transaction():
        for name, trials in [*((f"s{n:02}", n + 2) for n in range(12)), ("within", 1)]:
            store.optuna_study(name, ["minimize"]).add_trials(
                [optuna.trial.create_trial(value=float(v)) for v in range(trials)])
    values = {name: store.optuna_version(name) for name in [*(f"s{n:02}" for n in range(12)), "within"]}
    store.close()
    limit = values["within"]
    _warn_of_history(tmp_path / "katuna.db", Limits(history_cells=limit), 5.0, Settings().network_rule(service=True))
    warning = " ".join(capsys.readouterr().err.split())
    assert values["s11"] > values["s10"] > values["s00"] > limit, values
    named = ", ".join(f"'s{n:02}' ({values[f's{n:02}']})" for n in range(11, 1, -1))
    assert warning.startswith(f"warning: 12 studies hold more values in their Optuna history than "
                              f"KATUNA_MAX_HISTORY_CELLS ({limit}): {named} and 2 more; they are served on: each "
                              "worker that serves one loads its whole history first (under a megabyte for the "
                              "largest)"), warning
    assert "within" not in warning
    _warn_of_history(tmp_path / "katuna.db", Limits(history_cells=values["s11"]), 5.0, Settings().network_rule(service=True))
    assert capsys.readouterr().err == "", "none past the limit: no warning"


def choices(name: str, count: int, max_trials: int | None, **overrides: Any) -> dict[str, Any]:
    """A study of one categorical parameter of ``count`` choices, given to its trial's command."""
    definition = wide(name, 0, max_trials or 1, **overrides)
    definition["parameters"] = [{"name": "c", "type": "categorical", "values": [f"v{i}" for i in range(count)]}]
    definition["trialTemplate"]["command"].append("${trialParameters.c}")
    if max_trials is None:
        del definition["maxTrials"]
    return definition


def test_a_categorical_of_many_choices_counts_them_as_optuna_stores_them_with_every_trial(tmp_path: Path):
    """Optuna stores each trial's value with the parameter's whole list of choices, which a
    process loads for every trial (2,000 trials of 10,000 choices took 1.8 GB): such a study is
    refused at ``maxTrials`` where it would have been admitted 100,000 trials, naming the
    choices; one without ``maxTrials`` is capped at the trials that fit; a handful of choices
    count as one value, as before."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    message = refused(runner, tmp_path, choices("many", 10_000, 2_000))
    assert "this study may create 2,000 trials (maxTrials) of 1,252 values each (1 parameter, 1,250 for the choices " \
           "of its categorical and discrete parameters, one for every 8 of them, which Optuna stores with each " \
           "trial's value, 1 objective value)" in message, message
    assert "At most 399 trials fit for 1 parameter: run it as several studies" in message
    assert message.endswith("or with fewer parameters or choices"), message
    definition = choices("capped", 10_000, None, timeBudget="1h")
    capped = runner.submit(parse_study(definition), definition, tmp_path)
    assert (capped.trial_cap.trials, capped.trial_cap.setting) == (399, "KATUNA_MAX_HISTORY_CELLS")
    few = choices("few", 7, 100_000)
    assert runner.submit(parse_study(few), few, tmp_path).spec.max_trials == 100_000, "7 choices count one value"
    runner.close()
