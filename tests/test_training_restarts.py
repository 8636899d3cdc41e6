"""Training Operator jobs whose replicas restart: a trial whose master keeps failing in place ends
failed once its ``runPolicy.backoffLimit`` is passed, and the stand-in restarts replicas as the
Training Operator v1.9.0 does (``ExitCode``'s retryable codes, ``Restarting``, ``backoffLimit``)."""

from __future__ import annotations

import json
import re
import sys

import pytest
from kube_stub import KubeStub
from kubernetes import client
from waiting import eventually

from functions.adapters.kubernetes_client import api_client


@pytest.fixture
def cluster():
    stub = KubeStub()
    stub.kubelets.restart_backoff = (0.05, 0.1)
    stub.install_operator("training-operator")
    yield stub
    stub.close()


def _master(code: str, policy: str | None = None, **run_policy) -> dict:
    """A PyTorchJob of one Master running ``code`` under ``policy`` (none: the kind's default)."""
    master: dict = {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "pytorch", "image": "python:3.12", "command": [sys.executable, "-c", code]}]}}}
    if policy is not None:
        master["restartPolicy"] = policy
    spec: dict = {"pytorchReplicaSpecs": {"Master": master}}
    if run_policy:
        spec["runPolicy"] = run_policy
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "p"}, "spec": spec}


def _conditions(cluster: KubeStub) -> dict[str, dict]:
    with cluster.lock:
        found = json.loads(json.dumps(cluster.workloads[("pytorchjobs", "default", "p")]))
    return {c["type"]: c for c in (found.get("status") or {}).get("conditions", []) if c["status"] == "True"}


def _create(cluster: KubeStub, body: dict) -> None:
    client.CustomObjectsApi(api_client(cluster.url)).create_namespaced_custom_object(
        "kubeflow.org", "v1", "default", "pytorchjobs", body)


def test_a_trial_whose_master_keeps_failing_in_place_fails_past_its_backoff_limit(cluster: KubeStub):
    """A PyTorchJob trial naming no ``restartPolicy`` runs under ``OnFailure``: its master that
    exits 3 is restarted in place by the kubelet, and without a ``backoffLimit`` the job would
    never end. katuna's limit fails it; the operator deletes its pods, and the trial fails with
    the operator's reason (and the master's last exit code where its pod is still there to
    read), never a run lost to run again."""
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.launch import TrialLaunch

    spec = _master("print('loss=1'); raise SystemExit(3)")
    del spec["metadata"]
    launch = TrialLaunch("crash", "u1", 0, 1, "crash-0", [], {}, ".", timeout=None, trial_spec=spec,
                         primary_container="pytorch")
    executor = KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url))
    executor.launch(launch)
    finished = eventually(lambda: executor.poll(launch), "the trial to end", timeout=30)
    message = finished.data["message"]
    assert finished.data["outcome"] == "exited", message
    assert "PyTorchJobFailed: Job crash-0 has failed because it has reached the specified backoff limit" in message
    read = r"container pytorch restarted \d+ times in pod crash-0-master-0, last exiting with code 3 \(Error\)$"
    unread = "its pods were deleted with it, the last exit code of container pytorch unread"
    assert (re.search(read, message) and finished.data["exitCode"] == 3) or \
        (message.endswith(unread) and finished.data["exitCode"] == 1), message


def test_a_trial_past_its_jobs_own_active_deadline_times_out(cluster: KubeStub):
    """The operator fails a job past its ``runPolicy.activeDeadlineSeconds`` and deletes its
    pods: the trial timed out, naming the trialSpec's own deadline, never a run lost to run again."""
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.launch import TrialLaunch

    spec = _master("import time; print('loss=1', flush=True); time.sleep(600)", "Never", activeDeadlineSeconds=1)
    del spec["metadata"]
    launch = TrialLaunch("late", "u1", 0, 1, "late-0", [], {}, ".", timeout=None, trial_spec=spec,
                         primary_container="pytorch")
    executor = KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url))
    executor.launch(launch)
    finished = eventually(lambda: executor.poll(launch), "the trial to end", timeout=30)
    assert finished.data["outcome"] == "timeout", finished.data["message"]
    assert finished.data["message"] == (
        "its PyTorchJob ran past its own spec.runPolicy.activeDeadlineSeconds, as its trialSpec sets it "
        "(PyTorchJobFailed: Job late-0 has failed because it was active longer than specified deadline)")


@pytest.mark.parametrize("limit", [0, 2])
def test_the_operator_fails_a_job_once_its_running_pods_restarts_reach_its_backoff_limit(cluster: KubeStub, limit):
    """``PastBackoffLimit``: the restarts in place of the running pods of replicas that restart,
    summed; 0 is passed by one restart. Every pod is deleted, whatever ``cleanPodPolicy`` says."""
    _create(cluster, _master("raise SystemExit(1)", "OnFailure", backoffLimit=limit, cleanPodPolicy="None"))
    eventually(lambda: "Failed" in _conditions(cluster), "the PyTorchJob to fail", timeout=20)
    failed = _conditions(cluster)["Failed"]
    assert (failed["reason"], failed["message"]) == (
        "PyTorchJobFailed", "Job p has failed because it has reached the specified backoff limit")
    eventually(lambda: not [key for key in list(cluster.pods) if key[0] == "default"], "its pods to be deleted")


RETRIED = ("import os; first = not os.path.exists('{mark}'); open('{mark}', 'w').close(); "
           "print('loss=1'); raise SystemExit({code} if first else 0)")
"""A run that exits ``code`` the first time, 0 the next."""


@pytest.mark.parametrize(("code", "ends"), [(130, "Succeeded"), (137, "Succeeded"), (3, "Failed")])
def test_an_exit_code_replica_is_made_again_after_a_retryable_code_and_fails_its_job_after_another(
        cluster: KubeStub, tmp_path, code: int, ends: str):
    """``ExitCode``: the kubelet restarts nothing (the pod's policy is ``Never``); a code of 128
    or more (a SIGINT, SIGKILL or SIGTERM: a preemption's) has the operator delete the pod and
    make it again under its name, the job ``Restarting``; any other fails the job."""
    _create(cluster, _master(RETRIED.format(mark=tmp_path / "ran", code=code), "ExitCode"))
    eventually(lambda: ends in _conditions(cluster), f"the PyTorchJob to end {ends}", timeout=20)
    restarted = [(e["type"], e["message"]) for e in cluster.events_of("PyTorchJob", "p")
                 if e["reason"] == "PyTorchJobRestarting"]
    assert restarted == ([("Warning", "job p is restarting because Master replica(s) failed.")]
                         if ends == "Succeeded" else [])
    if ends == "Failed":
        assert _conditions(cluster)["Failed"]["message"] == "PyTorchJob p is failed because 1 Master replica(s) failed."


@pytest.mark.parametrize("limit", [None, 0])
def test_a_failed_pod_of_an_on_failure_replica_is_made_again_unless_its_backoff_limit_is_0(cluster: KubeStub, limit):
    """A pod of an ``OnFailure`` replica that failed whole (its node shut down under it) is made
    again rather than failing the job, which says ``Restarting`` until it runs again; under a
    ``backoffLimit`` of 0 any failed pod, a disrupted one too, fails the job (``exceedsBackoffLimit``)."""
    _create(cluster, _master("import time; time.sleep(600)", "OnFailure",
                             **({} if limit is None else {"backoffLimit": limit})))
    eventually(lambda: "Running" in _conditions(cluster), "the PyTorchJob to run", timeout=20)
    with cluster.lock:
        uid = cluster.pods[("default", "p-master-0")]["metadata"]["uid"]
    cluster.preempt_pod("default", "p-master-0", reason="TerminationByKubelet")

    def made_again() -> bool:
        with cluster.lock:
            again = cluster.pods.get(("default", "p-master-0"))
            return again is not None and again["metadata"]["uid"] != uid and "Running" in _conditions(cluster)

    if limit is None:
        eventually(made_again, "the pod to be made again and run", timeout=20)
        assert "Failed" not in _conditions(cluster)
        assert [e["reason"] for e in cluster.events_of("PyTorchJob", "p") if e["type"] == "Warning"] == \
            ["PyTorchJobRestarting"]
        held = [{c["type"] for c in change.object.get("status", {}).get("conditions", []) if c["status"] == "True"}
                for change in cluster.changes_since(0, "pytorchjobs")]
        assert {"Created", "Restarting"} in held, "Restarting, not Running, while the pod is made again"
    else:
        eventually(lambda: "Failed" in _conditions(cluster), "the PyTorchJob to fail", timeout=20)
        assert _conditions(cluster)["Failed"]["message"].endswith("reached the specified backoff limit")


def _look_on(executor, launch, state: dict | None = None):
    """The executor's look, the pods it saw of ``ExitCode`` replicas kept for the next look as
    the ``trial.finished`` look handler keeps them with the trial (in ``state["launch"]``)."""
    from dataclasses import replace

    state = {} if state is None else state
    state["launch"] = launch

    def look():
        seen = executor.look(state["launch"])
        if getattr(seen, "remade", None) is not None:
            state["launch"] = replace(state["launch"], remade_pods=state["launch"].remade_pods.merged(seen.remade))
        return seen.finished
    return look


def _oom_trial(name: str, **run_policy) -> dict:
    spec = _master("import time; print('loss=1', flush=True); time.sleep(600)", "ExitCode", **run_policy)
    del spec["metadata"]
    spec["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"memory": "1Gi"}}
    return spec


def _operator_pass(cluster: KubeStub, pod: str, seen: list[str]) -> str | None:
    """One pass of the Training Operator over the cluster, run by the test (the operator taken
    out of the stand-in's loop, so that it deletes a failed pod only once a look saw it fail);
    the uid of the pod ``pod`` once it is one not ``seen``."""
    from kube_standin.operators import TrainingOperator

    with cluster.lock:
        cluster.operator_controllers.setdefault(TrainingOperator, TrainingOperator()).step(cluster)
        found = cluster.pods.get(("default", pod))
        uid = found["metadata"]["uid"] if found is not None else None
    return uid if uid not in seen else None


def _phase(cluster: KubeStub, pod: str) -> str | None:
    with cluster.lock:
        found = cluster.pods.get(("default", pod))
        return found["status"].get("phase") if found is not None else None


def _spot_trial_looked_on(cluster: KubeStub):
    """Launch a trial ``spot`` of one ``ExitCode`` master with a ``backoffLimit`` of 1; give
    the state its looks keep, its look (as ``_look_on``) and a reader of its master pod (a copy,
    None while there is none)."""
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.launch import TrialLaunch

    launch = TrialLaunch("spot", "u1", 0, 1, "spot-0", [], {}, ".", timeout=None,
                         trial_spec=_oom_trial("spot", backoffLimit=1), primary_container="pytorch")
    executor = KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url))
    executor.launch(launch)
    state: dict = {}
    look = _look_on(executor, launch, state)

    def pod() -> dict | None:
        with cluster.lock:
            return json.loads(json.dumps(cluster.pods.get(("default", "spot-0-master-0"))))
    return state, look, pod


@pytest.mark.parametrize("limit", [None, 2])
def test_a_trial_whose_exit_code_replica_is_oom_killed_again_and_again_fails_saying_so(cluster: KubeStub, limit):
    """``ExitCode``: the operator deletes a pod OOM-killed (137) and makes it again for ever,
    counting none against ``backoffLimit``. katuna counts them from the pods its looks read,
    and past the job's ``backoffLimit`` (katuna's 6 where the trialSpec sets none) the trial
    fails naming the replica and its cause; its workload is deleted with its pods."""
    from functions.adapters.kubernetes_executor import KubernetesExecutor
    from functions.core.cluster import Cluster
    from functions.core.launch import TrialLaunch

    cluster.exhaust = lambda job, index: (0.05, "memory") if job == "oom-0" else None
    with cluster.lock:
        cluster.operators.discard("training-operator")  # its passes are the test's: a pod's end waits for a look
    spec = _oom_trial("oom", **({} if limit is None else {"backoffLimit": limit}))
    launch = TrialLaunch("oom", "u1", 0, 1, "oom-0", [], {}, ".", timeout=None, trial_spec=spec,
                         primary_container="pytorch")
    executor = KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url))
    executor.launch(launch)
    look, expected, uids = _look_on(executor, launch), 6 if limit is None else limit, []
    finished = None
    while finished is None and len(uids) <= expected:
        uids.append(eventually(lambda: _operator_pass(cluster, "oom-0-master-0", uids), "the pod (made again)",
                               timeout=60, interval=0.02))
        eventually(lambda: _phase(cluster, "oom-0-master-0") == "Failed", "the pod to be OOM-killed", timeout=60)
        finished = look()
    assert finished is not None and len(uids) == expected, f"ended after {len(uids)} pods: {finished}"
    message = finished.data["message"]
    assert finished.data["outcome"] == "exited", message
    assert message.startswith(f"PyTorchJob oom-0 failed: replica Master (pod oom-0-master-0) was OOM-killed "
                              f"{expected} times (exit code 137): "), message
    assert f"katuna counted {expected}, its backoffLimit being {expected}" in message, message
    assert finished.data["exitCode"] == 137
    with cluster.lock:
        cluster.operators.add("training-operator")
    with cluster.lock:
        job = cluster.workloads[("pytorchjobs", "default", "oom-0")]
    assert "Failed" not in {c["type"] for c in job.get("status", {}).get("conditions", [])}, \
        "the operator itself never ends it"
    executor.stop(launch)
    eventually(lambda: ("pytorchjobs", "default", "oom-0") not in cluster.workloads, "its workload to be deleted")


def test_preempted_pods_of_an_exit_code_replica_are_not_counted_as_its_failures(cluster: KubeStub):
    """A pod of an ``ExitCode`` replica whose node shut down under it (``DisruptionTarget``,
    exit 143) is made again by the operator as an OOM-killed one is; a look that saw it
    disrupted never counts it: a trial with a ``backoffLimit`` of 1 runs on after two."""
    _, look, _ = _spot_trial_looked_on(cluster)
    uids = []
    for _ in range(3):
        def running_again() -> bool:
            assert look() is None
            with cluster.lock:
                pod = cluster.pods.get(("default", "spot-0-master-0"))
                return pod is not None and pod["metadata"]["uid"] not in uids and pod["status"].get("phase") == "Running"
        eventually(running_again, "the pod to run", timeout=90, interval=0.02)
        if len(uids) == 2:
            break
        with cluster.lock:
            uids.append(cluster.pods[("default", "spot-0-master-0")]["metadata"]["uid"])
            cluster.operators.discard("training-operator")  # its replacement waits for a look to see it
        cluster.preempt_pod("default", "spot-0-master-0", reason="TerminationByKubelet")
        assert look() is None
        with cluster.lock:
            cluster.operators.add("training-operator")
    assert look() is None and len(uids) == 2, "made again twice, the trial runs on"


def _taken_back(cluster: KubeStub, name: str, how: str) -> None:
    """The node ``name`` taken back from under its pods: its Node deleted (an EKS spot instance
    terminated, a pool deleted under them), or shutting down (a GKE spot VM's notice: not
    Ready, its pods failed by its kubelet)."""
    if how == "deleted":
        cluster.remove_node(name)
        return
    with cluster.lock:
        node = cluster.nodes[name]
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        ready.update(status="False", reason="KubeletNotReady", message="node is shutting down")
        cluster.modified("nodes", node)
        for pod in [p for p in cluster.pods.values() if p["spec"].get("nodeName") == name]:
            cluster.kubelets.disrupt(cluster, pod, "TerminationByKubelet")


@pytest.mark.parametrize("how", ["deleted", "shutting down"])
def test_a_preemption_of_an_exit_code_replica_no_look_saw_is_not_counted_as_its_failure(cluster: KubeStub, how):
    """The operator deletes a preempted pod of an ``ExitCode`` replica and makes it again within
    a second, mostly before any look sees it fail. The look that sees its replacement reads the
    node it ran on, once: that node gone, or shutting down, the pod was preempted, and a trial
    with a ``backoffLimit`` of 1 runs on."""
    from kube_standin.nodes import STATIC_ALLOCATABLE, node

    cluster.add_node(node("node-spare", {}, (), STATIC_ALLOCATABLE, cluster.clock.stamp()))
    state, look, pod = _spot_trial_looked_on(cluster)
    eventually(lambda: look() is None and (pod() or {}).get("status", {}).get("phase") == "Running",
               "the pod to run, seen by a look", timeout=30, interval=0.02)
    first = pod()
    _taken_back(cluster, first["spec"]["nodeName"], how)
    eventually(lambda: (pod() or first)["metadata"]["uid"] != first["metadata"]["uid"], "the pod to be made again",
               timeout=30, interval=0.01)
    for _ in range(3):
        assert look() is None, "a preemption is not the trial's failure"
    kept = state["launch"].remade_pods
    assert kept.names["spot-0-master-0"][0] == first["metadata"]["uid"] and first["metadata"]["uid"] in kept.disrupted
    assert [a for a in cluster.audit if a[1] == "nodes"] == [("list", "nodes", "", "")], "its node read once"


def test_a_preemption_of_an_exit_code_replica_seen_only_pending_is_judged_by_the_node_it_was_scheduled_to(
        cluster: KubeStub):
    """A pod a look saw only ``Pending`` (bound to no node yet), then bound, preempted and made
    again before the next look: the look that sees its replacement finds the node it ran on in
    the scheduler's ``Scheduled`` Event on it, and that node gone, a trial with a
    ``backoffLimit`` of 1 runs on."""
    from kube_standin.nodes import STATIC_ALLOCATABLE, node

    with cluster.lock:
        held = dict(cluster.nodes)
        cluster.nodes.clear()
    state, look, pod = _spot_trial_looked_on(cluster)
    eventually(lambda: look() is None and state["launch"].remade_pods.names, "a look to see the pod", timeout=30,
               interval=0.02)
    first = pod()
    assert not first["spec"].get("nodeName"), "seen bound to no node"
    with cluster.lock:
        cluster.nodes.update(held)
    cluster.add_node(node("node-spare", {}, (), STATIC_ALLOCATABLE, cluster.clock.stamp()))
    eventually(lambda: (pod() or {}).get("status", {}).get("phase") == "Running", "the pod to run", timeout=30,
               interval=0.01)
    ran_on = pod()["spec"]["nodeName"]
    cluster.remove_node(ran_on)
    eventually(lambda: (pod() or first)["metadata"]["uid"] != first["metadata"]["uid"], "the pod to be made again",
               timeout=30, interval=0.01)
    for _ in range(3):
        assert look() is None, "a preemption is not the trial's failure"
    kept = state["launch"].remade_pods
    assert kept.nodes[first["metadata"]["uid"]] == ran_on and first["metadata"]["uid"] in kept.disrupted


def test_pods_no_look_saw_bound_are_placed_once_and_merge_in_either_order():
    """A pod made again that no look saw bound is placed once: on the node its ``Scheduled``
    Event names (then judged by it), or nowhere (a failure of its own, never asked again);
    looks merge in either order and the row keeps what was found."""
    from functions.core.remade_pods import Remade, SeenPod

    stale = Remade().seen([SeenPod("p-master-0", "a"), SeenPod("p-worker-0", "c")]).seen(
        [SeenPod("p-master-0", "b", node="n3"), SeenPod("p-worker-0", "d", node="n3")])
    assert stale.unplaced() == ["a", "c"] and stale.unjudged() == {}
    placed = stale.placed({"a": "n1"}, ["c"])
    assert placed.unplaced() == [] and placed.unjudged() == {"a": "n1"}
    judged = placed.judged(placed.unjudged(), {"n1"})
    assert judged.failures() == {"p-worker-0": [None]}
    for merged in (judged.merged(stale), stale.merged(judged)):
        assert merged == judged
    nowhere = stale.placed({}, ["a", "c"])
    assert Remade.from_dict(json.loads(json.dumps(nowhere.to_dict()))) == nowhere and nowhere.unplaced() == []


def test_pods_judged_by_their_node_merge_with_other_looks_in_either_order():
    """Two looks merged in either order keep the same pods: one judged preempted by its node
    stays so whatever a look that did not read it says, and is never read again; one judged
    well is a failure of its own, read once too."""
    from functions.core.remade_pods import Remade, SeenPod

    first = Remade().seen([SeenPod("p-master-0", "a", node="n1"), SeenPod("p-worker-0", "c", node="n2")])
    stale = first.seen([SeenPod("p-master-0", "b", node="n3"), SeenPod("p-worker-0", "d", node="n3")])
    assert stale.unjudged() == {"a": "n1", "c": "n2"}
    judged = stale.judged(stale.unjudged(), {"n1"})
    assert judged.unjudged() == {} and judged.failures() == {"p-worker-0": [None]}
    for merged in (judged.merged(stale), stale.merged(judged), judged.merged(judged)):
        assert merged == judged
        assert Remade.from_dict(json.loads(json.dumps(merged.to_dict()))) == judged
