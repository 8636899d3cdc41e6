"""Trial Jobs, and workloads of other kinds, that run while the store no longer wants them: a
create the API server answered 504 (its request timed out) stores its object after the answer,
when the study may have ended and the trial been discarded, so nothing else would ever stop it.
The tick (the PingSource's, and the watcher's in queue mode) finds them by their labels and
stops them. Real dispatcher, handlers and SQLite store over the Kubernetes stand-in."""

from __future__ import annotations

import copy
import sys
import time
import tracemalloc
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import study_definition
from kube_stub import KubeStub
from kubernetes import client
from waiting import eventually

from functions.adapters.broker import MemoryQueue
from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.kubernetes_resources import LIST_PAGE
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import TRIAL_LABEL, Cluster
from functions.core.errors import TemporaryError
from functions.core.events import pool_check, study_completed, study_created
from functions.core.job import render_job
from functions.core.launch import TrialLaunch
from functions.core.ports import Place
from functions.core.validate import parse_study
from functions.core.workload_labels import labels
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.strays import Wanted
from functions.handlers.submit import store_study
from functions.watch import Watcher

pytestmark = pytest.mark.slow

KUBE_NAMESPACES = ("late-tick", "late-watch", "late-kept", "late-wanted", "late-torch", "late-ended", "late-listed",
                   "late-home", "late-unread")


def _deps(kube: KubeStub, tmp_path: Path, namespace: str) -> Deps:
    store = SqliteStore(tmp_path / "katuna.db")
    return Deps(store, KubernetesExecutor(Cluster(namespace=namespace), api_client(kube.url)), time.time)


def _ended_before_its_job_landed(kube: KubeStub, deps: Deps, retain: bool = False, trial_spec: dict | None = None,
                                 namespace: str | None = None) -> None:
    """Trial 0's create answered 504, the study stopped (the trial, with no Job yet, discarded),
    then the Job (or the workload of ``trial_spec``'s kind) stored (in ``namespace``, where given)."""
    definition = study_definition(maxTrials=2, parallelism=1)
    definition["trialTemplate"].update(image="python:3.12", retain=retain)
    if namespace is not None:
        definition["kubernetes"] = {"namespace": namespace}
    if trial_spec is not None:
        definition["trialTemplate"] = {"trialSpec": trial_spec, "primaryContainerName": "pytorch", "retain": retain}
    record = store_study(deps, parse_study(definition), definition)[0]
    dispatcher = Dispatcher(deps)
    [suggested] = dispatcher.deliver(study_created("demo", record.uid))
    kube.late_creates.add("demo-0")
    with pytest.raises(TemporaryError, match="504"):
        dispatcher.deliver(suggested)
    dispatcher.deliver(study_completed("demo", record.uid, "stopped", "stopped by its user"))
    assert deps.store.trials("demo") == [], "the trial, never started and with no Job, is discarded"
    kube.land_late_creates()


def _job(kube: KubeStub, namespace: str) -> dict | None:
    with kube.lock:
        return kube.jobs.get((namespace, "demo-0"))


def test_a_job_stored_after_its_create_timed_out_and_its_study_ended_is_deleted_at_the_next_tick(
        kube: KubeStub, tmp_path: Path):
    deps = _deps(kube, tmp_path, "late-tick")
    try:
        _ended_before_its_job_landed(kube, deps)
        assert _job(kube, "late-tick") is not None, "the API server stored the Job after answering 504"
        Dispatcher(deps).deliver(pool_check())
        assert _job(kube, "late-tick") is None, "the tick deleted the Job nobody wants"
        assert ("late-tick", "demo-0", "Background") in kube.deleted, "with its pods"
    finally:
        deps.store.close()


def test_the_watcher_deletes_a_job_stored_after_its_study_ended(kube: KubeStub, tmp_path: Path):
    deps = _deps(kube, tmp_path, "late-watch")
    try:
        _ended_before_its_job_landed(kube, deps)
        Watcher(deps, MemoryQueue(), deps.store.list_studies).tick()
        assert _job(kube, "late-watch") is None
    finally:
        deps.store.close()


def test_a_retained_studys_job_stored_after_its_end_is_suspended_and_kept(kube: KubeStub, tmp_path: Path):
    deps = _deps(kube, tmp_path, "late-kept")
    try:
        _ended_before_its_job_landed(kube, deps, retain=True)
        Dispatcher(deps).deliver(pool_check())
        job = _job(kube, "late-kept")
        assert job is not None and job["spec"]["suspend"] is True, "kept, as retain keeps a stopped trial's Job"
    finally:
        deps.store.close()


def test_an_ended_study_whose_spec_cannot_be_rebuilt_has_its_stray_job_deleted_in_its_own_namespace(
        kube: KubeStub, tmp_path: Path):
    """The tick's sweep reads every stored study in brief, no spec rebuilt
    (:mod:`functions.core.study_brief`): a study whose stored spec a later katuna wrote, or that
    was damaged, neither breaks the tick nor hides the namespace its trials ran in."""
    deps = _deps(kube, tmp_path, "late-home")
    try:
        _ended_before_its_job_landed(kube, deps, namespace="late-unread")
        stored = deps.store.get_study("demo")
        deps.store.update_study("demo", spec=replace(stored.spec, parallelism="three"))
        assert deps.store.get_study("demo").spec.objectives == (), "its spec cannot be rebuilt"
        Dispatcher(deps).deliver(pool_check())
        assert _job(kube, "late-unread") is None, "the tick deleted the Job nobody wants, in the study's namespace"
        assert ("late-unread", "demo-0", "Background") in kube.deleted
    finally:
        deps.store.close()


def test_the_tick_leaves_the_jobs_of_running_trials_and_of_studies_it_does_not_hold(kube: KubeStub,
                                                                                     tmp_path: Path):
    deps = _deps(kube, tmp_path, "late-wanted")
    try:
        definition = study_definition(maxTrials=2, parallelism=1)
        definition["trialTemplate"]["image"] = "python:3.12"
        record = store_study(deps, parse_study(definition), definition)[0]
        dispatcher = Dispatcher(deps)
        [suggested] = dispatcher.deliver(study_created("demo", record.uid))
        dispatcher.deliver(suggested)
        other = study_definition(name="elsewhere", maxTrials=1, parallelism=1)
        other["trialTemplate"]["image"] = "python:3.12"
        other_store = SqliteStore(tmp_path / "other.db")
        elsewhere = Deps(other_store, deps.executor, time.time)
        stored = store_study(elsewhere, parse_study(other), other)[0]
        [launch] = Dispatcher(elsewhere).deliver(study_created("elsewhere", stored.uid))
        Dispatcher(elsewhere).deliver(launch)
        other_store.close()
        dispatcher.deliver(pool_check())
        with kube.lock:
            assert {("late-wanted", "demo-0"), ("late-wanted", "elsewhere-0")} <= set(kube.jobs), \
                "a running trial's Job, and one of a study another store holds, are left"
    finally:
        deps.store.close()


def _pytorchjob(master: str) -> dict:
    """A PyTorchJob whose master runs ``master`` (Python) beside a worker that waits."""
    def replica(code: str) -> dict:
        container = {"name": "pytorch", "image": "python:3.12", "command": [sys.executable, "-c", code]}
        return {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [container]}}}
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": replica(master + "  # ${trialParameters.x}"), "Worker": replica("import time; time.sleep(600)")}}}


def _pytorchjob_of(kube: KubeStub, namespace: str) -> dict | None:
    with kube.lock:
        return kube.workloads.get(("pytorchjobs", namespace, "demo-0"))


@pytest.mark.parametrize("retain", [False, True])
def test_a_pytorchjob_stored_after_its_study_ended_is_deleted_with_its_pods_at_the_next_tick(
        kube: KubeStub, tmp_path: Path, retain: bool):
    """A workload of another kind than Job is found by its labels as a Job is, and deleted as a
    stopped trial's is (``retain`` keeps Jobs only), its pods with it."""
    kube.install_operator("training-operator")
    deps = _deps(kube, tmp_path, "late-torch")
    try:
        _ended_before_its_job_landed(kube, deps, retain, _pytorchjob("import time; time.sleep(600)"))
        assert _pytorchjob_of(kube, "late-torch") is not None, "stored after the 504"
        eventually(lambda: _pods_of(kube, "late-torch"), "its operator made its pods")
        Dispatcher(deps).deliver(pool_check())
        assert _pytorchjob_of(kube, "late-torch") is None, "the tick deleted the workload nobody wants"
        assert ("late-torch", "demo-0", "Background") in kube.deleted, "with its pods"
        eventually(lambda: _pods_of(kube, "late-torch") == [], "its pods go once their containers stopped")
    finally:
        deps.store.close()


def test_a_pytorchjob_of_an_ended_study_that_ended_itself_is_left(kube: KubeStub, tmp_path: Path):
    kube.install_operator("training-operator")
    deps = _deps(kube, tmp_path, "late-ended")
    try:
        _ended_before_its_job_landed(kube, deps, trial_spec=_pytorchjob("print('loss=0.5')"))
        eventually(lambda: any(c["type"] == "Succeeded" for c in
                               ((_pytorchjob_of(kube, "late-ended") or {}).get("status") or {}).get("conditions", [])),
                   "the PyTorchJob succeeded")
        Dispatcher(deps).deliver(pool_check())
        assert _pytorchjob_of(kube, "late-ended") is not None, "a workload that ended is left, as a finished Job is"
    finally:
        deps.store.close()


def _pods_of(kube: KubeStub, namespace: str) -> list[str]:
    with kube.lock:
        return [name for (ns, name) in kube.pods if ns == namespace]


def test_a_kind_katuna_may_not_list_is_logged_and_the_other_kinds_are_swept(kube: KubeStub, tmp_path: Path, caplog):
    kube.install_operator("training-operator")
    deps = _deps(kube, tmp_path, "late-listed")
    try:
        _ended_before_its_job_landed(kube, deps, trial_spec=_pytorchjob("import time; time.sleep(600)"))
        other = study_definition(name="sets", maxTrials=1, parallelism=1)
        other["trialTemplate"] = {"trialSpec": {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {
            "replicatedJobs": [{"name": "node", "template": {"spec": {"template": {"spec": {"containers": [
                {"name": "trial", "image": "python:3.12", "command": ["train", "${trialParameters.x}"]}]}}}}}]}}}
        store_study(deps, parse_study(other), other)
        Dispatcher(deps).deliver(pool_check())
        assert _pytorchjob_of(kube, "late-listed") is None, "the PyTorchJob was swept though JobSets could not be listed"
        assert "stopping the jobsets.jobset.x-k8s.io no study wants in namespace late-listed" in caplog.text
    finally:
        deps.store.close()


def _finished_jobs(kube: KubeStub, namespace: str, study: str, uid: str, count: int) -> None:
    """``count`` finished Jobs of ``study`` (``uid``) in ``namespace``, as ``retain`` keeps a long
    study's: rendered as katuna renders a trial's Job, stored as the Job controller leaves them."""
    launch = TrialLaunch(study, uid, 0, 1, f"{study}-0", ["python", "train.py", "--lr=${trialParameters.lr}"],
                         {"DATA": "/data"}, ".", None, image="python:3.12")
    job = render_job(launch, Cluster(namespace=namespace))
    job["metadata"]["namespace"] = namespace
    kube.keep_completed_jobs(job, count, TRIAL_LABEL)


def _sweep_peak(deps: Deps, place: Place) -> int:
    """The most memory (bytes, as :mod:`tracemalloc` counts it) a sweep of ``place`` held."""
    tracemalloc.start()
    try:
        deps.executor.stop_strays(Wanted(deps.store), [place])
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_sweep_over_many_kept_jobs_holds_one_page_of_them_at_a_time(simulated_kube: KubeStub, tmp_path: Path):
    """A ``retain`` study of thousands of trials keeps a Job for each; the tick's sweep lists
    them all every minute (:data:`LIST_PAGE` at a time) but keeps only those still running, so
    its memory is a page's however many Jobs are kept, and a stray on the last page is stopped."""
    deps = _deps(simulated_kube, tmp_path, "default")
    try:
        definition = study_definition(maxTrials=100_000, parallelism=1)
        definition["trialTemplate"].update(image="python:3.12", retain=True)
        record = store_study(deps, parse_study(definition), definition)[0]
        _finished_jobs(simulated_kube, "default", "demo", record.uid, LIST_PAGE)
        one_page = _sweep_peak(deps, Place("default", None))
        _finished_jobs(simulated_kube, "default", "demo", record.uid, 4 * LIST_PAGE)
        stray = render_job(TrialLaunch("demo", "an-earlier-uid", 99_999, 1, "demo-99999", ["python"], {}, ".", None,
                                       image="python:3.12"), Cluster(namespace="default"))
        client.BatchV1Api(api_client(simulated_kube.url)).create_namespaced_job("default", stray)
        four_pages = _sweep_peak(deps, Place("default", None))
        assert _job_named(simulated_kube, "default", "demo-99999") is None, "the running stray was deleted"
        assert four_pages < 1.5 * one_page, f"{four_pages} bytes for four pages of Jobs, {one_page} for one"
    finally:
        deps.store.close()


def _job_named(kube: KubeStub, namespace: str, name: str) -> dict | None:
    with kube.lock:
        return kube.jobs.get((namespace, name))


def _finished_pytorchjobs(kube: KubeStub, study: str, uid: str, count: int) -> None:
    """``count`` PyTorchJobs of ``study`` (``uid``) in ``default`` that succeeded, labelled as
    katuna labels a trial's workload, as ``retain`` keeps them."""
    spec = _pytorchjob("print('loss=0.5')")
    stamp = kube.clock.stamp()
    with kube.lock:
        for number in range(count):
            launch = TrialLaunch(study, uid, number, 1, f"{study}-{number}", [], {}, ".", None, trial_spec=spec)
            kube.workloads[("pytorchjobs", "default", launch.job_name)] = {
                **copy.deepcopy(spec), "metadata": {"name": launch.job_name, "namespace": "default",
                                                    "uid": str(uuid.uuid4()), "labels": labels(launch),
                                                    "creationTimestamp": stamp},
                "status": {"conditions": [{"type": "Succeeded", "status": "True", "reason": "PyTorchJobSucceeded",
                                           "lastTransitionTime": stamp}]}}


def test_a_sweep_and_a_drop_of_many_kept_workloads_of_another_kind_read_them_a_page_at_a_time(
        simulated_kube: KubeStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A ``retain`` study's PyTorchJobs, thousands of them, are read :data:`LIST_PAGE` at a time,
    never in one answer of them all: by the tick's sweep, which keeps only the strays (its
    memory a page's however many are kept), and by the delete of the study's resource, which
    deletes them all."""
    simulated_kube.install_operator("training-operator")
    deps = _deps(simulated_kube, tmp_path, "default")
    try:
        definition = study_definition(maxTrials=100_000, parallelism=1)
        spec = _pytorchjob("print('loss=0.5')")
        definition["trialTemplate"] = {"trialSpec": spec, "primaryContainerName": "pytorch", "retain": True}
        record = store_study(deps, parse_study(definition), definition)[0]
        place = Place("default", record.spec.trial_template.trial_spec)
        _finished_pytorchjobs(simulated_kube, "demo", record.uid, LIST_PAGE)
        one_page = _sweep_peak(deps, place)
        _finished_pytorchjobs(simulated_kube, "demo", record.uid, 4 * LIST_PAGE)
        four_pages = _sweep_peak(deps, place)
        assert four_pages < 1.5 * one_page, f"{four_pages} bytes for four pages of PyTorchJobs, {one_page} for one"
        with simulated_kube.lock:
            kept = sorted(key for key in simulated_kube.workloads if key[0] == "pytorchjobs")
            for key in kept[LIST_PAGE + 1:]:
                del simulated_kube.workloads[key]
        serve, limits = simulated_kube.serve, []
        monkeypatch.setattr(simulated_kube, "serve", lambda call: (
            limits.append(call.query.get("limit")) if call.method == "GET" else None) or serve(call))
        deps.executor.drop_kept("demo", record.uid, place)
        with simulated_kube.lock:
            assert not [key for key in simulated_kube.workloads if key[0] == "pytorchjobs"], "every one deleted"
        assert limits and set(limits) == {str(LIST_PAGE)}, limits
    finally:
        deps.store.close()

