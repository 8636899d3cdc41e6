"""A trial's workload is stopped only once the verdict that stops it is stored.

A handler that prunes a trial, or stops a study's trials, used to delete their Jobs inside its
transaction: a process killed after the API server deleted them, and before the commit, left
the trials running in the store with their Jobs gone, and the next look at them (a tick, the
Job's delete event) took each for a lost run and ran it again; a stop delivered once (``POST
/studies/NAME/stop``) was forgotten. Here the handler runs in a real process of its own, killed
while the loopback API server holds the answer to the delete it made
(:mod:`kube_standin.faults`); then the tick runs and the event is delivered again, in that order.
The verdict stands, no Job is made again, and a stop whose delete never went through is carried
out by the tick from the stored verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import study_definition
from kube_stub import KubeStub
from waiting import START_WAIT, eventually

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import POOL_CHECK, Event, study_completed, study_created, trial_progress
from functions.core.launch import trial_launch
from functions.core.records import PRUNED, STOPPED_AT_END
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps, reconcile
from functions.handlers.submit import store_study

pytestmark = pytest.mark.slow

KUBE_NAMESPACES = ("stops",)

ROOT = Path(__file__).resolve().parent.parent

DELIVER = """
import json, sys, time
from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import Event
from functions.dispatch import Dispatcher
from functions.handlers import Deps

db, url, namespace, event = sys.argv[1:]
deps = Deps(SqliteStore(db), KubernetesExecutor(Cluster(namespace=namespace), api_client(url)), time.time)
Dispatcher(deps).deliver(Event.from_dict(json.loads(event)))
"""
"""A katuna process that delivers one event to its handlers, as a service's worker does."""


@pytest.fixture
def world(tmp_path: Path, kube: KubeStub) -> Iterator[tuple[Deps, KubeStub]]:
    """A store and the Kubernetes executor over the loopback API, with no fault left behind."""
    store = SqliteStore(tmp_path / "katuna.db")
    deps = Deps(store, KubernetesExecutor(Cluster(namespace="stops"), api_client(kube.url)), time.time)
    try:
        yield deps, kube
    finally:
        kube.faults = type(kube.faults)()
        store.close()


def _delivered(deps: Deps, events: list[Event]) -> None:
    """Deliver the events and every event they lead to, in this process."""
    for event in events:
        _delivered(deps, Dispatcher(deps).deliver(event))


def _started(deps: Deps, kube: KubeStub, name: str, trials: int) -> str:
    """A study of ``trials`` trials of 60 s each, a trial pruned at any value above 10, started:
    its uid, once every trial's pod runs."""
    definition = study_definition(name, maxTrials=trials, parallelism=trials,
                                  earlyStopping={"algorithm": "threshold", "settings": {"upper": 10.0}})
    definition["trialTemplate"].update(image="python:3.12", command=[
        sys.executable, "-c", "import time; time.sleep(60)", "${trialParameters.x}"])
    record, _ = store_study(deps, parse_study(definition), definition)
    _delivered(deps, [study_created(record.name, record.uid)])
    eventually(lambda: len(_running_pods(kube, name)) == trials, "every trial's pod running", timeout=60)
    return record.uid


def _running_pods(kube: KubeStub, study: str) -> list[str]:
    return [name for (namespace, name), pod in list(kube.pods.items())
            if namespace == "stops" and name.startswith(f"{study}-") and pod.get("status", {}).get("phase") == "Running"]


def _killed_at_the_delete(kube: KubeStub, tmp_path: Path, event: Event) -> None:
    """Deliver ``event`` in a process of its own, killed once the API server deleted the Jobs
    it asked to delete, before it answered."""
    held = kube.faults.hold("deletecollection", "jobs")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", DELIVER, str(tmp_path / "katuna.db"), kube.url, "stops",
                                json.dumps(event.to_dict())], env=env, cwd=ROOT)
    try:
        eventually(lambda: held.reached.is_set() or process.poll() is not None,
                   "the handler's process to delete the Jobs or exit", timeout=START_WAIT)
        assert held.reached.is_set(), f"the handler exited ({process.returncode}) without deleting the Jobs"
    finally:
        process.kill()
        process.wait()
        held.release()
    kube.faults = type(kube.faults)()


def _tick(deps: Deps) -> None:
    """The tick, and the events it sends, delivered."""
    _delivered(deps, reconcile.handle(Event(POOL_CHECK, {}), deps))


def _created(kube: KubeStub, study: str) -> list[str]:
    """The Jobs of the study whose creation was asked for."""
    return sorted(name for namespace, name in kube.create_requests if namespace == "stops" and name.startswith(f"{study}-"))


def _jobs(kube: KubeStub, study: str) -> list[str]:
    return sorted(name for namespace, name in kube.jobs if namespace == "stops" and name.startswith(f"{study}-"))


def test_a_prune_killed_after_its_jobs_delete_stays_a_prune(world, tmp_path: Path):
    deps, kube = world
    store = deps.store
    uid = _started(deps, kube, "pruned", 1)
    record = store.get_study("pruned")
    token = trial_launch(record, store.get_trial("pruned", 0)).progress.token
    report = trial_progress("pruned", uid, 0, 1, 1, 100.0, token)
    _killed_at_the_delete(kube, tmp_path, report)
    assert _jobs(kube, "pruned") == [], "the API server deleted the trial's Job"
    _tick(deps)
    _delivered(deps, [report])
    _tick(deps)
    trial = store.get_trial("pruned", 0)
    assert (trial.state, trial.attempt) == (PRUNED, 1), trial.reason
    assert trial.reason.startswith("pruned at step 1 by the threshold rule")
    assert _created(kube, "pruned") == ["pruned-0"], "no Job made again"
    assert _jobs(kube, "pruned") == []


def test_a_stop_killed_after_its_jobs_delete_is_not_forgotten(world, tmp_path: Path):
    deps, kube = world
    store = deps.store
    uid = _started(deps, kube, "halted", 2)
    _killed_at_the_delete(kube, tmp_path, study_completed("halted", uid, "stopped", "stopped by user", 0))
    # The stop reads its trials' last lines in rounds and deletes each round's Jobs: on a loaded
    # machine the second trial's read may end in a later round, after the kill.
    assert len(_jobs(kube, "halted")) < 2, "the API server deleted a trial's Job before the kill"
    _tick(deps)
    _tick(deps)
    record = store.get_study("halted")
    assert (record.status, record.reason) == ("stopped", "stopped by user")
    assert [(t.state, t.attempt) for t in store.trials("halted")] == [(PRUNED, 1), (PRUNED, 1)]
    assert all(t.reason.startswith(STOPPED_AT_END) for t in store.trials("halted"))
    assert _created(kube, "halted") == ["halted-0", "halted-1"], "no Job made again"
    assert _jobs(kube, "halted") == []


def test_a_trial_timed_out_and_killed_after_its_jobs_delete_stays_failed(world, tmp_path: Path):
    """The end of a trial past its timeout is reported while its Job runs; the handler reads its
    output, stores the failure and deletes the Job: killed at that delete, the trial stays
    failed, not taken for a run lost and run again."""
    deps, kube = world
    store = deps.store
    definition = study_definition("late", maxTrials=1, parallelism=1)
    definition["trialTemplate"].update(image="python:3.12", timeout=1, command=[
        sys.executable, "-c", "import time; time.sleep(60)", "${trialParameters.x}"])
    record, _ = store_study(deps, parse_study(definition), definition)
    _delivered(deps, [study_created(record.name, record.uid)])
    late = eventually(lambda: deps.executor.poll(trial_launch(record, store.get_trial("late", 0))), "past its timeout")
    assert late.data["outcome"] == "timeout"
    _killed_at_the_delete(kube, tmp_path, late)
    assert _jobs(kube, "late") == []
    _tick(deps)
    _delivered(deps, [late])
    trial = store.get_trial("late", 0)
    assert (trial.state, trial.attempt) == ("FAIL", 1), trial.reason
    assert trial.reason.startswith("timed out")
    assert _created(kube, "late") == ["late-0"], "no Job made again"


def test_a_stop_the_cluster_refuses_is_made_by_the_tick_from_the_stored_verdict(world, tmp_path: Path):
    """The delete of a pruned trial's Job is refused for now: the prune stands, stored, and the
    Job runs on only until the next tick, which deletes it; later ticks ask nothing more."""
    deps, kube = world
    store = deps.store
    uid = _started(deps, kube, "refused", 1)
    record = store.get_study("refused")
    token = trial_launch(record, store.get_trial("refused", 0)).progress.token
    kube.faults.refuse("deletecollection", "jobs")
    _delivered(deps, [trial_progress("refused", uid, 0, 1, 1, 100.0, token)])
    assert store.get_trial("refused", 0).state == PRUNED
    assert _jobs(kube, "refused") == ["refused-0"], "the refused delete left the Job running"
    _tick(deps)
    assert _jobs(kube, "refused") == []
    deletes = len(kube.collection_deletes)
    _tick(deps)
    assert len(kube.collection_deletes) == deletes, "a stop made is not made again"
