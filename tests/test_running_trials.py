"""``KATUNA_MAX_RUNNING_TRIALS``: a bound on the trials ``katuna run`` and ``katuna serve`` run
at once across every study, each study within its own ``parallelism``: by default as many as
the machine's CPUs where trials are local processes. A trial past it waits, stored ``WAITING``
with a note saying why, and starts once another trial's end frees room."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import study_definition
from http_helpers import Service, run_katuna

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.cli import main
from functions.core.errors import InvalidSetting, ServiceBusy
from functions.core.events import TRIAL_SUGGESTED, trial_suggested
from functions.core.records import RUNNING, WAITING, TrialRecord
from functions.core.validate import parse_study
from functions.core.views import study_view
from functions.embedded import Embedded
from functions.handlers.deps import Deps
from functions.handlers.reconcile import Budget, reconcile_study
from functions.handlers.submit import store_study
from functions.settings import Settings

CONCURRENCY = ("touch {d}/$KATUNA_STUDY.$KATUNA_TRIAL; n=$(ls {d} | wc -l); sleep 0.5; "
               "rm {d}/$KATUNA_STUDY.$KATUNA_TRIAL; echo x=${{trialParameters.x}}; echo loss=$n")
"""A trial that reports as its loss how many trials ran when it started (itself included): a
file of its own in a shared folder while it runs. The largest such count is the most trials
that ever ran at once, since the trial that began last among them counted them all."""


@pytest.mark.slow
def test_studies_each_within_their_parallelism_run_no_more_trials_at_once_than_the_service_allows(tmp_path: Path):
    running = tmp_path / "running"
    running.mkdir()
    service = Service(tmp_path, workers=2, KATUNA_MAX_RUNNING_TRIALS="2")
    try:
        for name in ("first", "second", "third"):
            study = study_definition(name=name, parallelism=2, maxTrials=3,
                                     trialTemplate={"command": ["sh", "-c", CONCURRENCY.format(d=running)]})
            status, answer = service.json("POST", "/studies", body=json.dumps(study),
                                          headers={"Content-Type": "application/json"})
            assert status == 201, answer
        counts = []
        for name in ("first", "second", "third"):
            assert service.wait_for(name, timeout=120)["status"] == "completed"
            trials = service.json("GET", f"/studies/{name}/trials")[1]
            assert [trial["state"] for trial in trials] == ["COMPLETE"] * 3, trials
            counts += [trial["value"] for trial in trials]
    finally:
        service.close()
    assert max(counts) <= 2, counts


def test_the_bound_is_the_machines_cpus_for_local_trials_and_a_thousand_for_jobs():
    assert Settings.from_env({}).max_running_trials == len(os.sched_getaffinity(0))
    assert "this machine's CPUs" in Settings.from_env({}).running_trials_set_by
    assert Settings.from_env({"KATUNA_EXECUTOR": "kubernetes"}).max_running_trials == 1_000
    assert Settings.from_env({}).with_executor("kubernetes").max_running_trials == 1_000, "katuna serve --executor"
    assert Settings.from_env({"KATUNA_EXECUTOR": "kubernetes"}).with_executor("local").max_running_trials == \
        len(os.sched_getaffinity(0))
    assert Settings.from_env({"KATUNA_MAX_RUNNING_TRIALS": "8"}).with_executor("kubernetes").max_running_trials == 8
    assert Settings.from_env({"KATUNA_MAX_RUNNING_TRIALS": "8"}).max_running_trials == 8
    assert Settings.from_env({"KATUNA_MAX_RUNNING_TRIALS": "8"}).running_trials_set_by == "KATUNA_MAX_RUNNING_TRIALS"
    with pytest.raises(InvalidSetting, match="KATUNA_MAX_RUNNING_TRIALS: expected a positive number of trials, got 0"):
        Settings.from_env({"KATUNA_MAX_RUNNING_TRIALS": "0"})


@pytest.mark.parametrize("lookahead", [0, 1])
def test_katuna_run_holds_a_parallelism_above_the_bound_to_it_and_completes_the_study(tmp_path: Path, lookahead: int):
    """A study of ``parallelism: 4`` on a bound of 1 is no error: its trials run one at a
    time, each past the bound waiting its turn, and all of them complete."""
    running = tmp_path / "running"
    running.mkdir()
    runner = Embedded(Settings(db=tmp_path / "katuna.db", max_running_trials=1, lookahead=lookahead))
    try:
        definition = study_definition(parallelism=4, maxTrials=4,
                                      trialTemplate={"command": ["sh", "-c", CONCURRENCY.format(d=running)]})
        runner.submit(parse_study(definition), definition, tmp_path)
        record = runner.run("demo")
        trials = runner.store.trials("demo")
    finally:
        runner.close()
    assert record.status == "completed", record.reason
    assert [trial.state for trial in trials] == ["COMPLETE"] * 4
    assert max(trial.values[0] for trial in trials) == 1, "never two trials at once"
    assert not any(trial.reason.startswith("waiting: ") for trial in trials), "a trial's note goes once it runs"


def test_a_trial_past_the_bound_says_why_it_waits_until_it_runs(tmp_path: Path):
    runner = Embedded(Settings.from_env({"KATUNA_DB": str(tmp_path / "katuna.db"), "KATUNA_MAX_RUNNING_TRIALS": "1"}))
    try:
        definition = study_definition(parallelism=2)
        record = runner.submit(parse_study(definition), definition, tmp_path)
        runner.store.add_trial(TrialRecord("demo", 0, {"x": 1.0}, RUNNING))
        runner.store.add_trial(TrialRecord("demo", 1, {"x": 2.0}, WAITING))
        with pytest.raises(ServiceBusy):
            runner.dispatcher.deliver(trial_suggested("demo", record.uid, 1, 1))
        trial = runner.store.get_trial("demo", 1)
        assert trial is not None and trial.state == WAITING
        why = ("katuna runs at most 1 trial at once (KATUNA_MAX_RUNNING_TRIALS); it starts as soon as one of those "
               "running ends and the trials waiting longer, of any study, have started")
        assert trial.reason == f"waiting: {why}"
        assert study_view(runner.store, runner.store.get_study("demo"))["waitingBecause"] == why
    finally:
        runner.close()
    shown = CliRunner().invoke(main, ["show", "demo", "--db", str(tmp_path / "katuna.db")])
    assert shown.exit_code == 0, shown.output
    assert f"waiting: {why}" in " ".join(line.strip() for line in shown.stdout.splitlines()), "however wrapped"


def test_the_running_trials_of_a_run_that_is_gone_take_no_room(tmp_path: Path):
    """An interrupted ``katuna run`` leaves its trials stored running with no process: they hold
    no room from another study's run until their own study is run again."""
    db = tmp_path / "katuna.db"
    first = Embedded(Settings(db=db, max_running_trials=1))
    try:
        definition = study_definition(name="gone")
        record = first.submit(parse_study(definition), definition, tmp_path)
        assert first.other_runner(record) is None, "claimed by the first run"
        first.store.add_trial(TrialRecord("gone", 0, {"x": 1.0}, RUNNING))
    finally:
        first.close()
    runner = Embedded(Settings(db=db, max_running_trials=1))
    try:
        definition = study_definition(maxTrials=1, parallelism=1)
        runner.submit(parse_study(definition), definition, tmp_path)
        assert runner.run("demo").status == "completed"
        assert runner.store.get_trial("gone", 0).state == RUNNING, "left for its own study's run to find"
    finally:
        runner.close()


def test_the_tick_sends_a_trial_waiting_for_room_nothing_more_until_room_frees(tmp_path: Path):
    """A trial waiting past the bound longer than an event may be on its way is not sent its
    ``trial.suggested`` again at every tick: its own is delivered again meanwhile, and the tick's
    would pile up in the queue for as long as it waits. Once room frees, the tick sends it."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    now = [10_000.0]
    deps = Deps(store, executor, lambda: now[0], running_trials=1)
    try:
        definition = study_definition(parallelism=3)
        record, _ = store_study(deps, parse_study(definition), definition)
        store.add_trial(TrialRecord("demo", 0, {"x": 1.0}, RUNNING, created_at=1_000.0))
        for number in (1, 2):
            store.add_trial(TrialRecord("demo", number, {"x": 2.0}, WAITING, created_at=1_000.0))
        for _ in range(3):
            assert reconcile_study(record, deps, Budget(), settled=lambda alive: False, poll=False) == []
        store.update_trial("demo", 0, state="COMPLETE", finished_at=now[0])
        resent = reconcile_study(record, deps, Budget(), settled=lambda alive: False, poll=False)
        assert [(event.type, event.data["trial"]) for event in resent] == [(TRIAL_SUGGESTED, 1)]
    finally:
        store.close()


@pytest.mark.slow
def test_katuna_run_left_to_its_default_runs_as_many_trials_at_once_as_the_machine_has_cpus(tmp_path: Path):
    """A real ``katuna run`` with no ``KATUNA_MAX_RUNNING_TRIALS``: a study asking for two trials
    more at once than the CPUs this process may use runs no more than those CPUs, and completes."""
    cpus = len(os.sched_getaffinity(0))
    running = tmp_path / "running"
    running.mkdir()
    study = tmp_path / "study.yaml"
    study.write_text(json.dumps(study_definition(parallelism=cpus + 2, maxTrials=cpus + 2,
                                                 trialTemplate={"command": ["sh", "-c", CONCURRENCY.format(d=running)]})))
    env = {k: v for k, v in os.environ.items() if k != "KATUNA_MAX_RUNNING_TRIALS"}
    ran = run_katuna("run", str(study), "--db", str(tmp_path / "katuna.db"), cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stderr
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        trials = store.trials("demo")
    finally:
        store.close()
    assert [trial.state for trial in trials] == ["COMPLETE"] * (cpus + 2)
    assert max(trial.values[0] for trial in trials) <= cpus, [trial.values for trial in trials]
