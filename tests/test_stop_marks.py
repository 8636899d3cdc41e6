"""The tick stops the workloads of ended trials still marked to stop, a bounded number a tick:
marks whose stops keep failing (their namespace refused to katuna) starve no other study's,
and an older database gets the record of when each mark was taken (a real store, the real
Kubernetes client, the loopback API authorizing each request as the real one does)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import drop_stop_taken, study_definition
from kube_stub import KubeStub
from test_crash import CrashAfter

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.records import TrialRecord
from functions.core.validate import parse_study
from functions.handlers import Deps, stopping
from functions.handlers.submit import store_study

KUBE_NAMESPACES = ("marks",)


def marked(deps: Deps, name: str, trials: int, namespace: str | None = None) -> None:
    """A cluster study of ``trials`` pruned trials, each still marked to stop (its stop failed,
    or its process died after the verdict was stored)."""
    definition = study_definition(name=name, maxTrials=trials, parallelism=trials)
    definition["trialTemplate"]["image"] = "python:3.12"
    if namespace is not None:
        definition["kubernetes"] = {"namespace": namespace}
    store_study(deps, parse_study(definition), definition)
    with deps.store.transaction():
        for number in range(trials):
            deps.store.add_trial(TrialRecord(name, number, {"x": 0.5}, state="PRUNED", created_at=1.0,
                                             started_at=1.0, finished_at=2.0))
        deps.store.mark_stopping(name, list(range(trials)))


def test_marks_whose_stops_keep_failing_starve_no_other_studys(kube: KubeStub, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    """More marks than a tick takes are of a study in a namespace katuna may not use (the API
    answers 403 to each stop, for good), and sort first by name: the tick takes them, then,
    as each failed, the marks it has not taken yet, so the other study's Jobs are stopped at
    the second tick, and the refused ones are taken again after."""
    kube.add_namespace("refused", grant=False)
    monkeypatch.setattr(stopping, "MAX_MARKED", 2)
    store = SqliteStore(tmp_path / "katuna.db")
    deps = Deps(store, KubernetesExecutor(Cluster(namespace="marks"), api_client(kube.url)), time.time,
                runs_on="kubernetes")
    try:
        marked(deps, "aaa", 3, namespace="refused")
        marked(deps, "zzz", 1)
        taken = []
        for _ in range(3):
            taken.append(store.stopping_trials(2))
            stopping.finish_marked(deps)
        assert taken[:2] == [[("aaa", 0), ("aaa", 1)], [("aaa", 2), ("zzz", 0)]]
        assert store.stopping_trials(10, "zzz") == [], "the other study's stop went through"
        assert taken[2] == [("aaa", 0), ("aaa", 1)], "the refused marks taken again, in turn"
        assert store.stopping_trials(10, "aaa") == [("aaa", 0), ("aaa", 1), ("aaa", 2)]
    finally:
        store.close()


def test_an_unforeseen_error_of_one_studys_stop_ends_no_tick(kube: KubeStub, tmp_path: Path):
    """The first study's stop raises an error no one foresaw (here, right after its Jobs'
    delete): it is logged, its mark stays for the next tick, and the next study's workloads are
    stopped all the same; the tick itself goes on."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = KubernetesExecutor(Cluster(namespace="marks"), api_client(kube.url))
    deps = Deps(store, executor, time.time, runs_on="kubernetes")
    try:
        marked(deps, "bbb", 1)
        marked(deps, "ccc", 1)
        stopping.finish_marked(Deps(store, CrashAfter(executor, "stop_trials", 1), time.time, runs_on="kubernetes"))
        assert store.stopping_trials(10) == [("bbb", 0)]
        stopping.finish_marked(deps)
        assert store.stopping_trials(10) == []
    finally:
        store.close()


def test_an_older_databases_marks_are_taken_as_never_taken(tmp_path: Path):
    """A database from before the record of when each mark was taken gets it on opening: its
    marks are taken first, by study, and a mark taken goes behind one never taken."""
    old = SqliteStore(tmp_path / "old.db")
    deps = Deps(old, KubernetesExecutor(Cluster(namespace="marks"), api_client("http://127.0.0.1:9")), time.time,
                runs_on="kubernetes")
    marked(deps, "one", 2)
    drop_stop_taken(old.tables())
    old.db.execute("PRAGMA user_version = 38")
    old.close()
    store = SqliteStore(tmp_path / "old.db")
    try:
        assert store.stopping_trials(10) == [("one", 0), ("one", 1)]
        store.take_stopping([("one", 0)], 5.0)
        assert store.stopping_trials(10) == [("one", 1), ("one", 0)]
        store.mark_stopping("one", [0])
        assert store.stopping_trials(10) == [("one", 0), ("one", 1)], "marked again: not taken since"
    finally:
        store.close()


def _running_jobs(kube: KubeStub, name: str) -> list[str]:
    """The names of the study's trial Jobs the cluster holds, not being deleted."""
    from kubernetes import client

    batch = client.BatchV1Api(api_client(kube.url))
    return sorted(job.metadata.name for job in batch.list_namespaced_job("marks").items
                  if (job.metadata.labels or {}).get("katuna.dev/study") == name and not job.metadata.deletion_timestamp)


def _launched(deps: Deps, name: str) -> None:
    """A Job for each of the study's trials, as their launches made them (running still)."""
    from functions.core.launch import trial_launch

    record = deps.store.get_study(name)
    for trial in deps.store.trials(name):
        deps.executor.launch(trial_launch(record, trial))


def test_a_deletion_stops_every_marked_workload_however_many(kube: KubeStub, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    """A study with more marks than one round takes (its stops refused for a while) is stopped
    whole before its rows are deleted (``katuna delete``, ``DELETE /studies/NAME``): no Job of
    it runs on that no mark names any more."""
    monkeypatch.setattr(stopping, "MAX_MARKED", 2)
    store = SqliteStore(tmp_path / "katuna.db")
    deps = Deps(store, KubernetesExecutor(Cluster(namespace="marks"), api_client(kube.url)), time.time,
                runs_on="kubernetes")
    try:
        marked(deps, "many", 5)
        _launched(deps, "many")
        assert len(_running_jobs(kube, "many")) == 5
        stopping.stop_study_marked(deps, "many")
        assert store.stopping_trials(10, "many") == []
        assert _running_jobs(kube, "many") == []
    finally:
        store.close()


def test_a_retired_study_stops_every_marked_workload_however_many(kube: KubeStub, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    """A resource deleted and made again retires its study: every Job its marks name is
    stopped before the study is forgotten, however many more marks than one round takes."""
    from functions.core.resources import Origin, Ref

    monkeypatch.setattr(stopping, "MAX_MARKED", 2)
    store = SqliteStore(tmp_path / "katuna.db")
    deps = Deps(store, KubernetesExecutor(Cluster(namespace="marks"), api_client(kube.url)), time.time,
                runs_on="kubernetes")
    try:
        marked(deps, "again", 5)
        _launched(deps, "again")
        with store.transaction():
            stopping.retire(deps, store.get_study("again"), Origin(Ref("Study", "marks", "again"), "uid-1", 1))
        assert _running_jobs(kube, "again") == []
    finally:
        store.close()
