"""Trial workloads that outlive their study on a cluster because the store no longer knows it
(a database lost, a backup restored over a newer state): each workload katuna creates carries
its installation's identity, and the tick stops those of its own whose study the store does not
hold once they are older than the grace, while another installation's, and an older katuna's
(unlabelled), are left. The real store, dispatcher and Kubernetes client over the stand-in, on
its simulated clock (the grace passes in an instant)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from conftest import study_definition
from kube_standin.containers import Run
from kube_standin.rbac import MANIFESTS
from kube_stub import KubeStub

from functions.adapters import kubernetes_orphans
from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import pool_check
from functions.core.installation import INSTALLATION_LABEL, identity, label_value
from functions.core.labels import valid_value
from functions.core.launch import TrialLaunch
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.submit import store_study

SIMULATED_RUN = Run(10 ** 6, "loss=0.5\n")
"""Trials that run for days: only a stop ends them."""

GRACE = 600.0


def _executor(kube: KubeStub, installation: str | None, namespace: str = "default") -> KubernetesExecutor:
    return KubernetesExecutor(Cluster(namespace=namespace), api_client(kube.url), clock=kube.clock.time,
                              installation=installation, orphan_grace=GRACE)


def _launch(executor: KubernetesExecutor, study: str, uid: str | None = None, namespace: str | None = None,
            trial_spec: dict | None = None) -> None:
    """Create the Job (or the workload of ``trial_spec``) of trial 0 of ``study``, as a launch does."""
    executor.launch(TrialLaunch(study, uid or str(uuid.uuid4()), 0, 1, f"{study}-0", ["python", "train.py"], {}, ".",
                                None, image="python:3.12", cluster=Cluster(namespace=namespace) if namespace else None,
                                trial_spec=trial_spec, primary_container="pytorch" if trial_spec else None))


def _tick(kube: KubeStub, store: SqliteStore, installation: str | None) -> None:
    Dispatcher(Deps(store, _executor(kube, installation), kube.clock.time, runs_on="kubernetes")).deliver(pool_check())


def _grant_jobs_everywhere(kube: KubeStub) -> None:
    """Bind the ``katuna-trials`` ClusterRole to katuna across namespaces (a ClusterRoleBinding)."""
    with kube.lock:
        kube.authorizer.objects.append({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "katuna-trials-everywhere"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "katuna-trials"},
            "subjects": [{"kind": "ServiceAccount", "name": "katuna", "namespace": "katuna"}]})


def _jobs(kube: KubeStub) -> set[tuple[str, str]]:
    with kube.lock:
        return set(kube.jobs)


def test_a_lost_databases_jobs_are_stopped_past_the_grace_and_no_others(simulated_kube: KubeStub, tmp_path: Path):
    """The database that launched ``lost`` is gone (an empty one in its place): its Job is
    deleted, with its pods, once older than the grace; one of another installation sharing the
    namespace, one an older katuna made (no label) and one of its own younger than the grace
    (its launch may not be committed yet) are left."""
    _launch(_executor(simulated_kube, "east"), "lost")
    _launch(_executor(simulated_kube, "west"), "theirs")
    _launch(_executor(simulated_kube, None), "older")
    simulated_kube.clock.now += GRACE + 1
    _launch(_executor(simulated_kube, "east"), "young")
    with simulated_kube.lock:
        assert simulated_kube.jobs[("default", "lost-0")]["metadata"]["labels"][INSTALLATION_LABEL] == "east"
        assert INSTALLATION_LABEL not in simulated_kube.jobs[("default", "older-0")]["metadata"]["labels"]
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        _tick(simulated_kube, store, "east")
        assert _jobs(simulated_kube) == {("default", "theirs-0"), ("default", "older-0"), ("default", "young-0")}
        assert ("default", "lost-0", "Background") in simulated_kube.deleted, "with its pods"
        simulated_kube.clock.now += GRACE
        _tick(simulated_kube, store, "east")
        assert _jobs(simulated_kube) == {("default", "theirs-0"), ("default", "older-0")}, "once past the grace"
    finally:
        store.close()


def test_a_restored_backups_study_of_another_uid_stops_its_namesakes_job_in_a_namespace_no_study_names(
        simulated_kube: KubeStub, tmp_path: Path):
    """A backup restored over a newer state holds ``demo`` under the uid it had before it was
    made again; the newer study's Job runs in a namespace no stored study names. Where katuna's
    grant lets it list Jobs across namespaces, the tick finds it by the installation's label and
    deletes it; the stored study's own Job is left."""
    simulated_kube.add_namespace("elsewhere")
    _grant_jobs_everywhere(simulated_kube)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        definition = study_definition(maxTrials=1, parallelism=1)
        definition["trialTemplate"]["image"] = "python:3.12"
        executor = _executor(simulated_kube, "east")
        record = store_study(Deps(store, executor, simulated_kube.clock.time), parse_study(definition), definition)[0]
        _launch(executor, "demo", record.uid)
        _launch(executor, "demo", namespace="elsewhere")
        simulated_kube.clock.now += GRACE + 1
        _tick(simulated_kube, store, "east")
        assert ("elsewhere", "demo-0") not in _jobs(simulated_kube), "the newer study's Job, found across namespaces"
        assert ("default", "demo-0") in _jobs(simulated_kube), "the stored study's own Job is left"
    finally:
        store.close()


def test_without_a_grant_across_namespaces_the_tick_stops_orphans_where_it_sweeps_and_asks_nothing_refused(
        simulated_kube: KubeStub, tmp_path: Path):
    """The default grant binds katuna's Role per namespace, and no trial-kinds component is
    applied: an access review says a list across namespaces, and a list of another kind, would
    be refused (403), so neither is asked, at this tick or the next, and orphans are stopped in
    the namespaces the tick sweeps."""
    _launch(_executor(simulated_kube, "east"), "lost")
    simulated_kube.clock.now += GRACE + 1
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        executor = _executor(simulated_kube, "east")
        deps = Deps(store, executor, simulated_kube.clock.time, runs_on="kubernetes")
        for _ in range(2):
            Dispatcher(deps).deliver(pool_check())
        assert ("default", "lost-0") not in _jobs(simulated_kube)
        assert simulated_kube.refused == [], "nothing RBAC refuses, which the audit log would keep"
    finally:
        store.close()


def test_a_granted_kind_the_api_does_not_serve_is_not_listed(simulated_kube: KubeStub, tmp_path: Path):
    """The JobSet component is applied (katuna may list JobSets) but JobSet is not installed:
    the API's discovery says it serves no such kind, so the tick asks no list it would answer
    404; Jobs are swept as ever."""
    with simulated_kube.lock:
        simulated_kube.authorizer.enable(MANIFESTS / "trial-kinds" / "jobset")
    _launch(_executor(simulated_kube, "east"), "lost")
    simulated_kube.clock.now += GRACE + 1
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        _tick(simulated_kube, store, "east")
        assert ("default", "lost-0") not in _jobs(simulated_kube)
        unserved = [request for request in simulated_kube.authorized if request.resource != "jobs"
                    and simulated_kube.served(request.group, request.resource) is None]
        assert unserved == [] and simulated_kube.refused == []
    finally:
        store.close()


def test_a_grant_across_namespaces_given_later_is_used_within_the_hour(simulated_kube: KubeStub, tmp_path: Path):
    """An access review's refusal is kept for :data:`REFUSED_FOR` seconds, then asked again: a
    ClusterRoleBinding given since lets the tick find an orphan in a namespace no study names."""
    simulated_kube.add_namespace("elsewhere")
    _launch(_executor(simulated_kube, "east"), "lost", namespace="elsewhere")
    simulated_kube.clock.now += GRACE + 1
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        deps = Deps(store, _executor(simulated_kube, "east"), simulated_kube.clock.time, runs_on="kubernetes")
        Dispatcher(deps).deliver(pool_check())
        _grant_jobs_everywhere(simulated_kube)
        Dispatcher(deps).deliver(pool_check())
        assert ("elsewhere", "lost-0") in _jobs(simulated_kube), "the refusal is kept"
        simulated_kube.clock.now += kubernetes_orphans.REFUSED_FOR
        Dispatcher(deps).deliver(pool_check())
        assert ("elsewhere", "lost-0") not in _jobs(simulated_kube)
        assert simulated_kube.refused == []
    finally:
        store.close()


def _pytorchjob() -> dict:
    container = {"name": "pytorch", "image": "python:3.12", "command": [sys.executable, "-c", "pass"]}
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [container]}}}}}}


def test_a_lost_databases_pytorchjob_is_deleted_though_no_stored_study_runs_one(simulated_kube: KubeStub,
                                                                               tmp_path: Path):
    """A workload of another trial kind is labelled too, and found by its kind's list although
    the empty store names no study of that kind; another installation's is left."""
    simulated_kube.install_operator("training-operator")
    _launch(_executor(simulated_kube, "east"), "torch", trial_spec=_pytorchjob())
    _launch(_executor(simulated_kube, "west"), "theirs", trial_spec=_pytorchjob())
    simulated_kube.clock.now += GRACE + 1
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        _tick(simulated_kube, store, "east")
        with simulated_kube.lock:
            kept = {name for (plural, _, name) in simulated_kube.workloads if plural == "pytorchjobs"}
        assert kept == {"theirs-0"}
    finally:
        store.close()


def test_one_tick_stops_a_bounded_number_of_orphans(simulated_kube: KubeStub, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(kubernetes_orphans, "ORPHANS_PER_SWEEP", 2)
    for name in ("a", "b", "c"):
        _launch(_executor(simulated_kube, "east"), name)
    simulated_kube.clock.now += GRACE + 1
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        _tick(simulated_kube, store, "east")
        assert len(_jobs(simulated_kube)) == 1, "two a tick"
        _tick(simulated_kube, store, "east")
        assert _jobs(simulated_kube) == set()
    finally:
        store.close()


@pytest.mark.parametrize("given, service, namespace, database, expected", [
    ("team-a", "katuna", "katuna", "/data/katuna.db", "team-a"),
    (None, "katuna", "ml", "/data/katuna.db", "ml.katuna"),
    (None, None, None, "/data/katuna.db", "laptop-data-katuna.db-" + label_value("laptop:/data/katuna.db")[-16:]),
])
def test_the_installations_identity_is_a_label_value_that_outlives_the_database(given, service, namespace,
                                                                               database, expected):
    assert identity(given, service, namespace, database, "laptop") == expected


def test_two_machines_with_one_database_path_are_two_installations():
    """Notebook servers in one namespace all keep ``/home/jovyan/katuna.db``: neither may take
    the other's running trials for orphans of its own."""
    first, second = (identity(None, None, None, "/home/jovyan/katuna.db", host) for host in ("nb-alice-0", "nb-bob-0"))
    assert first != second and all(valid_value(value) for value in (first, second))


def test_a_long_identity_is_cut_and_told_apart_by_a_digest():
    first, second = label_value("n" * 63 + ".a"), label_value("n" * 63 + ".b")
    assert first != second and len(first) <= 63 and len(second) <= 63
