"""Trials under a namespace's ResourceQuota sums and LimitRanges, on the stand-in's simulated
clock through the real client. A pod that asks for more than the quota allows in all can never
be made, so its trial fails at once and the study stops after 3, naming the quota; a pod the
quota has no room for now waits, saying which quota, and runs once a pod holding it ends. A pod a
LimitRange refuses fails at once, in LimitRanger's words; katuna's own checkpoint containers ask
for what the LimitRange allows."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import study_definition
from kube_stub import KubeStub
from kubernetes import client
from test_missing_objects import started
from test_pbt_cluster import VOLUME_OF
from test_pbt_quota import asking_pbt
from test_refused_pods import refused, three_refused
from test_trial_pods import ALLOWANCE, executor_of, pods_of

from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.kubernetes_limit_ranges import LimitRanges
from functions.adapters.sqlite_store import SqliteStore
from functions.core.checkpoint_drop import CONTAINER, drop_job
from functions.core.checkpoint_volume import CheckpointVolume
from functions.core.cluster import Cluster
from functions.core.errors import QuotaFull
from functions.core.events import study_created
from functions.core.katib import from_experiment
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.starting import look
from functions.handlers.submit import store_study

ASKING = {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}


def test_a_trial_asking_for_more_than_its_namespace_quota_allows_in_all_fails_at_once_and_the_study_stops(
        simulated_kube: KubeStub, tmp_path: Path):
    """``requests.cpu: 1`` in all, each trial asking for 2: no pod's end ever makes room, so the
    trial fails at once (not after the start allowance), naming the quota and the amounts, and
    the third such trial stops the study, saying what to change."""
    simulated_kube.set_quota("katuna", {"requests.cpu": "1", "requests.memory": "8Gi"})
    begun = started(simulated_kube, tmp_path, "large", trials=5, resources=ASKING)
    store = begun[0]
    cause = ('ResourceQuota "trial-quota" of namespace "katuna" allows less in all than the pod asks for: '
             "requests.cpu=2 of requests.cpu=1")
    try:
        assert [end.data["cause"] for end in three_refused(simulated_kube, begun, "large")] == [cause] * 3
        assert store.get_trial("large", 0).reason.startswith(
            f"could not start: {cause}; its Job's pod: the API server refuses to create it: exceeded quota: "
            "trial-quota, requested: requests.cpu=2, used: requests.cpu=0, limited: requests.cpu=1")
        study = store.get_study("large")
        assert (study.status, [t.state for t in store.trials("large")]) == ("failed", ["FAIL"] * 3)
        assert study.reason.startswith(
            f"every trial could not start: {cause} (3 trials); every later trial would meet the same, so the study "
            "stops. Ask for no more than the quota allows in all (each container's resources in the trialSpec's pod "
            "template), or have its hard limits raised (kubectl describe resourcequota trial-quota -n katuna)")
    finally:
        store.close()


def test_a_trial_waiting_for_room_in_its_quota_says_so_and_runs_once_a_pod_holding_it_ends(
        simulated_kube: KubeStub, tmp_path: Path):
    """Another Job's pod holds the quota's 2 cpu: the trial's pod is refused for now, the trial
    waits naming the quota (no failure), and its pod is made once the other pod ended."""
    simulated_kube.set_quota("katuna", {"requests.cpu": "2", "requests.memory": "8Gi"})
    holder = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "holder"}, "spec": {
        "backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "trial", "image": "python:3.12", "command": ["true"], "resources": ASKING}]}}}}
    client.BatchV1Api(simulated_kube.api_client()).create_namespaced_job("katuna", holder)
    simulated_kube.run_until(lambda: pods_of(simulated_kube, "holder"))
    store, deps, record, _ = started(simulated_kube, tmp_path, "room", trials=1, resources=ASKING)
    try:
        simulated_kube.run_until(refused(simulated_kube, "room-0"))
        assert look(record, store.get_trial("room", 0), deps) is None, "it waits for room"
        trial = store.get_trial("room", 0)
        assert trial.state == "RUNNING" and trial.reason.startswith(
            "waiting: its Job's pod cannot start: the API server refuses to create it: exceeded quota: trial-quota, "
            "requested: requests.cpu=2, used: requests.cpu=2, limited: requests.cpu=2")
        simulated_kube.run_until(lambda: pods_of(simulated_kube, "room-0"))
        assert simulated_kube.quota_used("katuna")["requests.cpu"] == "2"
        assert look(record, store.get_trial("room", 0), deps) is None
        assert store.get_trial("room", 0).state == "RUNNING"
    finally:
        store.close()


def test_a_trial_whose_container_a_limit_range_refuses_fails_at_once_in_its_words(simulated_kube: KubeStub,
                                                                                   tmp_path: Path):
    """A LimitRange allowing at most 1 cpu per container refuses every pod of a template asking
    for 2: the trial fails at once, quoting LimitRanger, and the study stops after 3."""
    simulated_kube.set_limit_range("katuna", "bounds", [{"type": "Container", "max": {"cpu": "1"}}])
    begun = started(simulated_kube, tmp_path, "bounded", trials=5, resources=ASKING)
    store = begun[0]
    cause = ('a LimitRange of namespace "katuna" refuses the pod: maximum cpu usage per Container is 1, but limit '
             "is 2")
    try:
        assert [end.data["cause"] for end in three_refused(simulated_kube, begun, "bounded")] == [cause] * 3
        study = store.get_study("bounded")
        assert study.status == "failed" and study.reason.startswith(
            f"every trial could not start: {cause} (3 trials); every later trial would meet the same, so the study "
            "stops. Ask for requests and limits within the LimitRange's bounds (each container's resources in the "
            "trialSpec's pod template: kubectl describe limitrange -n katuna shows them)")
    finally:
        store.close()


def test_katunas_own_containers_ask_for_what_the_namespaces_limit_ranges_allow(simulated_kube: KubeStub):
    """A LimitRange of at most 250m cpu per container, a cpu limit at most twice its request, and
    at least 192Mi of memory: the checkpoint-drop Job's container (100m/128Mi, up to 500m/256Mi)
    is fitted into it, and the API server makes its pod; without the fitting it would refuse it."""
    simulated_kube.add_namespace("ranged")
    simulated_kube.set_limit_range("ranged", "bounds", [
        {"type": "Container", "max": {"cpu": "250m"}, "min": {"memory": "192Mi"},
         "maxLimitRequestRatio": {"cpu": "2"}}])
    job = drop_job(CheckpointVolume("claim", "katuna:latest", 1), "0f0e", {}, "baseline", None)
    LimitRanges(simulated_kube.api_client()).fit("ranged", job, [CONTAINER], alone=True)
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "125m", "memory": "192Mi"}, "limits": {"cpu": "250m", "memory": "256Mi"}}
    job["spec"]["template"]["spec"]["volumes"] = []
    job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = []
    client.BatchV1Api(simulated_kube.api_client()).create_namespaced_job("ranged", job)
    simulated_kube.run_until(lambda: pods_of(simulated_kube, job["metadata"]["name"])
                             or simulated_kube.events_of("Job", job["metadata"]["name"]))
    assert not simulated_kube.events_of("Job", job["metadata"]["name"])


def test_a_pbt_trials_checkpoint_init_container_asks_for_what_the_namespaces_limit_ranges_allow(
        simulated_kube: KubeStub):
    """The executor fits the init container it adds to a trial's pod (100m/128Mi, up to
    500m/256Mi) into a LimitRange allowing a cpu limit at most 4 times its request, and the API
    server makes the pod; the trial's own container (250m, up to 1) is left as the study gives it."""
    simulated_kube.add_namespace("pbt")
    simulated_kube.set_limit_range("pbt", "bounds", [{"type": "Container", "maxLimitRequestRatio": {"cpu": "4"}}])
    definition = asking_pbt()
    spec = parse_study(from_experiment(definition))
    record = StudyRecord(spec, definition, ".", uid="0123456789ab")
    trial = TrialRecord(spec.name, 7, {"lr": 0.01}, generation=1, parent=3)
    launch = trial_launch(record, trial)
    executor = KubernetesExecutor(Cluster(namespace="pbt", checkpoints=VOLUME_OF), simulated_kube.api_client(),
                                  clock=simulated_kube.clock.time)
    executor.launch(launch)
    pod = simulated_kube.jobs[("pbt", launch.job_name)]["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["resources"] == {"requests": {"cpu": "125m", "memory": "128Mi"},
                                                     "limits": {"cpu": "500m", "memory": "256Mi"}}
    assert pod["containers"][0]["resources"]["limits"]["cpu"] == "1"
    simulated_kube.run_until(lambda: pods_of(simulated_kube, launch.job_name)
                             or simulated_kube.events_of("Job", launch.job_name))
    assert not simulated_kube.events_of("Job", launch.job_name)


def test_a_trial_whose_job_the_quota_has_no_room_for_waits_naming_it_and_runs_once_a_job_goes(
        simulated_kube: KubeStub, tmp_path: Path):
    """``count/jobs.batch: 1`` held by another Job: the trial's launch is refused for now (its
    event delivered again), the trial waits, not failed, its reason naming the quota; once the
    other Job is deleted the launch delivered again runs it, and the note goes."""
    simulated_kube.set_quota("katuna", {"count/jobs.batch": "1"})
    batch = client.BatchV1Api(simulated_kube.api_client())
    batch.create_namespaced_job("katuna", {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "holder"},
                                           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                                               {"name": "c", "image": "python:3.12", "command": ["true"]}]}}}})
    store = SqliteStore(tmp_path / "katuna.db")
    deps = Deps(store, executor_of(simulated_kube), simulated_kube.clock.time,
                trial_defaults=Cluster(namespace="katuna", start_allowance=ALLOWANCE))
    definition = study_definition("jobs", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["image"] = "python:3.12"
    record, _ = store_study(deps, parse_study(definition), definition)
    dispatcher = Dispatcher(deps)
    [suggested] = dispatcher.deliver(study_created("jobs", record.uid))
    try:
        with pytest.raises(QuotaFull):
            dispatcher.deliver(suggested)
        trial = store.get_trial("jobs", 0)
        assert (trial.state, trial.reason) == ("WAITING", (
            "waiting: its Job cannot be created now: exceeded quota: trial-quota, requested: count/jobs.batch=1, "
            "used: count/jobs.batch=1, limited: count/jobs.batch=1; katuna tries again as Jobs end"))
        batch.delete_namespaced_job("holder", "katuna", propagation_policy="Background")
        simulated_kube.run_until(lambda: ("katuna", "holder") not in simulated_kube.jobs)
        dispatcher.deliver(suggested)
        trial = store.get_trial("jobs", 0)
        assert (trial.state, trial.reason) == ("RUNNING", "")
    finally:
        store.close()


def test_a_trials_end_is_stored_though_the_quota_has_no_room_for_the_next_trials_job(simulated_kube: KubeStub,
                                                                                      tmp_path: Path):
    """With a trial prepared ahead, a trial's end starts the next one in the same handling; a
    ``count/jobs.batch`` quota that the ended trial's finished Job still fills refuses that Job
    for now: the end is stored all the same (not retried with it), and the next trial waits,
    saying why, for a later delivery."""
    simulated_kube.set_quota("katuna", {"count/jobs.batch": "1"})
    store = SqliteStore(tmp_path / "katuna.db")
    deps = Deps(store, executor_of(simulated_kube), simulated_kube.clock.time, lookahead=1,
                trial_defaults=Cluster(namespace="katuna", start_allowance=ALLOWANCE), admissions=None)
    definition = study_definition("ahead", maxTrials=2, parallelism=1)
    definition["trialTemplate"]["image"] = "python:3.12"
    record, _ = store_study(deps, parse_study(definition), definition)
    dispatcher = Dispatcher(deps)
    try:
        for suggested in dispatcher.deliver(study_created("ahead", record.uid)):
            dispatcher.deliver(suggested)
        assert [t.state for t in store.trials("ahead")] == ["RUNNING", "WAITING"]
        simulated_kube.run_until(lambda: look(record, store.get_trial("ahead", 0), deps) is not None)
        dispatcher.deliver(look(record, store.get_trial("ahead", 0), deps))
        first, second = store.trials("ahead")
        assert (first.state, second.state) == ("COMPLETE", "WAITING")
        assert second.reason.startswith("waiting: its Job cannot be created now: exceeded quota: trial-quota, "
                                        "requested: count/jobs.batch=1, used: count/jobs.batch=1")
    finally:
        store.close()
