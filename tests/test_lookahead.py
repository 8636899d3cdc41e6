"""Look-ahead: a trial asked for while the others run, launched the moment a slot frees."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import run_study, study_definition
from http_helpers import Service
from started_katuna import StartedKatuna
from waiting import START_WAIT, eventually

from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.sqlite_trials import DISCARDED
from functions.core.events import (
    TRIAL_SUGGESTED,
    study_completed,
    study_created,
    trial_finished,
    trial_suggested,
)
from functions.core.resource_status import study_status
from functions.core.resources import Origin, Ref
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings


def _states(runner: Embedded) -> dict[int, str]:
    return {t.number: t.state for t in runner.store.trials("demo")}


def test_a_study_never_runs_more_than_its_parallelism_nor_creates_more_than_max_trials(embedded, tmp_path: Path):
    record = run_study(embedded, study_definition(maxTrials=6, parallelism=2), tmp_path)
    assert record.status == "completed", record.reason
    trials = embedded.store.trials("demo")
    assert [(t.number, t.state) for t in trials] == [(n, "COMPLETE") for n in range(6)]
    for trial in trials:
        running = [t for t in trials if t.started_at <= trial.started_at < t.finished_at]
        assert len(running) <= 2, f"{len(running)} trials ran when trial {trial.number} started"


def test_a_prepared_trial_waits_for_a_free_slot_and_takes_it_when_a_trial_ends(embedded, tmp_path: Path):
    definition = study_definition(mode="hang", maxTrials=10, parallelism=2)
    record = embedded.submit(parse_study(definition), definition, tmp_path)
    first = embedded.dispatcher.deliver(study_created("demo", record.uid))
    assert [(e.type, e.data["trial"]) for e in first] == [(TRIAL_SUGGESTED, 0), (TRIAL_SUGGESTED, 1)]
    assert _states(embedded) == {0: "WAITING", 1: "WAITING", 2: "WAITING"}, "trial 2 is prepared ahead"
    for event in first:
        embedded.dispatcher.deliver(event)

    assert embedded.dispatcher.deliver(trial_suggested("demo", record.uid, 2, 1)) == []
    assert _states(embedded) == {0: "RUNNING", 1: "RUNNING", 2: "WAITING"}, "no free slot: trial 2 is held back"
    assert embedded.executor.running("demo") == 2

    end = trial_finished("demo", record.uid, 0, 1, outcome="exited", exit_code=0)
    ended = embedded.dispatcher.deliver(end)
    assert ended == [], "the end starts the prepared trial and asks for the next one itself: no event is left"
    assert _states(embedded) == {0: "FAIL", 1: "RUNNING", 2: "RUNNING", 3: "WAITING"}, \
        "trial 2 took trial 0's slot at once, and trial 3 is prepared ahead"
    told = embedded.store.optuna_study("demo", ["minimize"]).get_trials(deepcopy=False)
    assert [t.state.name for t in told] == ["FAIL", "RUNNING", "RUNNING", "RUNNING"], \
        "the sampler was told of trial 0's end before it was asked for trial 3"
    assert embedded.dispatcher.deliver(end) == [], "a redelivered end is answered from its record"
    assert _states(embedded) == {0: "FAIL", 1: "RUNNING", 2: "RUNNING", 3: "WAITING"}, "and asks for nothing more"
    eventually(lambda: embedded.executor.running("demo") == 2, "trial 0 is stopped, trials 1 and 2 run, trial 2 once",
               timeout=30)


def test_without_look_ahead_only_the_free_slots_are_asked_for(tmp_path: Path):
    runner = Embedded(Settings(db=tmp_path / "katuna.db", lookahead=0))
    try:
        definition = study_definition(maxTrials=10, parallelism=2)
        record = runner.submit(parse_study(definition), definition, tmp_path)
        runner.dispatcher.deliver(study_created("demo", record.uid))
        assert _states(runner) == {0: "WAITING", 1: "WAITING"}
    finally:
        runner.close()


def test_a_study_stopped_with_a_prepared_trial_resumes_to_exactly_max_trials(tmp_path: Path):
    definition = study_definition(maxTrials=4, parallelism=2)
    first = Embedded(Settings(db=tmp_path / "katuna.db"))
    record = first.submit(parse_study(definition), definition, tmp_path)
    first.dispatcher.deliver(study_created("demo", record.uid))
    first.close()

    again = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        record = again.run("demo")
        assert record.status == "completed", record.reason
        assert _states(again) == {n: "COMPLETE" for n in range(4)}
    finally:
        again.close()


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("3", 3)])
def test_the_look_ahead_is_read_from_the_environment(value: str, expected: int):
    assert Settings.from_env({"KATUNA_LOOKAHEAD": value}).lookahead == expected
    assert Settings.from_env({}).lookahead == 1


def test_a_negative_look_ahead_is_refused():
    with pytest.raises(ValueError, match="KATUNA_LOOKAHEAD: expected trials >= 0, got -1"):
        Settings.from_env({"KATUNA_LOOKAHEAD": "-1"})


def test_a_trial_prepared_ahead_that_never_ran_is_no_trial_of_the_ended_study(embedded, tmp_path: Path):
    objective = {"metric": "loss", "direction": "minimize", "goal": 1000.0}
    record = run_study(embedded, study_definition(maxTrials=10, parallelism=1, objective=objective), tmp_path)
    assert record.status == "completed" and record.reason.startswith("goal reached by trial 0"), record.reason

    assert [(t.number, t.state) for t in embedded.store.trials("demo")] == [(0, "COMPLETE")], \
        "trial 1, prepared while trial 0 ran, never started: it is listed nowhere"
    counts = embedded.store.count_trials("demo")
    assert (counts.created, counts.pruned, counts.waiting) == (1, 0, 0)
    status = study_status(record, counts, embedded.store.best_trials("demo", 1),
                          Origin(Ref("Experiment", "default", "demo", "kubeflow.org/v1beta1"), "uid-1", 1))
    assert (status["trials"], status["trialsEarlyStopped"], status["progress"]) == (1, 0, "1/10"), \
        "Katib's status counts the trials that ran"

    optuna_trials = embedded.store.optuna_study("demo", ["minimize"]).get_trials(deepcopy=False)
    assert [(t.number, t.state.name) for t in optuna_trials] == [(0, "COMPLETE"), (1, "FAIL")], \
        "Optuna cannot forget a trial: it keeps the one never started as failed, which no sampler learns from"
    assert optuna_trials[1].system_attrs[DISCARDED] is True

    embedded.dispatcher.deliver(study_completed("demo", record.uid, record.status, record.reason))
    assert [t.number for t in embedded.store.trials("demo")] == [0], "handling the end again changes nothing"


@pytest.mark.slow
def test_a_study_left_with_a_prepared_trial_by_run_resumes_under_serve_within_its_parallelism(tmp_path: Path):
    definition = study_definition(mode="hang", maxTrials=6, parallelism=2)
    definition["trialTemplate"]["env"] = {"PID_DIR": str(tmp_path)}
    (tmp_path / "study.json").write_text(json.dumps(definition))
    db = tmp_path / "katuna.db"
    run = StartedKatuna("run", "study.json", "--db", str(db), cwd=tmp_path, interruptible=True)
    try:
        eventually(lambda: (tmp_path / "0.1.pid").exists() and (tmp_path / "1.1.pid").exists(),
                   "two running trials", timeout=START_WAIT)
        store = SqliteStore(db)
        eventually(lambda: {t.number: t.state for t in store.trials("demo")} ==
                   {0: "RUNNING", 1: "RUNNING", 2: "WAITING"}, "trial 2 prepared ahead", timeout=60)
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=90) == 130
    finally:
        run.kill()

    service = Service(tmp_path, workers=1)
    try:
        eventually(lambda: (tmp_path / "0.2.pid").exists() and (tmp_path / "1.2.pid").exists(),
                   "katuna serve resuming the interrupted trials", timeout=60)
        eventually(lambda: {t.number: (t.state, t.attempt) for t in store.trials("demo")} ==
                   {0: ("RUNNING", 2), 1: ("RUNNING", 2)},
                   "the prepared trial discarded, the interrupted ones running", timeout=60)
        assert not (tmp_path / "2.1.pid").exists(), "no more than parallelism trials run: trial 2 never started"
        assert store.count_trials("demo").created == 2
    finally:
        service.close()
        store.close()


@pytest.mark.parametrize("discards", [0, 2], ids=["discarded-on-resume", "discarded-twice-before"])
def test_a_grid_resumed_without_look_ahead_runs_the_discarded_trials_point_and_every_point_once(
        tmp_path: Path, discards: int):
    definition = study_definition(maxTrials=10, parallelism=1, algorithm={"name": "grid", "seed": 1},
                                  parameters=[{"name": "x", "type": "int", "min": 1, "max": 4}])
    first = Embedded(Settings(db=tmp_path / "katuna.db"))
    record = first.submit(parse_study(definition), definition, tmp_path)
    first.dispatcher.deliver(study_created("demo", record.uid))
    assert _states(first) == {0: "WAITING", 1: "WAITING"}, "trial 1 prepared ahead"
    for _ in range(discards):  # a discard delivered again
        first.store.discard_trial("demo", 1)
    first.close()

    again = Embedded(Settings(db=tmp_path / "katuna.db", lookahead=0))
    try:
        record = again.run("demo")
        assert record.status == "completed", record.reason
        points = sorted(t.params["x"] for t in again.store.trials("demo") if t.state == "COMPLETE")
        assert points == [1, 2, 3, 4], "the discarded trial's point is run later; no point runs twice"
    finally:
        again.close()


def test_the_trial_past_a_random_start_of_one_is_asked_once_a_trial_has_ended(embedded, tmp_path: Path):
    """Katib's ``tpe`` draws only its first ``parallelTrialCount`` trials at random (a random
    start of one trial): the trial look-ahead would prepare beside them is asked once the first
    trial has ended, of a sampler that models it, and the look-ahead prepares the trials after."""
    definition = study_definition(maxTrials=5, parallelism=2,
                                  algorithm={"name": "tpe", "seed": 3, "settings": {"n_startup_trials": 1}})
    record = embedded.submit(parse_study(definition), definition, tmp_path)
    embedded.dispatcher.deliver(study_created("demo", record.uid))
    assert _states(embedded) == {0: "WAITING", 1: "WAITING"}, "no trial is prepared at random ahead"
    assert embedded.run("demo").status == "completed"
    trials = embedded.store.trials("demo")
    assert [t.state for t in trials] == ["COMPLETE"] * 5
    first_end = min(t.finished_at for t in trials[:2])
    assert trials[2].created_at >= first_end, "trial 2 was asked once a trial had ended"
    assert trials[3].created_at <= trials[2].started_at, "trial 3 was prepared ahead, as trial 2 was asked"
