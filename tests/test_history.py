"""Optuna's history, one journal per study, which every process serving a study loads whole and
which no other study adds to, bounded at submission by ``KATUNA_MAX_HISTORY``: a study that would
take its own history past it is refused naming the limit, what it costs and what to do, and the
count it is checked against is exactly what a fresh process serving the study loads."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import study_definition
from http_helpers import Service
from test_katib import experiment

from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.history import history_problem, history_warning
from functions.core.limits import Limits
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings


def ran(runner: Embedded, tmp_path: Path, name: str, max_trials: int) -> None:
    definition = study_definition(name=name, maxTrials=max_trials, parallelism=1)
    runner.submit(parse_study(definition, runner.deps.limits), definition, tmp_path)
    assert runner.run(name).status == "completed"


def loaded_trials(runner: Embedded, name: str) -> int:
    """How many trials a fresh process's Optuna storage holds once it serves the study ``name``."""
    fresh = SqliteStore(runner.store.path)
    try:
        fresh.optuna_study(name, ["minimize"])
        return sum(len(stream._replay_result._trials) for stream in fresh.optuna_storage()._streams.values())
    finally:
        fresh.close()


def refusal(runner: Embedded, tmp_path: Path, name: str, max_trials: int) -> str:
    definition = study_definition(name=name, maxTrials=max_trials, parallelism=1)
    with pytest.raises(InvalidStudy) as caught:
        runner.submit(parse_study(definition, runner.deps.limits), definition, tmp_path)
    assert [s.name for s in runner.store.list_studies()].count(name) == 0, "nothing stored"
    return str(caught.value)


def test_a_study_whose_max_trials_would_overflow_its_history_is_refused_naming_the_limit_and_what_to_do(tmp_path: Path):
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history=3)))
    message = refusal(runner, tmp_path, "large", 4)
    assert "maxTrials: a study's Optuna history holds at most 3 trials (set by KATUNA_MAX_HISTORY), and this study " \
           "may create 4 (maxTrials): every process that serves the study first loads its whole history" in message, message
    assert "Run it as several studies of at most 3 trials" in message
    ran(runner, tmp_path, "first", 3)
    assert runner.store.optuna_history("first") == loaded_trials(runner, "first") == 3
    ran(runner, tmp_path, "second", 3)
    assert runner.store.optuna_history("second") == loaded_trials(runner, "second") == 3, \
        "a study's history holds its own trials, not the database's"
    again = study_definition(name="first", maxTrials=3, parallelism=1)
    assert runner.submit(parse_study(again), again, tmp_path).status == "completed", "the stored one, unrefused"
    runner.close()


def test_the_refusal_says_how_long_loading_the_history_takes_at_the_limit_in_seconds_or_under_one():
    """A limit set low (a small machine, a test) loads in under a second: never "about 0 s"."""
    low = history_problem(0, 11, 10)
    assert low is not None and "loads its whole history, under a second at the limit." in low.message, low
    high = history_problem(0, 200_000, 100_000)
    assert high is not None and "loads its whole history, about 12 s at the limit." in high.message, high
    assert "about 0 s" not in (history_warning([("small", 11)], 1, 10) or "")


def test_a_deleted_study_leaves_nothing_for_a_fresh_process_to_load(tmp_path: Path):
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history=2)))
    ran(runner, tmp_path, "first", 2)
    runner.store.delete_study("first")
    assert runner.store.optuna_history("first") == 0
    assert runner.store.db.execute("SELECT count(*) FROM optuna_journal").fetchone() == (0,)
    ran(runner, tmp_path, "first", 2)
    ran(runner, tmp_path, "other", 2)
    assert runner.store.optuna_history("first") == loaded_trials(runner, "first") == 2
    runner.close()


def test_a_study_without_max_trials_is_refused_only_by_a_full_history_of_its_own(tmp_path: Path):
    unbounded = study_definition(name="open", parallelism=1, timeBudget="1h")
    del unbounded["maxTrials"]
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history=2)))
    ran(runner, tmp_path, "first", 2)
    assert runner.submit(parse_study(unbounded), unbounded, tmp_path).name == "open", "another study's trials add nothing"
    runner.close()
    store = SqliteStore(tmp_path / "direct.db")
    study = optuna.create_study(storage=store.optuna_storage(), study_name="open")
    study.add_trials([optuna.trial.create_trial(params={}, distributions={}, value=v) for v in (1.0, 2.0)])
    store.close()
    full = Embedded(Settings(db=tmp_path / "direct.db", limits=Limits(history=2)))
    with pytest.raises(InvalidStudy, match="holds at most 2 trials .*, and this study's holds 2"):
        full.submit(parse_study(unbounded), unbounded, tmp_path)
    full.close()


@pytest.mark.slow
def test_the_service_answers_a_study_past_the_history_with_422_and_stores_nothing(tmp_path: Path):
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    ran(runner, tmp_path, "first", 2)
    runner.close()
    service = Service(tmp_path, workers=1, KATUNA_MAX_HISTORY="2")
    try:
        status, _, body = service.request("POST", "/studies", json.dumps(study_definition(name="second", maxTrials=3, parallelism=1)),
                                          {"Content-Type": "application/json"})
        assert status == 422, body
        assert "holds at most 2 trials (set by KATUNA_MAX_HISTORY), and this study may create 3" in body.decode()
        assert [s["name"] for s in json.loads(service.request("GET", "/studies")[2])] == ["first"]
    finally:
        service.close()


def test_trials_created_through_optuna_directly_are_counted_too(tmp_path: Path):
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    with runner.store.transaction():
        study = optuna.create_study(storage=runner.store.optuna_storage(), study_name="direct")
        study.add_trials([optuna.trial.create_trial(params={}, distributions={}, value=v) for v in (1.0, 2.0)])
        study.ask()
    assert runner.store.optuna_history("direct") == loaded_trials(runner, "direct") == 3
    runner.close()


@pytest.mark.slow
def test_the_service_warns_at_start_of_a_study_whose_history_is_past_the_limit_and_serves_on(tmp_path: Path):
    """A study grown past the limit before (under a raised limit, or without maxTrials) is named at start."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    ran(runner, tmp_path, "first", 2)
    runner.close()
    service = Service(tmp_path, workers=1, KATUNA_MAX_HISTORY="1")
    try:
        assert service.request("GET", "/studies/first")[0] == 200
    finally:
        service.close()
    log = " ".join((tmp_path / "serve.log").read_text().split())
    assert "warning: the study 'first' holds 2 trials in its Optuna history, past KATUNA_MAX_HISTORY (1): each " \
           "worker loads all of them" in log, log
    assert "other studies load only their own" in log


def test_the_warning_at_start_names_every_study_past_the_limit_the_largest_first_then_a_count(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Each such study makes a worker serving it load its whole history: the operator learns
    of all of them (the ten largest by name), not of the largest alone."""
    from functions.cli_servers import _warn_of_history

    store = SqliteStore(tmp_path / "katuna.db")
    with store.transaction():
        for name, trials in [*((f"s{n:02}", n + 2) for n in range(13)), ("within", 1)]:
            store.optuna_study(name, ["minimize"]).add_trials(
                [optuna.trial.create_trial(value=float(v)) for v in range(trials)])
    store.close()
    _warn_of_history(tmp_path / "katuna.db", Limits(history=1), 5.0, Settings().network_rule(service=True))
    warning = " ".join(capsys.readouterr().err.split())
    named = ", ".join(f"'s{n:02}' ({n + 2})" for n in range(12, 2, -1))
    assert warning.startswith("warning: 13 studies hold more trials in their Optuna history than KATUNA_MAX_HISTORY "
                              f"(1): {named} and 3 more; each worker loads a study's whole history (under a second for "
                              "the largest) the first time it serves that study"), warning
    assert "within" not in warning
    _warn_of_history(tmp_path / "katuna.db", Limits(history=13), 5.0, Settings().network_rule(service=True))
    assert " ".join(capsys.readouterr().err.split()).startswith(
        "warning: the study 's12' holds 14 trials in its Optuna history, past KATUNA_MAX_HISTORY (13): each worker "
        "loads all of them (under a second) the first time it serves that study")


def test_a_restart_whose_raised_budget_would_overflow_the_history_is_refused_and_changes_nothing(tmp_path: Path):
    """An ended Katib Experiment restarted with a raised ``maxTrialCount`` adds trials to its
    history: the trials it may add beyond those it made are checked."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history=3)))
    doc = experiment(resumePolicy="LongRunning", maxTrialCount=2, parallelTrialCount=1)
    runner.submit(*load_study(yaml.safe_dump(doc)), tmp_path)
    ended = runner.run(doc["metadata"]["name"])
    assert runner.store.optuna_history(ended.name) == 2
    doc["spec"]["maxTrialCount"] = 4
    with pytest.raises(InvalidStudy) as caught:
        runner.submit(*load_study(yaml.safe_dump(doc)), tmp_path)
    message = str(caught.value)
    assert "spec.maxTrialCount: a study's Optuna history holds at most 3 trials (set by KATUNA_MAX_HISTORY), and " \
           "this study, restarted with maxTrials 4 after 2 trials, may add 2 (maxTrials) where 1 fit" in message, message
    assert runner.store.get_study(ended.name) == ended, "nothing changed"
    doc["spec"]["maxTrialCount"] = 3
    restarted = runner.submit(*load_study(yaml.safe_dump(doc)), tmp_path)
    assert (restarted.status, restarted.restarts, restarted.spec.max_trials) == ("running", 1, 3)
    assert runner.run(ended.name).status == "completed" and runner.store.optuna_history(ended.name) == 3
    runner.close()


def test_a_warm_starts_known_results_count_as_trials_of_the_history_once(tmp_path: Path):
    """Known results become trials of the study's Optuna history before its first trial: a study
    whose warm start would take its history past the limit is refused naming ``maxTrials`` and
    nothing is stored; one without ``maxTrials`` runs the trials left; a restart counts them
    once, as the trials its history holds."""
    known = {"trials": [{"params": {"x": float(x)}, "value": float(x)} for x in range(3)]}
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history=5)))
    over = study_definition(name="warm", maxTrials=3, parallelism=1, warmStart=known)
    with pytest.raises(InvalidStudy) as caught:
        runner.submit(parse_study(over), over, tmp_path)
    assert "maxTrials: a study's Optuna history holds at most 5 trials (set by KATUNA_MAX_HISTORY), and this study " \
           "takes 3 known results (warmStart) as trials of its history and may create 3 (maxTrials) where 2 fit" \
           in str(caught.value), caught.value
    assert runner.store.list_studies() == [] and runner.store.optuna_history("warm") == 0, "nothing stored"
    unbounded = study_definition(name="open", parallelism=1, timeBudget="1h", warmStart=known)
    del unbounded["maxTrials"]
    assert runner.run(runner.submit(parse_study(unbounded), unbounded, tmp_path).name).reason == \
        "max trials reached (2, set by KATUNA_MAX_HISTORY for a study without maxTrials)"
    assert runner.store.optuna_history("open") == loaded_trials(runner, "open") == 5
    fits = study_definition(name="warm", maxTrials=1, parallelism=1, warmStart=known)
    runner.submit(parse_study(fits), fits, tmp_path)
    assert runner.run("warm").status == "completed" and runner.store.optuna_history("warm") == 4
    raised = {**fits, "maxTrials": 2}
    assert runner.submit(parse_study(raised), raised, tmp_path).restarts == 1, "its known results counted once"
    assert runner.run("warm").status == "completed" and runner.store.optuna_history("warm") == 5
    runner.close()
