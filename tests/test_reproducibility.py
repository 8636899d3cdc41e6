"""A study records what makes it reproducible: the seed it ran with, and the software versions."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import optuna
import pytest
import sqlite_utils
from conftest import study_definition, undo_trial_changes
from test_cli import here, katuna, write_study

from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import study_created
from functions.core.records import StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.core.views import study_view
from functions.embedded import Embedded
from functions.runtime import Runtime
from functions.settings import Settings


@pytest.mark.slow
def test_an_unseeded_study_records_its_seed_and_a_rerun_with_that_seed_repeats_it(tmp_path: Path):
    first, again = tmp_path / "first", tmp_path / "again"
    first.mkdir(), again.mkdir()
    definition = study_definition(maxTrials=3, parallelism=1, algorithm={"name": "random"})
    katuna("run", str(write_study(first / "study.yaml", definition)), cwd=first)

    made = json.loads(here("show", "demo", "--json", cwd=first).stdout)["reproducibility"]
    assert isinstance(made["seed"], int)
    assert (made["katunaVersion"], made["optunaVersion"]) == (metadata.version("katuna"), optuna.__version__)
    assert made["lookahead"] == 1, "katuna run asks one trial ahead by default"
    shown = katuna("show", "demo", cwd=first).stdout
    assert f"seed: {made['seed']}" in shown and "look-ahead 1" in shown

    seeded = study_definition(maxTrials=3, parallelism=1, algorithm={"name": "random", "seed": made["seed"]})
    katuna("run", str(write_study(again / "study.yaml", seeded)), cwd=again)
    params = [json.loads(here("trials", "demo", "--json", cwd=folder).stdout) for folder in (first, again)]
    assert [t["params"] for t in params[0]] == [t["params"] for t in params[1]]


@pytest.mark.parametrize("lookahead", [0, 2])
def test_a_study_records_the_look_ahead_it_started_with(tmp_path: Path, lookahead: int):
    runner = Embedded(Settings(db=tmp_path / "katuna.db", lookahead=lookahead))
    try:
        definition = study_definition()
        record = runner.submit(parse_study(definition), definition, tmp_path)
        assert study_view(runner.store, record)["reproducibility"]["lookahead"] is None, "not started yet"
        runner.dispatcher.deliver(study_created("demo", record.uid))
        record = runner.store.get_study("demo")
        assert record.lookahead == lookahead
        assert study_view(runner.store, record)["reproducibility"]["lookahead"] == lookahead
    finally:
        runner.close()


LIBRARIES = {"random": ["numpy"], "tpe": ["numpy"], "cmaes": ["numpy", "cmaes"], "sobol": ["numpy", "scipy"],
             "gp": ["numpy", "scipy", "scikit-learn", "scikit-optimize"]}


@pytest.mark.parametrize("algorithm", LIBRARIES)
def test_a_study_records_the_versions_of_the_libraries_its_sampler_draws_on(tmp_path: Path, algorithm: str):
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        definition = study_definition(algorithm={"name": algorithm})
        record = runner.submit(parse_study(definition), definition, tmp_path)
        assert study_view(runner.store, record)["reproducibility"]["libraryVersions"] is None, "not started yet"
        runner.dispatcher.deliver(study_created("demo", record.uid))
        made = study_view(runner.store, runner.store.get_study("demo"))["reproducibility"]
        assert made["libraryVersions"] == {name: metadata.version(name) for name in LIBRARIES[algorithm]}
    finally:
        runner.close()
    shown = " ".join(here("show", "demo", "--db", str(tmp_path / "katuna.db")).stdout.split())
    listed = " ".join(f"{name} {metadata.version(name)}" for name in LIBRARIES[algorithm])
    assert f"optuna {optuna.__version__} {listed} look-ahead 1" in shown, shown


def _started(path: Path) -> Embedded:
    """A runner (look-ahead 1) on ``path`` whose seeded study ``demo`` has started, its releases recorded."""
    runner = Embedded(Settings(db=path))
    definition = study_definition()
    record = runner.submit(parse_study(definition), definition, path.parent)
    runner.dispatcher.deliver(study_created("demo", record.uid))
    return runner


def _drift_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "katuna.studies" and r.levelname == "WARNING"]


@pytest.mark.parametrize(("changed", "said"), [
    ({"optuna_version": "4.0.0"}, f"optuna 4.0.0 (now {optuna.__version__})"),
    ({"library_versions": {"numpy": "1.26.4"}}, f"numpy 1.26.4 (now {metadata.version('numpy')})"),
    ({"lookahead": 0}, "look-ahead 0 (now 1)"),
])
def test_a_study_resumed_under_other_releases_or_look_ahead_is_warned_of(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, changed: dict, said: str):
    caplog.set_level("WARNING", logger="katuna.studies")
    runner = _started(tmp_path / "katuna.db")
    try:
        record = runner.store.get_study("demo")
        runner.dispatcher.deliver(study_created("demo", record.uid))
        assert _drift_warnings(caplog) == [], "started and resumed under the same releases and look-ahead"
        runner.store.update_study("demo", **changed)
        runner.dispatcher.deliver(study_created("demo", record.uid))
    finally:
        runner.close()
    assert _drift_warnings(caplog) == [
        f"study 'demo' was started with {said}: the trials it suggests from here on may differ from those its seed 1 "
        "gave an uninterrupted run"]


def test_a_service_going_on_with_a_study_started_by_other_releases_warns_as_it_starts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level("WARNING", logger="katuna.studies")
    runner = _started(tmp_path / "katuna.db")
    runner.store.update_study("demo", optuna_version="4.0.0")
    runner.close()
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        runtime.start()
    finally:
        runtime.close()
    assert _drift_warnings(caplog) == [
        f"study 'demo' was started with optuna 4.0.0 (now {optuna.__version__}), look-ahead 1 (now 0): the trials it "
        "suggests from here on may differ from those its seed 1 gave an uninterrupted run"]


def test_a_service_warns_of_a_drifting_study_once_though_its_start_event_is_still_queued(
        tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """A study-start event of the study left in the queue, delivered once the service started
    (which warned of the study), warned again of the same: once per study in a process."""
    caplog.set_level("WARNING", logger="katuna.studies")
    runner = _started(tmp_path / "katuna.db")
    uid = runner.store.get_study("demo").uid
    runner.store.update_study("demo", optuna_version="4.0.0")
    runner.close()
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        runtime.start()
        runtime.dispatcher().deliver(study_created("demo", uid))
    finally:
        runtime.close()
    assert _drift_warnings(caplog) == [
        f"study 'demo' was started with optuna 4.0.0 (now {optuna.__version__}), look-ahead 1 (now 0): the trials it "
        "suggests from here on may differ from those its seed 1 gave an uninterrupted run"]


def test_a_database_from_before_the_records_keeps_loading(tmp_path: Path):
    path = tmp_path / "katuna.db"
    store = SqliteStore(path)
    store.add_study(_record())
    store.add_trial(TrialRecord("demo", 0, {"x": 1.0}, "COMPLETE", values=[1.0]))
    store.close()
    _downgrade(path)

    reopened = SqliteStore(path)
    record = reopened.get_study("demo")
    assert (record.seed, record.katuna_version, record.optuna_version, record.lookahead) == (None, None, None, None)
    assert study_view(reopened, record)["reproducibility"]["libraryVersions"] is None
    assert record.algorithm == record.spec.algorithm
    assert reopened.get_trial("demo", 0).image_digest is None
    reopened.close()


def _record() -> StudyRecord:
    definition = study_definition(algorithm={"name": "random"})
    return StudyRecord(parse_study(definition), definition, str(Path.cwd()), "uid-1")


def _downgrade(path: Path) -> None:
    """The database as the release before these records left it: the schema before the ninth migration."""
    db = sqlite_utils.Database(path)
    for column in ("seed", "katuna_version", "optuna_version"):
        db.execute(f"ALTER TABLE studies DROP COLUMN {column}")
    db.execute("ALTER TABLE trials DROP COLUMN image_digest")
    for column in ("owned", "adopted", "nodes", "looked_at", "nodes_problem"):  # the migrations that follow
        db.execute(f"ALTER TABLE node_pools DROP COLUMN {column}")
    undo_trial_changes(db)
    db.execute("PRAGMA user_version = 8")
    db.close()
