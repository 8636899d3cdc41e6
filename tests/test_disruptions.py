"""Disruptions inside one Job are bounded: katuna serve with the Kubernetes executor, the real
client, a loopback API whose kubelets evict pods short of memory and whose Job controller, as
the real one, replaces the pods its ``podFailurePolicy`` ignores for ever.

A trial with no memory limit can take its node's memory; the kubelet's node-pressure eviction
marks the pod ``DisruptionTarget``, the policy ignores it, and the replacement runs into the
same pressure. Each pod so lost is a run lost: ``trialTemplate.maxAttempts`` bounds them with
the attempts, and the trial then fails saying why, its Job deleted with its pods. The last
test asks the executor itself, of pods that carry only their kubelet's reason.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from conftest import study_definition
from http_helpers import Service
from kube_stub import KubeStub
from kubernetes import client
from waiting import eventually

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.kubernetes_status import exit_of, ran
from functions.core.cluster import Cluster
from functions.core.launch import TrialLaunch

pytestmark = pytest.mark.slow

NAMESPACE = "disruptions"
KUBE_NAMESPACES = (NAMESPACE,)


@pytest.fixture(scope="module")
def service(kube, tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("k8s"), workers=2, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE=NAMESPACE)
    yield running
    running.close()


@pytest.fixture(autouse=True)
def calm(kube: KubeStub):
    """Each test's scenario ends with it."""
    yield
    kube.disrupt = kube.exhaust = None
    kube.kubelets.disruption_conditions = True


def hanging_study(name: str, resources: dict[str, str], max_attempts: int) -> dict:
    """One trial that runs until something ends it, with no timeout (so no Job deadline)."""
    definition = study_definition(name, mode="hang", maxTrials=1, parallelism=1)
    definition["trialTemplate"].update(image="python:3.12", resources=resources, maxAttempts=max_attempts)
    return definition


def submit(service: Service, definition: dict) -> None:
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body


def only_trial(service: Service, name: str, timeout: float = 60) -> dict:
    """The study's only trial, once the study ended (within ``timeout`` seconds)."""
    service.wait_for(name, timeout=timeout)
    [trial] = service.json("GET", f"/studies/{name}/trials")[1]
    return trial


def pods_of(kube: KubeStub, job: str) -> list[dict]:
    with kube.lock:
        return [p for p in kube.pods.values() if p["metadata"]["labels"].get("job-name") == job]


def made(kube: KubeStub, job: str) -> int:
    """Pods the Job controller made for the Job of this name (counted by the Job's uid)."""
    uid = kube.created_jobs[job]["metadata"]["uid"]
    return kube.job_controller.pods_made.get(uid, 0)


def assert_stopped(kube: KubeStub, job: str) -> None:
    """The Job is deleted with its pods, and makes no more."""
    eventually(lambda: (NAMESPACE, job, "Background") in kube.deleted,
               f"{job} deleted with its pods once its trial's verdict is stored")
    count = made(kube, job)
    time.sleep(1.0)
    assert (NAMESPACE, job) not in kube.jobs and made(kube, job) == count
    eventually(lambda: not pods_of(kube, job), f"the pods of {job} to go", timeout=10)


def test_a_trial_that_exhausts_its_nodes_memory_fails_after_max_attempts_evictions_saying_why(
        service: Service, kube: KubeStub):
    """Only cpu requested: no memory limit. Every pod is evicted for memory pressure; the Job
    would replace them for ever (no timeout, so no deadline either)."""
    kube.exhaust = lambda job, index: (0.3, "memory") if job == "evicted-0" else None
    submit(service, hanging_study("evicted", {"cpu": "500m"}, max_attempts=3))
    trial = only_trial(service, "evicted")
    assert (trial["state"], trial["attempt"]) == ("FAIL", 1)
    reason = trial["reason"]
    lost = re.match(r"preempted: its Job lost (\d+) pods \(", reason)
    # A pod looked at between the kubelet's DisruptionTarget condition and its Evicted status is
    # counted by the condition's reason, as a cluster's would be: every one for memory all the same.
    causes = re.findall(r"(\d+) (?:Evicted|TerminationByKubelet): The node was low on resource: memory\. ", reason)
    assert lost and sum(map(int, causes)) == int(lost[1]) >= 3, reason
    assert f"the trial lost {lost[1]} runs, and trialTemplate.maxAttempts is 3" in reason
    assert "may be exhausting its node's memory or disk: give it a memory limit" in reason
    assert made(kube, "evicted-0") >= 3
    assert_stopped(kube, "evicted-0")


def test_with_a_memory_limit_the_same_trial_fails_at_once_out_of_memory(service: Service, kube: KubeStub):
    """katuna makes the memory request the limit too: over it, the kernel kills the container,
    a failure the Job counts, and the trial fails with the container's exit."""
    kube.exhaust = lambda job, index: (0.3, "memory") if job == "limited-0" else None
    submit(service, hanging_study("limited", {"cpu": "500m", "memory": "1Gi"}, max_attempts=3))
    trial = only_trial(service, "limited")
    assert (trial["state"], trial["attempt"], trial["exitCode"]) == ("FAIL", 1, 137)
    assert "container trial exited with code 137 (OOMKilled)" in trial["reason"]
    assert made(kube, "limited-0") == 1


def test_preempted_pods_count_as_runs_with_the_attempts_before_them(service: Service, kube: KubeStub):
    """Attempt 1's Job vanishes (a preempted attempt, run again); with maxAttempts 2, attempt 2
    may lose no pod: its first preempted pod ends the trial, not naming memory. A pod the
    scheduler preempts is deleted once its Job controller has seen it, so the watcher, which
    looks every 2 s, sees its preemption only if it looks within that moment (a look in ten);
    else it sees the pod it saw running gone, its Job running on, which is a run lost too."""
    kube.disrupt = lambda job, index: 0.3 if job == "spot-0-a2" else None
    submit(service, hanging_study("spot", {"cpu": "500m"}, max_attempts=2))
    deadline = time.monotonic() + 20
    while not pods_of(kube, "spot-0") and time.monotonic() < deadline:
        time.sleep(0.05)
    kube.delete_job(NAMESPACE, "spot-0", None)
    trial = only_trial(service, "spot", timeout=60)
    assert (trial["state"], trial["attempt"]) == ("FAIL", 2)
    latest, earlier = trial["reason"].splitlines()
    assert latest.startswith("preempted: its Job lost ")
    cause = (r"\d+ (PreemptionByScheduler: default-scheduler: preempting to accommodate a higher priority pod|Deleted: "
             r"its pod was deleted while the Job ran, between two looks \(a preemption, an eviction or a node's removal "
             r"deletes a pod so\))")
    # a slow look may find both: a pod deleted unseen, and its replacement preempted since
    assert re.search(rf"\({cause}(; {cause})*\): the trial lost \d+ runs with its earlier attempts, and "
                     r"trialTemplate\.maxAttempts is 2$", latest), latest
    assert "memory" not in latest
    assert earlier == "attempt 1 preempted: Job spot-0 disappeared"
    assert_stopped(kube, "spot-0-a2")


def test_a_run_lost_while_the_trial_runs_on_is_shown_with_its_cause(service: Service, kube: KubeStub):
    """Its pod preempted and replaced within its Job, the trial runs on in the same attempt; the
    run lost counts against maxAttempts, so the trial's JSON and page say it, the pod being
    deleted soon after."""
    kube.disrupt = lambda job, index: 5.0 if job == "shown-0" and index == 0 else None  # seen running first
    submit(service, hanging_study("shown", {"cpu": "500m"}, max_attempts=3))

    def lost() -> list[dict]:
        status, trial = service.json("GET", "/studies/shown/trials/0")
        return trial["lostRuns"] if status == 200 else []

    eventually(lambda: len(lost()) == 1, "the run lost shown", timeout=60)
    [run] = lost()
    assert run["cause"] in ("PreemptionByScheduler", "Deleted"), run
    status, trial = service.json("GET", "/studies/shown/trials/0")
    assert (trial["state"], trial["attempt"]) == ("RUNNING", 1)
    page = service.request("GET", "/ui/studies/shown/trials/0")[2].decode()
    assert f'<dd id="trial-lost-runs">1: {run["cause"]}' in page
    service.request("POST", "/studies/shown/stop")


def test_a_pod_preempted_and_gone_between_two_looks_is_a_run_lost(kube: KubeStub):
    """The scheduler deletes the pod it preempts once the Job controller has seen it: a look
    that comes after finds no disrupted pod, but the pod it saw running at the look before is
    gone while the Job runs on, which nothing but a disruption does. A look whose lists were made
    before a pod that a later look saw running confirms its absence with a list of now."""
    executor = KubernetesExecutor(Cluster(), api_client(kube.url))
    command = study_definition(mode="hang")["trialTemplate"]["command"]
    launch = TrialLaunch("vanish", "u1", 0, 1, "vanish-0", [c.replace("${trialParameters.x}", "1") for c in command],
                         {}, ".", timeout=None, image="python:3.12", cluster=Cluster(namespace=NAMESPACE), max_attempts=2)
    executor.launch(launch)
    try:
        pod = running_pod(kube, "vanish-0", 1)
        before = executor.look(launch)
        assert before.finished is None and before.running == {pod["metadata"]["uid"]}
        with executor.together([launch]):  # lists made now, as a tick's: its pod running
            kube.preempt_pod(NAMESPACE, pod["metadata"]["name"], "PreemptionByScheduler")
            eventually(lambda: pod["metadata"]["uid"] not in {p["metadata"]["uid"] for p in pods_of(kube, "vanish-0")},
                       "the preempted pod gone", timeout=20)
            replacement = running_pod(kube, "vanish-0", 1)
            stale = executor.look(replace(launch, running_pods=frozenset({replacement["metadata"]["uid"]})))
            assert not stale.lost, "a pod a later look saw running is no loss for lists made before it ran"
        assert not executor.look(launch).lost, "a look that knows of no pod running before sees nothing lost"
        after = executor.look(replace(launch, running_pods=before.running))
        assert after.finished is None, "the trial may lose one run"
        assert [d.cause for d in (after.lost or {}).values()] == ["Deleted"]
        assert after.running == {replacement["metadata"]["uid"]}, "its replacement runs"
        assert executor.look(replace(launch, max_attempts=1, running_pods=before.running)).finished.data[
            "message"].startswith("its Job lost 1 pod (1 Deleted: its pod was deleted while the Job ran")
    finally:
        executor.stop(launch)


def test_pods_shut_down_with_their_node_count_without_the_disruption_condition(kube: KubeStub):
    """Without ``PodDisruptionConditions`` (before Kubernetes 1.26, or turned off) a pod killed as
    its node shuts down is only Failed with reason ``Terminated``: the Job counts it against a
    ``backoffLimit`` of the study's and replaces it; katuna counts it as a run lost."""
    executor = KubernetesExecutor(Cluster(), api_client(kube.url))
    command = study_definition(mode="hang")["trialTemplate"]["command"]
    launch = TrialLaunch("shutdown", "u1", 0, 1, "shutdown-0", [c.replace("${trialParameters.x}", "1") for c in command],
                         {}, ".", timeout=None, image="python:3.12", cluster=Cluster(namespace=NAMESPACE, backoff_limit=5),
                         max_attempts=2)
    kube.kubelets.disruption_conditions = False
    executor.launch(launch)
    try:
        for count in (1, 2):
            pod = running_pod(kube, "shutdown-0", count)
            assert executor.poll(launch) is None, "the trial may lose one pod"
            kube.preempt_pod(NAMESPACE, pod["metadata"]["name"], "TerminationByKubelet")
        ended = eventually(lambda: executor.poll(launch), "the second pod stopped by its kubelet")
        assert (ended.data["outcome"], ended.data["disruptions"]) == ("preempted", 2)
        assert ended.data["message"] == (
            "its Job lost 2 pods (2 Terminated: Pod was terminated in response to imminent node shutdown.): "
            "the trial lost 2 runs, and trialTemplate.maxAttempts is 2")
        assert not [c for p in pods_of(kube, "shutdown-0") for c in p["status"].get("conditions", [])
                    if c["type"] == "DisruptionTarget"]
    finally:
        executor.stop(launch)


def running_pod(kube: KubeStub, job: str, count: int) -> dict:
    """The Job's running pod, once it made ``count`` pods."""
    def running() -> dict | None:
        pods = pods_of(kube, job)
        return next((p for p in pods if p["status"].get("phase") == "Running"), None) if len(pods) >= count else None
    return eventually(running, f"{job} to run its pod {count}", timeout=20)


def test_a_pod_shut_down_with_its_node_without_the_condition_is_a_run_lost_though_it_failed_its_job(kube: KubeStub):
    """With the Job's ``backoffLimit`` 0 the pod its kubelet ``Terminated`` as the node shut down
    (no ``DisruptionTarget`` condition: the policy cannot ignore it) fails the Job; its trial
    did not fail, its run was lost: the attempt ends ``preempted``, to run again."""
    executor = KubernetesExecutor(Cluster(), api_client(kube.url))
    command = study_definition(mode="hang")["trialTemplate"]["command"]
    launch = TrialLaunch("halted", "u1", 0, 1, "halted-0", [c.replace("${trialParameters.x}", "1") for c in command],
                         {}, ".", timeout=None, image="python:3.12", cluster=Cluster(namespace=NAMESPACE), max_attempts=2)
    kube.kubelets.disruption_conditions = False
    executor.launch(launch)
    try:
        pod = running_pod(kube, "halted-0", 1)
        kube.preempt_pod(NAMESPACE, pod["metadata"]["name"], "TerminationByKubelet")
        ended = eventually(lambda: executor.poll(launch), "the Job to fail", timeout=20)
        assert kube.jobs[(NAMESPACE, "halted-0")]["status"]["conditions"][-1]["reason"] == "BackoffLimitExceeded"
        assert (ended.data["outcome"], ended.data["message"]) == ("preempted", "every pod of its Job was disrupted")
    finally:
        executor.stop(launch)


def lost_until_failed(kube: KubeStub, executor: KubernetesExecutor, launch: TrialLaunch, count: int):
    """The attempt's end, once the node of its Job's running pod ``count`` came back without the
    pod's container (:meth:`KubeStub.restart_node`) and the Job failed past its ``backoffLimit``."""
    pod = running_pod(kube, launch.job_name, count)
    kube.restart_node(pod["spec"]["nodeName"])
    ended = eventually(lambda: executor.poll(launch), "the Job to fail", timeout=20)
    assert kube.jobs[(NAMESPACE, launch.job_name)]["status"]["conditions"][-1]["reason"] == "BackoffLimitExceeded"
    return ended


def test_a_pod_whose_node_came_back_without_its_container_is_a_run_lost_though_it_failed_its_job(kube: KubeStub):
    """A GKE spot VM preempted before its kubelet's graceful shutdown reached the API, and
    recreated under the same name: the kubelet, back, finds no container of the pod the API
    says runs, and fails it with the container ``ContainerStatusUnknown``, exit code 137, and no
    ``DisruptionTarget`` condition. The Job counts it (``backoffLimit`` 0: the Job fails); the
    trial did not exit 137, its run was lost: the attempt ends ``preempted``, to run again."""
    executor = KubernetesExecutor(Cluster(), api_client(kube.url))
    command = study_definition(mode="hang")["trialTemplate"]["command"]
    launch = TrialLaunch("rebooted", "u1", 0, 1, "rebooted-0",
                         [c.replace("${trialParameters.x}", "1") for c in command], {}, ".", timeout=None,
                         image="python:3.12", cluster=Cluster(namespace=NAMESPACE), max_attempts=2)
    executor.launch(launch)
    try:
        ended = lost_until_failed(kube, executor, launch, 1)
        [lost] = pods_of(kube, "rebooted-0")
        assert lost["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
        assert "reason" not in lost["status"] and not [
            c for c in lost["status"]["conditions"] if c["type"] == "DisruptionTarget"]
        assert (ended.data["outcome"], ended.data["message"]) == ("preempted", "every pod of its Job was disrupted")
    finally:
        executor.stop(launch)


def test_a_pod_whose_containers_its_kubelet_lost_counts_as_a_run_lost_while_its_job_runs_on(kube: KubeStub):
    """With a ``backoffLimit`` of the study's the Job replaces the pod its kubelet lost the
    containers of; katuna counts it as a run lost, as a preempted one, so the attempt's pods
    stay bounded by ``maxAttempts``."""
    executor = KubernetesExecutor(Cluster(), api_client(kube.url))
    command = study_definition(mode="hang")["trialTemplate"]["command"]
    launch = TrialLaunch("relost", "u1", 0, 1, "relost-0", [c.replace("${trialParameters.x}", "1") for c in command],
                         {}, ".", timeout=None, image="python:3.12", cluster=Cluster(namespace=NAMESPACE, backoff_limit=5),
                         max_attempts=2)
    executor.launch(launch)
    try:
        for count in (1, 2):
            pod = running_pod(kube, "relost-0", count)
            assert executor.poll(launch) is None, "the trial may lose one pod"
            kube.restart_node(pod["spec"]["nodeName"])
        ended = executor.poll(launch)
        assert ended is not None and (ended.data["outcome"], ended.data["disruptions"]) == ("preempted", 2)
        assert ended.data["message"] == (
            "its Job lost 2 pods (2 ContainerStatusUnknown: The container could not be located when the pod was "
            "terminated): the trial lost 2 runs, and trialTemplate.maxAttempts is 2")
    finally:
        executor.stop(launch)


def test_a_trial_that_failed_before_a_later_pod_was_lost_fails_with_its_own_exit(kube: KubeStub, tmp_path):
    """With a ``backoffLimit`` of the study's the trial's first pod exits 3 on its own; the Job
    replaces it, and the replacement's node comes back without its container
    (``ContainerStatusUnknown``, 137), which fails the Job past its limit. The trial's reason
    names its own exit, not the lost pod's 137. The replacement comes after the Job
    controller's back-off (10 s in a cluster), so it is the later pod by creation time."""
    executor = KubernetesExecutor(Cluster(), api_client(kube.url))
    kube.backoff_seconds = 1.1
    mark = tmp_path / "failed-once"
    code = (f"import os, sys, time\nif os.path.exists({str(mark)!r}): time.sleep(3600)\n"
            f"open({str(mark)!r}, 'w').close()\nsys.exit(3)")
    launch = TrialLaunch("ownexit", "u1", 0, 1, "ownexit-0", ["python", "-c", code], {}, ".", timeout=None,
                         image="python:3.12", cluster=Cluster(namespace=NAMESPACE, backoff_limit=1), max_attempts=2)
    executor.launch(launch)
    try:
        ended = lost_until_failed(kube, executor, launch, 2)
        assert (ended.data["outcome"], ended.data["exitCode"]) == ("exited", 3)
        assert ended.data["message"].endswith("; container trial exited with code 3 (Error)"), ended.data["message"]
    finally:
        kube.backoff_seconds = 0.0
        executor.stop(launch)


def pod_of(phase: str, reason: str | None = None, init: dict | None = None, main: dict | None = None,
           condition: bool = False) -> client.V1Pod:
    """A pod as the client reads it: its init container ``fetch`` and its container ``trial`` in
    the states given (as the API writes them), with the ``DisruptionTarget`` condition or not."""
    def status(name: str, state: dict | None) -> list[client.V1ContainerStatus]:
        if state is None:
            return []
        terminated = state.get("terminated")
        return [client.V1ContainerStatus(name=name, image="busybox", image_id="", ready=False, restart_count=0,
                                         state=client.V1ContainerState(
                                             terminated=client.V1ContainerStateTerminated(**terminated)
                                             if terminated else None,
                                             waiting=client.V1ContainerStateWaiting(**state["waiting"])
                                             if "waiting" in state else None))]
    conditions = [client.V1PodCondition(type="DisruptionTarget", status="True", reason="TerminationByKubelet")] \
        if condition else []
    return client.V1Pod(metadata=client.V1ObjectMeta(name="p", uid="u"), status=client.V1PodStatus(
        phase=phase, reason=reason, conditions=conditions, init_container_statuses=status("fetch", init),
        container_statuses=status("trial", main)))


def test_a_failed_init_container_is_the_trials_failure_and_a_node_shutdown_a_run_lost():
    """An init container that exits non-zero fails the pod before its containers start: the
    trial failed, naming it (it was reported as every pod disrupted). A pod its node's shutdown
    ended is no run of the trial, with or without the condition; one ``Evicted`` without the
    condition (over its own local-storage limit) is."""
    waiting = {"waiting": {"reason": "PodInitializing"}}
    failed_init = pod_of("Failed", init={"terminated": {"exit_code": 2, "reason": "Error"}}, main=waiting)
    assert ran(failed_init)
    assert exit_of([failed_init], "trial") == (2, "init container fetch exited with code 2 (Error), so container "
                                                  "trial never started")
    stopped_after_init = pod_of("Failed", init={"terminated": {"exit_code": 0, "reason": "Completed"}}, main=waiting)
    assert not ran(stopped_after_init), "its containers never started, and nothing of its own failed"
    killed = {"terminated": {"exit_code": 137, "reason": "Error"}}
    for reason in ("Terminated", "Shutdown", "NodeShutdown"):
        assert not ran(pod_of("Failed", reason, main=killed)), reason
    assert ran(pod_of("Failed", "Evicted", main=killed)), "evicted over its own limit"
    lost = {"terminated": {"exit_code": 137, "reason": "ContainerStatusUnknown",
                           "message": "The container could not be located when the pod was terminated"}}
    assert not ran(pod_of("Failed", main=lost)), "its kubelet lost its container (its node came back without it)"
    assert ran(pod_of("Failed", "Evicted", main=lost)), "evicted over its own limit, its container gone since"
    assert not ran(pod_of("Failed", "Evicted", main=killed, condition=True)), "evicted for its node's pressure"
    own = pod_of("Failed", main={"terminated": {"exit_code": 3, "reason": "Error"}})
    assert exit_of([own, pod_of("Failed", main=lost)], "trial") == (3, "container trial exited with code 3 (Error)"), \
        "a later pod lost is no exit of the trial's"


def test_a_pod_whose_containers_ended_after_its_deletion_was_asked_ran_to_no_end_of_its_own():
    """A training operator deletes a master still running once a worker failed (or a person's
    ``kubectl delete pod``): its kubelet's SIGTERM ends it with 143 (or 0, handled) while it is
    still listed, ``Terminating``. That code is the deletion's, not the trial's; a pod deleted
    once it had ended on its own ran to its own end."""
    asked = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
    for code in (143, 0, 137):
        ended = {"terminated": {"exit_code": code, "reason": "Error" if code else "Completed",
                                "finished_at": asked + timedelta(seconds=1)}}
        deleted = pod_of("Failed", main=ended)
        deleted.metadata.deletion_timestamp = asked + timedelta(seconds=30)
        deleted.metadata.deletion_grace_period_seconds = 30
        assert not ran(deleted), code
    done = pod_of("Failed", main={"terminated": {"exit_code": 2, "reason": "Error",
                                                 "finished_at": asked - timedelta(seconds=5)}})
    done.metadata.deletion_timestamp = asked + timedelta(seconds=30)
    done.metadata.deletion_grace_period_seconds = 30
    assert ran(done) and exit_of([done], "trial")[0] == 2
    stopping = pod_of("Running", main={"running": {}})
    stopping.metadata.deletion_timestamp = asked + timedelta(seconds=30)
    assert not ran(stopping)
