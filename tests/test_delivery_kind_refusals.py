"""At-least-once delivery of a study stored before ``KATUNA_TRIAL_KINDS`` lost its trial kind:
the trials that ran are read to their end, and the launch the end's handling refuses fails the
study at once, delivered once or twice; so does a trial's own launch. Through the real dispatcher, handlers, SQLite store and
Kubernetes executor on the stand-in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import study_definition
from kube_standin.workloads import Crd
from kube_stub import KubeStub

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.errors import ServiceBusy
from functions.core.events import STUDY_COMPLETED, study_created, trial_finished
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.submit import store_study

pytestmark = pytest.mark.slow

KUBE_NAMESPACES = ("kindless",)
KIND = ("example.com/v1", "BatchProcess")


def _dispatcher(store: SqliteStore, kube: KubeStub, kinds: tuple[tuple[str, str], ...]) -> Dispatcher:
    """A worker of a service whose ``KATUNA_TRIAL_KINDS`` are ``kinds``, running one trial at once."""
    executor = KubernetesExecutor(Cluster(namespace="kindless", trial_kinds=kinds), api_client(kube.url))
    return Dispatcher(Deps(store, executor, time.time, running_trials=1))


@dataclass(frozen=True)
class Stored:
    """A BatchProcess study stored by a service that runs the kind (``before``), in ``store``."""

    store: SqliteStore
    before: Dispatcher
    record: StudyRecord


@pytest.fixture
def stored(kube: KubeStub, tmp_path: Path) -> Iterator[Stored]:
    """A study of BatchProcess (:func:`_batch_processes`) stored by a service that runs the kind,
    in a store closed after the test."""
    definition = _batch_processes(kube)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        before = _dispatcher(store, kube, (KIND,))
        yield Stored(store, before, store_study(before.deps, parse_study(definition), definition)[0])
    finally:
        store.close()


def _batch_processes(kube: KubeStub) -> dict:
    """The stand-in serving BatchProcess, katuna's account allowed to make them: a study of that
    kind (its definition returned)."""
    with kube.lock:
        kube.crds[("example.com", "batchprocesses")] = Crd("example.com", ("v1",), "batchprocesses", "BatchProcess")
        kube.authorizer.objects += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "batch-processes", "namespace": "kindless"},
             "rules": [{"apiGroups": ["example.com"], "resources": ["batchprocesses"],
                        "verbs": ["create", "get", "list", "watch", "patch", "delete"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "batch-processes", "namespace": "kindless"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "batch-processes"},
             "subjects": [{"kind": "ServiceAccount", "name": "katuna", "namespace": "katuna"}]}]
    definition = study_definition(maxTrials=3, parallelism=2)
    definition["trialTemplate"] = {"trialSpec": {"apiVersion": KIND[0], "kind": KIND[1],
                                                 "spec": {"command": ["python", "-c", "print('loss=${trialParameters.x}')"]}},
                                   "successCondition": "status.done", "failureCondition": "status.broken"}
    return definition


def test_a_trials_end_whose_successors_kind_is_no_longer_run_is_stored_and_fails_the_study_once(
        kube: KubeStub, stored: Stored):
    """Trial 0 of a BatchProcess study runs, trial 1 waits for room; the service restarts without
    the kind. Trial 0's end starts trial 1 in its handling, whose launch is refused for the
    study's kind: the end is stored, trial 0 failing with its own reason, and the study fails
    naming the kind, in that one handling. Before, the refusal undid the handling, delivered
    again until the study failed for the count, and trial 0 was stopped as the study ended, its
    end never stored."""
    store, before, record = stored.store, stored.before, stored.record
    first, second = before.deliver(study_created("demo", record.uid))
    before.deliver(first)
    with pytest.raises(ServiceBusy):
        before.deliver(second)
    assert [(t.number, t.state) for t in store.trials("demo")] == [(0, "RUNNING"), (1, "WAITING")]

    after = _dispatcher(store, kube, ())
    end = trial_finished("demo", record.uid, 0, 1, "exited", exit_code=3, message="the process ended")
    emitted = after.deliver(end)
    assert [event.type for event in emitted] == [STUDY_COMPLETED]
    assert [event.id for event in after.deliver(end)] == [emitted[0].id], "delivered again, the same end"
    trial = store.get_trial("demo", 0)
    assert (trial.state, trial.reason.splitlines()[0]) == ("FAIL", "exited with code 3 (the process ended); last "
                                                                   "lines:"), "trial 0's own end is stored"
    study = store.get_study("demo")
    assert study.status == "failed" and "trialTemplate.trialSpec.kind" in study.reason, study.reason
    assert "failed 3 times" not in study.reason and "BatchProcess" in study.reason
    assert store.get_trial("demo", 1).state == "WAITING", "never launched"
    for _ in range(2):
        after.deliver(emitted[0])
    assert [(t.number, t.state) for t in store.trials("demo")] == [(0, "FAIL")], "the prepared trial discarded"
    with kube.lock:
        assert not [key for key in kube.workloads if key[1] == "kindless"], "no workload left"


def test_a_trials_own_launch_of_a_kind_no_longer_run_fails_the_study_at_once(kube: KubeStub, stored: Stored):
    """A BatchProcess study is asked its first trials; the service restarts without the kind
    before any is launched. The first trial's own ``trial.suggested`` is refused for the study's
    kind: the study fails at once, its reason naming the kind and the trial, as a launch in a
    trial's end does. Before, each delivery counted one failure, and the study failed only at the
    third, for the count. Delivered again, the handling changes nothing more."""
    store, before, record = stored.store, stored.before, stored.record
    first, _ = before.deliver(study_created("demo", record.uid))

    after = _dispatcher(store, kube, ())
    emitted = after.deliver(first)
    assert [event.type for event in emitted] == [STUDY_COMPLETED]
    study = store.get_study("demo")
    assert study.status == "failed", study.reason
    assert "trialTemplate.trialSpec.kind" in study.reason and "BatchProcess" in study.reason, study.reason
    assert "(trial 0's launch refused it)" in study.reason and "failed 1 times" not in study.reason, study.reason
    assert [event.id for event in after.deliver(first)] == [emitted[0].id], "delivered again, the same end"
    assert store.get_study("demo").reason == study.reason
    assert store.get_trial("demo", 0).state == "WAITING", "never launched"
    with kube.lock:
        assert not [key for key in kube.workloads if key[1] == "kindless"], "no workload made"
