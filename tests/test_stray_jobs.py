"""Trial Jobs that run while the store no longer wants them: a create the API server answered
504 (its request timed out) stores its Job after the answer, when the study may have ended and
the trial been discarded, so nothing else would ever stop it. The tick (the PingSource's, and
the watcher's in queue mode) finds such Jobs by their labels and stops them. Real dispatcher,
handlers and SQLite store over the Kubernetes stand-in."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import study_definition
from kube_stub import KubeStub

from functions.adapters.broker import MemoryQueue
from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.errors import TemporaryError
from functions.core.events import pool_check, study_completed, study_created
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.submit import store_study
from functions.watch import Watcher

pytestmark = pytest.mark.slow

KUBE_NAMESPACES = ("late-tick", "late-watch", "late-kept", "late-wanted")


def _deps(kube: KubeStub, tmp_path: Path, namespace: str) -> Deps:
    store = SqliteStore(tmp_path / "katuna.db")
    return Deps(store, KubernetesExecutor(Cluster(namespace=namespace), api_client(kube.url)), time.time)


def _ended_before_its_job_landed(kube: KubeStub, deps: Deps, retain: bool = False) -> None:
    """Trial 0's create answered 504, the study stopped (the trial, with no Job yet, discarded),
    then the Job stored."""
    definition = study_definition(maxTrials=2, parallelism=1)
    definition["trialTemplate"].update(image="python:3.12", retain=retain)
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
