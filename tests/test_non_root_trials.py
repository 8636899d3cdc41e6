"""Studies of an image alone in a namespace that enforces Kubernetes' *restricted* Pod Security
Standard, on the stand-in's simulated clock through the real client. With
``KATUNA_TRIAL_POD_SECURITY=restricted`` the namespace admits katuna's trial pods, which ask the
kubelet for ``runAsNonRoot``: an image with a numeric non-root ``USER`` runs, as does a root
image given ``kubernetes.runAsUser``; one that would run as root (its ``USER`` unset, 0, or a
name the kubelet cannot tell from root) can never start, so its trial fails at once (no wait for
the start allowance, no retry as if preempted), saying how to give the image a user, and a study
whose every trial meets it stops after 3. Left at the baseline, katuna's pods are refused by the
namespace, and the reasons say which setting makes them meet it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import study_definition
from kube_standin.admission import ENFORCE
from kube_stub import KubeStub
from test_missing_objects import deliver
from test_refused_pods import refused
from test_trial_pods import ALLOWANCE, pods_of, waiting

from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import study_created
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.starting import look
from functions.handlers.submit import store_study

TRAINER = "registry.example.com/team/trainer:v3"


def _started(kube: KubeStub, tmp_path: Path, name: str, trials: int = 1, level: str = "restricted",
             kubernetes: dict | None = None) -> tuple[SqliteStore, Deps, StudyRecord, Dispatcher]:
    """A study of ``trials`` trials of :data:`TRAINER`, one at a time, in ``katuna`` (which
    enforces restricted), stored and started by a service at the Pod Security ``level``."""
    kube.label_namespace("katuna", {ENFORCE: "restricted"})
    store = SqliteStore(tmp_path / "katuna.db")
    defaults = Cluster(namespace="katuna", start_allowance=ALLOWANCE, pod_security=level)
    executor = KubernetesExecutor(defaults, kube.api_client(), clock=kube.clock.time)
    deps = Deps(store, executor, kube.clock.time, trial_defaults=defaults, admissions=executor)
    definition = study_definition(name, maxTrials=trials, parallelism=1)
    definition["trialTemplate"]["image"] = TRAINER
    if kubernetes:
        definition["kubernetes"] = kubernetes
    record, _ = store_study(deps, parse_study(definition), definition)
    dispatcher = Dispatcher(deps)
    for suggested in dispatcher.deliver(study_created(name, record.uid)):
        dispatcher.deliver(suggested)
    return store, deps, record, dispatcher


@pytest.mark.parametrize(("user", "kubernetes"), [("10001", None), ("", {"runAsUser": 10001}),
                                                  ("trainer", {"runAsUser": 10001})])
def test_an_image_the_kubelet_can_tell_runs_as_non_root_runs_its_trial(simulated_kube: KubeStub, tmp_path: Path,
                                                                       user: str, kubernetes: dict | None):
    simulated_kube.kubelets.image_users[TRAINER] = user
    store, deps, record, dispatcher = _started(simulated_kube, tmp_path, "nonroot", kubernetes=kubernetes)
    try:
        simulated_kube.run_until(lambda: pods_of(simulated_kube, "nonroot-0")
                                 and pods_of(simulated_kube, "nonroot-0")[0]["status"]["phase"] == "Succeeded")
        ended = look(record, store.get_trial("nonroot", 0), deps)
        assert ended is not None and ended.data["outcome"] == "exited"
        deliver(dispatcher, ended)
        assert (store.get_trial("nonroot", 0).state, store.get_study("nonroot").status) == ("COMPLETE", "completed")
    finally:
        store.close()


def _held(kube: KubeStub, job: str) -> Callable[[], bool]:
    return lambda: bool(pods_of(kube, job)) and (waiting(pods_of(kube, job)[0]) or {}).get("reason") == \
        "CreateContainerConfigError"


RUNS_AS = {
    "root": ("", "root", "image will run as root"),
    "a name": ("trainer", 'the user name "trainer", which the kubelet cannot tell from root',
               "image has non-numeric user (trainer), cannot verify user is non-root"),
}


@pytest.mark.parametrize(("user", "runs_as", "kubelet"), RUNS_AS.values(), ids=RUNS_AS.keys())
def test_a_trial_whose_image_would_run_as_root_fails_at_once_saying_how_to_give_it_a_user(
        simulated_kube: KubeStub, tmp_path: Path, user: str, runs_as: str, kubelet: str):
    simulated_kube.kubelets.image_users[TRAINER] = user
    store, deps, record, dispatcher = _started(simulated_kube, tmp_path, "root", trials=5)
    try:
        for number in range(3):
            simulated_kube.run_until(_held(simulated_kube, f"root-{number}"))
            ended = look(record, store.get_trial("root", number), deps)
            assert ended is not None and ended.data["outcome"] == "error", "no wait for the start allowance"
            deliver(dispatcher, ended)
        assert simulated_kube.clock.now - simulated_kube.clock.start < ALLOWANCE
        cause = f'image "{TRAINER}" runs as {runs_as}, which runAsNonRoot forbids'
        trial = store.get_trial("root", 0)
        assert trial.state == "FAIL" and trial.reason.startswith(f"could not start: {cause}; its pod root-0-")
        assert f": container trial: CreateContainerConfigError: container has runAsNonRoot and {kubelet} (pod: " in \
            trial.reason
        assert trial.reason.endswith(
            "the kubelet cannot tell the image's user is not root at any try, so no retry can change it: build the "
            "image with a numeric USER other than 0 (USER 10001), or give the user id to run it as "
            "(kubernetes.runAsUser, or runAsUser in a trialSpec's securityContext)")
        study = store.get_study("root")
        assert (study.status, [t.state for t in store.trials("root")]) == ("failed", ["FAIL"] * 3)
        assert study.reason == (
            f"every trial could not start: {cause} (3 trials); every later trial would meet the same, so the study "
            "stops. Build the image with a numeric USER other than 0 (USER 10001 in its Dockerfile), or give the "
            "user id to run it as (kubernetes.runAsUser), "
            "then delete this study and submit it again (submitted again as it is, a failed study stays failed)")
    finally:
        store.close()


def test_left_at_the_baseline_katunas_pods_are_refused_and_the_reasons_name_the_setting(simulated_kube: KubeStub,
                                                                                       tmp_path: Path):
    simulated_kube.kubelets.image_users[TRAINER] = "10001"
    store, deps, record, dispatcher = _started(simulated_kube, tmp_path, "level", trials=5, level="baseline")
    try:
        for number in range(3):
            simulated_kube.run_until(refused(simulated_kube, f"level-{number}"))
            ended = look(record, store.get_trial("level", number), deps)
            assert ended is not None and ended.data["outcome"] == "error"
            deliver(dispatcher, ended)
        trial = store.get_trial("level", 0)
        assert trial.reason.startswith('could not start: violates PodSecurity "restricted:latest": runAsNonRoot != true')
        assert trial.reason.endswith("where the namespace enforces restricted, the operator's "
                                     "KATUNA_TRIAL_POD_SECURITY=restricted has katuna's own trial pods meet it "
                                     "(runAsNonRoot) and checks a trialSpec against it at submission")
        study = store.get_study("level")
        assert study.status == "failed" and study.reason.endswith(
            "(for restricted, the operator's KATUNA_TRIAL_POD_SECURITY=restricted has katuna's own trial pods meet "
            "it), then delete this study and submit it again (submitted again as it is, a failed study stays failed)")
    finally:
        store.close()
