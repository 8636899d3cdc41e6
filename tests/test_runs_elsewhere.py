"""A study's trials run where the service that stored it runs them: a service whose trials run
elsewhere (a ``katuna serve`` on a laptop, over a database copied off a cluster service's
volume) shows the study and leaves it alone, and neither runs its trials nor takes them for lost."""

from __future__ import annotations

import json
import sqlite3
import sys
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import drop_runs_on, study_definition
from http_helpers import Service
from test_cli import katuna
from waiting import eventually

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import StudyRunsElsewhere
from functions.core.events import POOL_CHECK, Event, study_created
from functions.core.pool_use import PoolUse
from functions.core.records import COMPLETE, KUBERNETES, LOCAL, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.dispatch_outcomes import DROPPED
from functions.handlers import Deps
from functions.handlers.submit import store_study

KUBE_NAMESPACES = ("copied",)
TRIAL = Path(__file__).resolve().parent / "trials" / "objective.py"


class Outcomes:
    """The dispatcher's observer: each handling's (handler, outcome)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def handled(self, event_type: str, handler: str, outcome: str, seconds: float | None) -> None:
        self.seen.append((handler, outcome))


@pytest.fixture
def deps(tmp_path: Path):
    store = SqliteStore(tmp_path / "katuna.db")
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    yield Deps(store, executor, lambda: 100.0, workdir=str(tmp_path))
    executor.shutdown()
    store.close()


def stored(deps: Deps, runs_on: str | None, name: str = "copied") -> None:
    definition = study_definition(name=name, maxTrials=2, parallelism=1)
    record, _ = store_study(replace(deps, runs_on=runs_on), parse_study(definition), definition)
    assert record.runs_on == runs_on


def test_a_study_stored_by_a_cluster_service_is_left_alone_by_a_local_one(deps: Deps):
    stored(deps, KUBERNETES)
    outcomes = Outcomes()
    dispatcher = Dispatcher(deps, observer=outcomes)
    uid = deps.store.get_study("copied").uid
    assert dispatcher.deliver(study_created("copied", uid)) == []
    assert outcomes.seen == [("provision", DROPPED), ("suggest", DROPPED)]
    assert deps.store.count_trials("copied").created == 0, "no trial is asked for"
    assert dispatcher.deliver(Event(POOL_CHECK, {})) == [], "the tick nudges nothing"
    assert deps.executor.running("copied") == 0
    study = deps.store.get_study("copied")
    assert (study.status, study.started_at) == ("running", None), "the study is stored as it was"


def test_studies_stored_before_their_place_was_kept_run_where_they_are_served(deps: Deps):
    stored(deps, None)
    uid = deps.store.get_study("copied").uid
    events = Dispatcher(deps).deliver(study_created("copied", uid))
    assert [event.type for event in events] == ["dev.katuna.trial.suggested"]
    assert deps.store.count_trials("copied").created == 1


def test_the_census_counts_the_running_studies_each_service_runs(deps: Deps):
    for name, runs_on in (("there", KUBERNETES), ("here", LOCAL), ("older", None)):
        stored(deps, runs_on, name)
    census = deps.store.census()
    assert census.running_on == {KUBERNETES: 1, LOCAL: 1, None: 1}
    assert (census.running_for(LOCAL), census.running_for(KUBERNETES)) == (2, 2), "an older study runs anywhere"
    deps.store.update_study("here", status="stopped")
    assert deps.store.census().running_for(LOCAL) == 1


def test_a_study_running_elsewhere_is_refused_again_by_name_and_where(deps: Deps):
    stored(deps, KUBERNETES)
    definition = study_definition(name="copied", maxTrials=2, parallelism=1)
    with pytest.raises(StudyRunsElsewhere) as refused:
        store_study(deps, parse_study(definition), definition)
    assert str(refused.value).startswith("study 'copied' runs its trials as Jobs on a Kubernetes cluster, where the "
                                         "service that stored it runs them; here trials run as local processes")
    assert [record.runs_on for record in deps.store.list_studies()] == [KUBERNETES], "nothing stored changed"
    again, created = store_study(replace(deps, runs_on=KUBERNETES), parse_study(definition), definition)
    assert (again.runs_on, created) == (KUBERNETES, False), "its own service finds it stored"


def test_katuna_run_of_a_study_running_elsewhere_exits_2_saying_so_and_runs_nothing(deps: Deps, tmp_path: Path):
    stored(deps, KUBERNETES)
    (tmp_path / "copied.yaml").write_text(yaml.safe_dump(study_definition(name="copied", maxTrials=2, parallelism=1)))
    ran = katuna("run", "copied.yaml", cwd=tmp_path, check=False)
    assert ran.returncode == 2
    assert ran.stderr.startswith("error: study 'copied' runs its trials as Jobs on a Kubernetes cluster")
    shown = katuna("show", "copied", cwd=tmp_path)
    assert "status: running as Jobs on a Kubernetes cluster" in shown.stdout
    assert "trials: 0/2" in shown.stdout, "no trial was asked for"
    listed = katuna("studies", cwd=tmp_path, columns=300)
    assert "running as Jobs on a Kubernetes cluster" in listed.stdout
    stopped = katuna("stop", "copied", cwd=tmp_path, columns=300)
    assert " ".join(stopped.stdout.split()) == (
        "Study 'copied' stopped; this stops it in this database: its trials run as Jobs on a Kubernetes cluster, "
        "where the service that stored it runs them; a service on this database deletes them within a minute, one "
        "on another copy of it does not: stop it there too.")


def test_a_study_stored_before_its_place_was_kept_runs_on_kubernetes_where_what_it_left_proves_it(tmp_path: Path):
    """The thirty-first migration: a study resource's study, a node pool's user and a study whose
    trial ran as an image the cluster reported ran on a cluster; nothing proves where another ran."""
    store = SqliteStore(tmp_path / "katuna.db")
    for name, origin in (("resource", {"kind": "Study"}), ("pooled", None), ("imaged", None), ("plain", None)):
        spec = parse_study(study_definition(name=name))
        store.add_study(StudyRecord(spec, {}, str(tmp_path), f"uid-{name}", origin=origin))
    store.save_pool_use(PoolUse("uid-pooled", "pooled", "katuna-pool", "gke", "spot", ("e2-standard-4",), 3, False))
    store.add_trial(TrialRecord("imaged", 0, {"x": 1.0}, state=COMPLETE, image_digest="sha256:" + "0" * 64))
    store.add_trial(TrialRecord("plain", 0, {"x": 1.0}, state=COMPLETE))
    drop_runs_on(store.tables())
    store.db.execute("PRAGMA user_version = 30")
    store.close()
    reopened = SqliteStore(tmp_path / "katuna.db")
    try:
        assert {record.name: record.runs_on for record in reopened.list_studies()} == {
            "resource": KUBERNETES, "pooled": KUBERNETES, "imaged": KUBERNETES, "plain": None}
    finally:
        reopened.close()


def held_study(folder: Path, max_trials: int, name: str = "copied") -> str:
    """A study whose trial writes ``<trial>.<attempt>.pid`` into ``folder`` wherever it runs, then
    waits for ``folder/go``."""
    return yaml.safe_dump({
        "name": name, "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "maxTrials": max_trials, "parallelism": 1,
        "trialTemplate": {"command": [sys.executable, str(TRIAL), "--x", "${trialParameters.x}", "--until",
                                      str(folder / "go")],
                          "env": {"PID_DIR": str(folder)}, "image": "python:3.12"},
    })


def started(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("*.pid"))


def post(service: Service, body: str) -> tuple[int, dict]:
    status, _, answer = service.request("POST", "/studies", body, {"Content-Type": "application/yaml"})
    return status, json.loads(answer)


def run_on_cluster(service: Service, folder: Path, name: str) -> None:
    """Submit the held study ``name`` and wait until its trial runs in its pod, stored running."""
    assert post(service, held_study(folder, 1, name))[0] == 201
    eventually(lambda: started(folder) == ["0.1.pid"], "the trial's pod starts", timeout=20)
    eventually(lambda: service.json("GET", f"/studies/{name}")[1]["counts"]["running"] == 1,
               "the trial is stored running", timeout=20)


def copy_database(service: Service, to: Path) -> None:
    """A consistent copy of the service's database, as ``sqlite3 katuna.db ".backup COPY"`` takes one."""
    to.mkdir()
    with closing(sqlite3.connect(service.workdir / "katuna.db")) as source, \
            closing(sqlite3.connect(to / "katuna.db")) as copy:
        source.backup(copy)


@pytest.mark.slow
def test_a_database_copied_off_a_cluster_service_runs_no_trial_on_a_laptop_until_restarted_there(
        kube, tmp_path: Path):
    """Beside the study, one whose row is made to look stored before katuna kept where trials run:
    the laptop takes that one for its own, as before, and finds its trial lost (no process of its
    runs there), so runs it again; by the time that run ends, the tick that found it has passed
    over the other study, whose trial it leaves to its pod."""
    trials, legacy = tmp_path / "trials", tmp_path / "legacy"
    for folder in (trials, legacy):
        folder.mkdir()
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="copied")
    try:
        for folder, name in ((trials, "copied"), (legacy, "legacy")):
            run_on_cluster(service, folder, name)
        copy_database(service, tmp_path / "running")
        (trials / "go").touch()
        assert service.wait_for("copied")["reason"] == "max trials reached (1)"
        copy_database(service, tmp_path / "ended")
    finally:
        for folder in (trials, legacy):
            (folder / "go").touch()
        service.close()
    (trials / "go").unlink()
    with closing(sqlite3.connect(tmp_path / "running" / "katuna.db")) as db, db:
        db.execute("UPDATE studies SET runs_on = NULL WHERE name = 'legacy'")

    local = Service(tmp_path / "running", workers=1)
    try:
        assert local.wait_for("legacy")["status"] == "completed"
        assert started(legacy) == ["0.1.pid", "0.2.pid"], "the study stored before its place was kept ran here"
        status, study = local.json("GET", "/studies/copied")
        assert (status, study["status"], study["runsOn"], study["counts"]["running"]) == (200, "running", KUBERNETES, 1)
        assert started(trials) == ["0.1.pid"], "the laptop neither ran the trial nor ran it again"
        status, refused = post(local, held_study(trials, 1))
        assert (status, refused["error"]) == (409, "study_runs_elsewhere")
        assert "runs its trials as Jobs on a Kubernetes cluster" in refused["message"]
        status, _, page = local.request("GET", "/ui/studies/copied")
        assert status == 200 and b'id="runs-elsewhere"' in page
        assert b'data-confirm="Stop this study? Note that this stops it in this database: its trials run as ' \
               b'Jobs on a Kubernetes cluster' in page, "its Stop's confirmation says what it leaves running"
        listed = local.request("GET", "/ui/")[2].decode()
        assert listed.count("its trials run as Jobs on a Kubernetes cluster: left to the service") == 1, \
            "said of the study left alone, not of the one this service ran"
        assert 'id="studies-table" data-running="false"' in listed, "the list does not follow a study left alone"
        status, stopped = local.json("POST", "/studies/copied/stop")
        assert (status, stopped["status"]) == (200, "stopped")
    finally:
        local.close()

    local = Service(tmp_path / "ended", workers=1)
    try:
        (trials / "go").touch()
        status, restarted = post(local, held_study(trials, 2))
        assert status == 200, restarted
        done = local.wait_for("copied")
        assert (done["status"], done["runsOn"], done["counts"]["complete"]) == ("completed", LOCAL, 2)
        assert started(trials) == ["0.1.pid", "1.1.pid"], "restarted here, its next trial runs here"
    finally:
        local.close()
