"""A trial still running when its study ends is stopped (stored ``PRUNED``, its reason saying
the study's end stopped it, shown ``STOPPED``) and keeps what its output held by then: the
metrics it printed, reduced as a finished trial's are, and its observations, as Optuna keeps a
pruned trial's intermediate values and Katib the observations its collector pushed. Its state,
reason and verdict stay as the stop made them. Through a real embedded run (real trial
processes, a real SQLite file), the real CLI, and the real app's API and dashboard; and on a
cluster (the loopback Kubernetes API, whose pods run the trials as processes)."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import app_client, run_file, study_definition
from test_cli import here, write_study
from waiting import eventually

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import POOL_CHECK, Event, study_completed, study_created
from functions.core.launch import trial_launch
from functions.core.records import PRUNED, STOPPED_AT_END, StudyRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps, progress_scan, reconcile
from functions.handlers.submit import store_study

TRIAL = """
import sys, time
from pathlib import Path
role, ready = sys.argv[1], Path(sys.argv[2])
if role == "slow":
    print("epoch 1", flush=True)
    print("loss=0.9", flush=True)
    print("loss=0.7 accuracy=0.55", flush=True)
    ready.touch()
    time.sleep(120)
else:
    while not ready.exists():
        time.sleep(0.01)
    print("loss=0.1 accuracy=0.9", flush=True)
"""
"""The ``slow`` trial prints its metrics, says so, and runs on until it is stopped; the ``fast``
one reports the goal only once the slow one has printed, so the study ends with it running."""


@pytest.fixture(scope="module")
def ended(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a study run to its end: its goal reached by one trial while the other ran."""
    folder = tmp_path_factory.mktemp("stopped-metrics")
    definition = study_definition(
        name="ended", maxTrials=2, parallelism=2,
        objective={"metric": "loss", "direction": "minimize", "goal": 0.5, "additionalMetrics": ["accuracy"]},
        parameters=[{"name": "role", "type": "categorical", "values": ["slow", "fast"]}],
        algorithm={"name": "grid"},
        trialTemplate={"command": [sys.executable, "-c", TRIAL, "${trialParameters.role}", str(folder / "ready")]})
    run_file(write_study(folder / "ended.yaml", definition))
    return folder


def _stopped(trials: list[dict]) -> dict:
    (trial,) = [t for t in trials if t["params"]["role"] == "slow"]
    return trial


def test_katuna_trials_shows_the_metrics_a_stopped_trial_printed(ended: Path):
    """``katuna trials --json``: the stopped trial's metrics, as its output held them (the
    objective reduced by its strategy, ``min``), its state and reason the stop's, no values."""
    trials = json.loads(here("trials", "ended", "--json", "--db", str(ended / "katuna.db")).stdout)
    stopped = _stopped(trials)
    assert stopped["state"] == "STOPPED" and stopped["reason"].startswith(STOPPED_AT_END)
    assert stopped["metrics"] == {"loss": 0.7, "accuracy": 0.55}
    assert stopped.get("values") is None
    table = here("trials", "ended", "--db", str(ended / "katuna.db")).stdout
    (row,) = [line for line in table.splitlines() if "STOPPED" in line]
    assert "0.7" in row


def test_the_api_and_the_dashboard_show_the_stopped_trials_metrics_and_observations(ended: Path):
    """The API's trial and its observations, the dashboard's trial page and its CSV export show
    what the stopped trial printed; it is stored ``PRUNED`` still."""
    with app_client(ended / "katuna.db") as client:
        listed = client.get("/studies/ended/trials").get_json()
        number = _stopped(listed if isinstance(listed, list) else listed["trials"])["number"]
        trial = client.get(f"/studies/ended/trials/{number}").get_json()
        assert trial["metrics"] == {"loss": 0.7, "accuracy": 0.55}
        assert trial["reason"].startswith(STOPPED_AT_END)
        observed = client.get(f"/studies/ended/trials/{number}/observations").get_json()
        rows = observed if isinstance(observed, list) else observed["observations"]
        assert sorted((o["metric"], o["value"]) for o in rows) == [("accuracy", 0.55), ("loss", 0.7), ("loss", 0.9)]
        page = client.get(f"/ui/studies/ended/trials/{number}").get_data(as_text=True)
        exported = list(csv.DictReader(io.StringIO(client.get("/ui/studies/ended/trials.csv").text)))
    assert "none reported" not in page and "0.55" in page
    (row,) = [r for r in exported if r["number"] == str(number)]
    assert (row["state"], row["loss"], row["accuracy"]) == ("STOPPED", "0.7", "0.55")


KUBE_NAMESPACES = ("stopped",)

RUNNING = "import time; print('loss=0.9', flush=True); print('loss=0.7 accuracy=0.55', flush=True); time.sleep(120)"
"""A cluster trial that prints its metrics, then runs until it is stopped."""


def _running(kube) -> bool:
    """Whether the trial's pod runs. The stand-in's Job controller makes the Job's pod, and its
    kubelet starts it, in their own time on the controllers' thread (a slow pass on a loaded
    machine): until then the Job has no log, and reading its output finds it lost."""
    return any(namespace == "stopped" and pod.get("status", {}).get("phase") == "Running"
               for (namespace, _), pod in list(kube.pods.items()))


def _delivered(deps: Deps, events: list[Event]) -> None:
    """Deliver the events and every event they lead to, in this process."""
    for event in events:
        _delivered(deps, Dispatcher(deps).deliver(event))


def _printing(deps: Deps, kube, name: str) -> StudyRecord:
    """A study ``name`` of one cluster trial, stored and started, once the trial has printed its metrics."""
    definition = study_definition(name, maxTrials=1, parallelism=1,
                                  objective={"metric": "loss", "direction": "minimize", "additionalMetrics": ["accuracy"]})
    definition["trialTemplate"].update(image="python:3.12", command=[sys.executable, "-c", RUNNING,
                                                                     "${trialParameters.x}"])
    record, _ = store_study(deps, parse_study(definition), definition)
    _delivered(deps, [study_created(record.name, record.uid)])
    launch = trial_launch(record, deps.store.get_trial(name, 0))
    eventually(lambda: _running(kube), "the trial's pod running", timeout=60)
    eventually(lambda: "accuracy=0.55" in "".join(deps.executor.output(launch)), "the trial's metrics printed",
               timeout=60)
    return record


@pytest.mark.slow
def test_a_cluster_trial_stopped_by_its_studys_end_keeps_what_its_pods_log_held_once(tmp_path: Path, kube):
    """On a cluster the stop deletes the Job and its pods' logs with it: the output is read
    before, in the one read that keeps its last lines (no request more for it), and kept once,
    however often the study's end and the tick come. The trial's state,
    reason and Optuna trial stay as the stop made them; the Job is gone."""
    store = SqliteStore(tmp_path / "katuna.db")
    deps = Deps(store, KubernetesExecutor(Cluster(namespace="stopped"), api_client(kube.url)), time.time)
    try:
        record = _printing(deps, kube, "halted")
        end = study_completed("halted", record.uid, "stopped", "stopped by its user")
        before = len(kube.audit)
        _delivered(deps, [end])
        stop = Counter(f"{verb} {resource}" for verb, resource, _, _ in kube.audit[before:])
        assert (stop["list pods"], stop["get pods"]) == (1, 1), "one read of the trial's log gives both"
        _delivered(deps, [end])
        _delivered(deps, reconcile.handle(Event(POOL_CHECK, {}), deps))
        trial = store.get_trial("halted", 0)
        assert (trial.state, trial.reason) == (PRUNED, f"{STOPPED_AT_END} (stopped by its user)")
        assert trial.metrics == {"loss": 0.7, "accuracy": 0.55} and trial.values is None
        observed = sorted((o.metric, o.value) for o in store.observations("halted", 0, 1))
        assert observed == [("accuracy", 0.55), ("loss", 0.7), ("loss", 0.9)]
        assert [name for namespace, name in kube.jobs if namespace == "stopped"] == []
    finally:
        store.close()


@pytest.mark.slow
def test_a_cluster_trial_whose_running_log_was_kept_keeps_those_observations_when_its_study_ends(tmp_path: Path, kube):
    """Where the reads of the running trial's log kept its observations (every cluster study's
    are, now and then: they outlive the kubelet's rotation of the log), the stop keeps those,
    reduced, with the same one read of the log's last lines as any stop."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = KubernetesExecutor(Cluster(namespace="stopped"), api_client(kube.url))
    deps = Deps(store, executor, time.time, logs=executor)
    try:
        record = _printing(deps, kube, "scanned")
        progress_scan.scan(deps, [store.get_study("scanned")])
        assert len(store.observations("scanned", 0, 1)) == 3, "the running log's observations kept"
        before = len(kube.audit)
        _delivered(deps, [study_completed("scanned", record.uid, "stopped", "stopped by its user")])
        stop = Counter(f"{verb} {resource}" for verb, resource, _, _ in kube.audit[before:])
        assert (stop["list pods"], stop["get pods"]) == (1, 1)
        trial = store.get_trial("scanned", 0)
        assert (trial.state, trial.reason) == (PRUNED, f"{STOPPED_AT_END} (stopped by its user)")
        assert trial.metrics == {"loss": 0.7, "accuracy": 0.55} and trial.values is None
        observed = sorted((o.metric, o.value) for o in store.observations("scanned", 0, 1))
        assert observed == [("accuracy", 0.55), ("loss", 0.7), ("loss", 0.9)]
    finally:
        store.close()
