"""The stand-ins on a simulated clock: nothing moves until the driver steps the cluster and
jumps the clock to the next moment something waits for, so hours of cluster time pass in
moments. Containers run for the time their behaviour says and leave its output as their log;
spot nodes get their cloud's notice, then go; every machine is billed from creation to removal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import pytest
from gke_stub import GkeStub
from kube_standin.clock import START, SimulatedClock, rfc3339
from kube_standin.clouds import gke_pools
from kube_standin.containers import Run, SimulatedContainers
from kube_standin.interruptions import Interruptions
from kube_standin.nodes import NodePool
from kube_stub import KubeStub

TRIAL_TAINT = {"key": "katuna.dev/trial", "value": "true", "effect": "NoSchedule"}
SPOT = {"gke": {"cloud.google.com/gke-spot": "true"}, "eks": {"eks.amazonaws.com/capacityType": "SPOT"}}


def job(name: str, labels: dict[str, str]) -> dict:
    """A trial Job whose pod takes most of a 4-cpu node, on the pool ``labels`` select."""
    container = {"name": "trial", "image": "python:3.12", "command": ["train", "0.5"],
                 "resources": {"requests": {"cpu": "3"}}}
    pod = {"restartPolicy": "Never", "containers": [container], "nodeSelector": labels,
           "tolerations": [{**TRIAL_TAINT, "operator": "Equal"}]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": "t"}}, "spec": pod},
                     "podFailurePolicy": {"rules": [{"action": "Ignore",
                                                     "onPodConditions": [{"type": "DisruptionTarget"}]}]}}}


def simulated(clock: SimulatedClock, pools: Callable[[], list[NodePool]], seconds: float = 300.0) -> KubeStub:
    kube = KubeStub(pools=pools, boot_seconds=90, idle_seconds=600, clock=clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(seconds, "loss=1.5\n"))
    return kube



def pods_of(kube: KubeStub, name: str) -> list[dict]:
    return sorted((p for p in kube.pods.values() if p["metadata"]["labels"]["job-name"] == name),
                  key=lambda p: p["metadata"]["creationTimestamp"])


def finished(kube: KubeStub, name: str) -> bool:
    return any(c["type"] == "Complete" for c in kube.jobs[("katuna", name)]["status"].get("conditions", []))


def test_a_job_runs_on_a_pool_that_gke_creates_and_the_autoscaler_grows_and_shrinks_on_simulated_time():
    clock = SimulatedClock()
    gke = GkeStub(speed=1.0, clock=clock)
    gke.add_cluster("p", "l", "c")
    kube = simulated(clock, gke_pools(gke))
    try:
        code, _ = gke.route("POST", "/v1/projects/p/locations/l/clusters/c/nodePools", {"nodePool": {
            "name": "spot", "config": {"machineType": "e2-standard-4", "spot": True},
            "autoscaling": {"enabled": True, "totalMinNodeCount": 0, "totalMaxNodeCount": 2}}})
        assert code == 200 and clock.next_wake() == START + 90, "the cloud's operation wakes the clock when done"
        assert kube.create_job("katuna", job("trial-0", SPOT["gke"]))[0] == 201
        kube.run_until(lambda: finished(kube, "trial-0"))

        [pod] = pods_of(kube, "trial-0")
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["startedAt"], terminated["finishedAt"]) == (rfc3339(START + 180), rfc3339(START + 480)), \
            "created in 90 s, booted in 90 s, then the container's 300 s"
        assert kube.read_log("katuna", pod["metadata"]["name"], None) == (200, b"loss=1.5\n")
        [node] = kube.nodes.values()
        assert node["metadata"]["creationTimestamp"] == rfc3339(START + 180), "a Node exists from its registration"

        kube.run_until(lambda: not kube.nodes)
        assert clock.now == START + 480 + 600, "the idle node goes after the autoscaler's ten minutes"
        assert kube.autoscaler.node_seconds() == 90 + 300 + 600, "billed from the VM's creation, boot included"
    finally:
        kube.close()
        gke.close()


def test_a_pod_unschedulable_between_the_autoscalers_scans_gets_its_node_at_the_next_scan():
    """As the real autoscaler's FAQ says, "scale-up is considered up to 10 seconds after pod is
    marked as unschedulable": its loop runs every ``--scan-interval``, so a pod that comes
    between two loops waits for the next, even on a pool the last loop already knew."""
    clock = SimulatedClock()
    pool = NodePool("spot", 0, 2, {**SPOT["gke"], "cloud.google.com/gke-nodepool": "spot"}, (TRIAL_TAINT,))
    kube = simulated(clock, lambda: [pool])
    try:
        kube.settle()
        clock.wake_at(START + 4)
        assert clock.advance() and clock.now == START + 4, "between the scans at 0 s and 10 s"
        assert kube.create_job("katuna", job("trial-0", SPOT["gke"]))[0] == 201
        kube.settle()
        assert not kube.autoscaler.machines, "no node asked for before the next scan"
        kube.run_until(lambda: kube.autoscaler.machines)
        [machine] = kube.autoscaler.machines.values()
        assert machine.created == START + 10, "asked for at the scan 10 s after the last"
    finally:
        kube.close()


@pytest.mark.parametrize(("cloud", "notice", "reason"), [("gke", 30, "TerminationByKubelet"),
                                                         ("eks", 120, "EvictionByEvictionAPI")])
def test_a_spot_node_gets_its_clouds_notice_its_pod_is_disrupted_and_the_job_runs_it_again(
        cloud: str, notice: float, reason: str):
    clock = SimulatedClock()
    pool = NodePool("spot", 0, 2, SPOT[cloud], (TRIAL_TAINT,), {"cpu": "4", "memory": "16Gi", "pods": "110"})
    kube = simulated(clock, lambda: [pool])
    interruptions = getattr(Interruptions, cloud)(per_hour=0.0)
    kube.autoscaler.interruptions = interruptions
    try:
        kube.create_job("katuna", job("trial-0", SPOT[cloud]))
        kube.run_until(lambda: kube.nodes)
        [first] = pods_of(kube, "trial-0")
        interruptions.per_hour = 30.0
        kube.run_until(lambda: interruptions.stopping)
        [(name, stops)] = interruptions.stopping.items()
        noticed = clock.now
        assert stops == noticed + notice
        disruption = next(c for c in first["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert (first["status"]["phase"], disruption["reason"]) == ("Failed", reason)
        node = kube.nodes[name]
        if cloud == "gke":
            assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["message"] == \
                "node is shutting down"
            assert (first["status"]["reason"], first["status"]["message"]) == (
                "Terminated", "Pod was terminated in response to imminent node shutdown."), "as the kubelet says"
        else:
            assert node["spec"]["unschedulable"] is True, "cordoned and drained"
            assert first["metadata"]["uid"] not in {p["metadata"]["uid"] for p in pods_of(kube, "trial-0")}, \
                "the Eviction API deletes the pod once its Job controller has seen it fail"

        interruptions.per_hour = 0.0
        kube.run_until(lambda: finished(kube, "trial-0"))
        assert kube.autoscaler.machines[name].removed == noticed + notice, "the VM stops when its notice ends"
        [second] = pods_of(kube, "trial-0")
        assert second["metadata"]["uid"] != first["metadata"]["uid"], "the disrupted pod is gone"
        assert second["status"]["phase"] == "Succeeded" and interruptions.count == 1
    finally:
        kube.close()


def test_a_stopped_gke_spot_vm_leaves_its_node_unreachable_with_its_pods_for_five_minutes():
    """GKE stops a preempted spot VM rather than deleting it: its Node stays, not ready with its
    kubelet silent, and the pods it held stay Failed until the taint manager deletes them; the API
    server cannot read their logs (500, the dial to the kubelet fails). The VM is billed no more."""
    clock = SimulatedClock()
    pool = NodePool("spot", 0, 2, SPOT["gke"], (TRIAL_TAINT,), {"cpu": "4", "memory": "16Gi", "pods": "110"})
    kube = simulated(clock, lambda: [pool])
    interruptions = Interruptions.gke(per_hour=0.0)
    kube.autoscaler.interruptions = interruptions
    try:
        kube.create_job("katuna", job("trial-0", SPOT["gke"]))
        kube.run_until(lambda: kube.nodes)
        interruptions.per_hour = 30.0
        kube.run_until(lambda: interruptions.stopping)
        interruptions.per_hour = 0.0
        [(name, stops)] = interruptions.stopping.items()
        kube.run_until(lambda: name in kube.unreachable)
        assert clock.now == stops and kube.autoscaler.machines[name].removed == stops
        ready = next(c for c in kube.nodes[name]["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
        first = pods_of(kube, "trial-0")[0]
        assert (first["spec"]["nodeName"], first["status"]["phase"]) == (name, "Failed")
        code, body = kube.read_log("katuna", first["metadata"]["name"], "trial")
        assert code == 500 and body["message"].endswith(f"dial tcp {name}:10250: connect: no route to host")

        kube.run_until(lambda: name not in kube.nodes)
        assert clock.now == stops + 300
        assert first["metadata"]["name"] not in {p["metadata"]["name"] for p in pods_of(kube, "trial-0")}
    finally:
        kube.close()


def static(clock: SimulatedClock, seconds: float = 300.0) -> KubeStub:
    """The stand-in with its one static node, on a simulated clock."""
    kube = KubeStub(clock=clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(seconds, "loss=1.5\n"))
    return kube


def test_a_job_whose_every_pod_is_disrupted_replaces_them_for_ever():
    """The Job controller puts no bound on the failures its podFailurePolicy ignores (the bound
    is katuna's to set, see tests/test_disruptions.py), and counts none of them in its status;
    the scheduler deletes each preempted pod once the Job controller has seen it fail, so only
    the latest pod is left to see."""
    clock = SimulatedClock()
    kube = static(clock)
    kube.disrupt = lambda job, index: 10.0
    try:
        kube.create_job("katuna", job("trial-0", {}))
        uid = kube.jobs[("katuna", "trial-0")]["metadata"]["uid"]
        kube.run_until(lambda: kube.job_controller.pods_made.get(uid, 0) > 50)
        assert len(pods_of(kube, "trial-0")) == 1
        status = kube.jobs[("katuna", "trial-0")]["status"]
        assert not status.get("conditions"), "the Job runs on"
        assert status.get("failed", 0) == 0 and status.get("succeeded", 0) == 0, "ignored failures are not counted"
    finally:
        kube.close()


def test_a_preempted_pod_whose_job_is_deleted_before_its_controller_saw_it_goes_with_the_job():
    """The preempted pod waits on its Job controller's tracking finalizer; when the Job is
    deleted first, the controller takes the finalizer off the orphan, and the pod goes."""
    clock = SimulatedClock()
    kube = static(clock)
    try:
        kube.create_job("katuna", job("trial-0", {}))
        kube.run_until(lambda: any(p["status"].get("phase") == "Running" for p in pods_of(kube, "trial-0")))
        [pod] = pods_of(kube, "trial-0")
        with kube.lock:
            kube.preempt_pod("katuna", pod["metadata"]["name"])
            assert kube.delete_job("katuna", "trial-0", "Background")[0] == 200
        kube.run_until(lambda: not pods_of(kube, "trial-0"))
    finally:
        kube.close()


def conditions(pod: dict) -> dict[str, str]:
    return {c["type"]: c.get("reason", "") for c in pod["status"].get("conditions", [])}


@pytest.mark.parametrize("resource", ["memory", "ephemeral-storage"])
def test_a_container_that_takes_its_nodes_memory_or_disk_is_evicted_and_replaced(resource: str):
    """With no limit of the resource, the container takes its node's: the kubelet's node-pressure
    eviction fails the pod ``Evicted`` with ``DisruptionTarget``, and the Job replaces it."""
    clock = SimulatedClock()
    kube = static(clock)
    kube.exhaust = lambda job, index: (60.0, resource) if index == 0 else None
    try:
        kube.create_job("katuna", job("trial-0", {}))
        kube.run_until(lambda: finished(kube, "trial-0"))
        evicted, replacement = pods_of(kube, "trial-0")
        status = evicted["status"]
        assert (status["phase"], status["reason"]) == ("Failed", "Evicted")
        assert status["message"].startswith(f"The node was low on resource: {resource}. ")
        assert f"Container trial was using 14Gi, request is 0, has larger consumption of {resource}." in status["message"]
        assert conditions(evicted)["DisruptionTarget"] == "TerminationByKubelet"
        assert replacement["status"]["phase"] == "Succeeded"
    finally:
        kube.close()


@pytest.mark.parametrize(("resource", "limit", "code", "reason"), [("memory", "1Gi", 137, "OOMKilled"),
                                                                  ("ephemeral-storage", "1Gi", 143, "Error")])
def test_a_container_over_its_own_limit_fails_its_job(resource: str, limit: str, code: int, reason: str):
    """Over its memory limit the kernel kills the container; over its ephemeral-storage limit the
    kubelet evicts the pod with no ``DisruptionTarget`` (SIGTERM ends its container, 143):
    failures the Job counts, so it fails."""
    clock = SimulatedClock()
    kube = static(clock)
    kube.exhaust = lambda job, index: (60.0, resource)
    spec = job("trial-0", {})
    spec["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = {resource: limit}
    try:
        kube.create_job("katuna", spec)
        kube.run_until(lambda: any(c["type"] == "Failed" for c in
                                   kube.jobs[("katuna", "trial-0")]["status"].get("conditions", [])))
        [pod] = pods_of(kube, "trial-0")
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (pod["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Failed", code, reason)
        assert "DisruptionTarget" not in conditions(pod)
        if resource == "ephemeral-storage":
            assert (pod["status"]["reason"], pod["status"]["message"]) == (
                "Evicted", 'Container trial exceeded its local ephemeral storage limit "1Gi". ')
    finally:
        kube.close()


def test_the_nodes_of_a_pool_gke_deletes_stay_cordoned_and_billed_until_its_operation_ends():
    """GKE drains and deletes a pool's VMs inside its delete operation (60 s here): they run, and
    are billed, until it is done; the autoscaler neither grows nor shrinks a pool being deleted."""
    clock = SimulatedClock()
    gke = GkeStub(speed=1.0, clock=clock)
    gke.add_cluster("p", "l", "c")
    kube = simulated(clock, gke_pools(gke))
    try:
        gke.route("POST", "/v1/projects/p/locations/l/clusters/c/nodePools", {"nodePool": {
            "name": "spot", "config": {"machineType": "e2-standard-4", "spot": True},
            "autoscaling": {"enabled": True, "totalMinNodeCount": 0, "totalMaxNodeCount": 2}}})
        assert kube.create_job("katuna", job("trial-0", SPOT["gke"]))[0] == 201
        kube.run_until(lambda: finished(kube, "trial-0"))
        [name] = kube.nodes
        code, _ = gke.route("DELETE", "/v1/projects/p/locations/l/clusters/c/nodePools/spot", {})
        deleted = clock.now
        assert code == 200
        assert kube.create_job("katuna", job("trial-1", SPOT["gke"]))[0] == 201
        kube.run_until(lambda: kube.nodes[name]["spec"].get("unschedulable"))
        kube.run_until(lambda: not kube.nodes)
        assert clock.now == deleted + 60 and kube.autoscaler.machines[name].removed == deleted + 60
        assert len(kube.autoscaler.machines) == 1, "no node made for the pod that came while the pool went"
        assert not pods_of(kube, "trial-1")[0]["spec"].get("nodeName")
    finally:
        kube.close()
        gke.close()


def job_changes(kube: KubeStub, name: str) -> list[list[str]]:
    """The condition types of each change of the Job a watch would see, in their order."""
    return [[c["type"] for c in change.object["status"].get("conditions", [])] for change in kube.history.changes
            if change.resource == "jobs" and change.object["metadata"]["name"] == name]


def test_a_jobs_end_is_written_first_as_its_interim_condition_and_its_terminal_one_once_no_pod_stops():
    """Kubernetes 1.31+: ``FailureTarget`` (``SuccessCriteriaMet``) is written alone, the Job's
    pods still stopping counted ``terminating``; ``Failed`` (``Complete``, with ``completionTime``)
    follows once none is. A failed Job has no ``completionTime``."""
    clock = SimulatedClock()
    kube = static(clock, seconds=3600.0)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(3600.0, term_seconds=20.0))
    try:
        late, done = job("late", {}), job("done", {})
        late["spec"]["activeDeadlineSeconds"] = 60
        kube.create_job("katuna", late)
        kube.run_until(lambda: job_changes(kube, "late")[-1] == ["FailureTarget"])
        status = kube.jobs[("katuna", "late")]["status"]
        assert (status["terminating"], status.get("active"), status["failed"]) == (1, None, 1), status
        kube.run_until(lambda: "Failed" in job_changes(kube, "late")[-1])
        target, failed = kube.jobs[("katuna", "late")]["status"]["conditions"]
        assert (target["type"], failed["type"], failed["reason"]) == ("FailureTarget", "Failed", "DeadlineExceeded")
        assert failed["lastTransitionTime"] == rfc3339(START + 80), "once its pod stopped, 20 s after the deadline"
        assert "completionTime" not in status and status["terminating"] == 0

        kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(30.0))
        kube.create_job("katuna", done)
        kube.run_until(lambda: "Complete" in job_changes(kube, "done")[-1])
        assert ["SuccessCriteriaMet"] in job_changes(kube, "done"), "the interim condition is written alone first"
        status = kube.jobs[("katuna", "done")]["status"]
        assert status["completionTime"] == status["conditions"][-1]["lastTransitionTime"] and status["succeeded"] == 1
    finally:
        kube.close()


@pytest.mark.parametrize(("deadline", "ends"), [(2**63 - 1, "DeadlineExceeded"), (2**63 // 10**9 + 1, "DeadlineExceeded"),
                                                ((2**63 - 1) // 10**9, "CompletionsReached")])
def test_a_job_deadline_past_what_a_go_duration_holds_fails_the_job_at_its_first_sync(deadline: int, ends: str):
    """The Job controller reads ``activeDeadlineSeconds`` as seconds times ``time.Second``, in
    int64 nanoseconds: past about 292 years it wraps, to a deadline already past; the API took it."""
    clock = SimulatedClock()
    kube = static(clock, seconds=30.0)
    try:
        far = job("far", {})
        far["spec"]["activeDeadlineSeconds"] = deadline
        kube.create_job("katuna", far)
        kube.run_until(lambda: any(t in ("Complete", "Failed") for t in job_changes(kube, "far")[-1]))
        assert kube.jobs[("katuna", "far")]["status"]["conditions"][-1]["reason"] == ends
    finally:
        kube.close()


def test_a_job_of_parallelism_without_completions_runs_every_pod_and_succeeds_once_one_did_and_all_ended():
    """batch/v1's defaulting sets ``completions`` only where ``parallelism`` is unset too: a work
    queue's Job runs ``parallelism`` pods, makes no more once one succeeded, and is complete
    when none is active."""
    clock = SimulatedClock()
    kube = static(clock, seconds=30.0)
    try:
        queue = job("queue", {})
        queue["spec"]["parallelism"] = 2
        kube.create_job("katuna", queue)
        kube.run_until(lambda: "Complete" in job_changes(kube, "queue")[-1])
        stored = kube.jobs[("katuna", "queue")]
        assert "completions" not in stored["spec"] and stored["status"]["succeeded"] == 2
        assert len(pods_of(kube, "queue")) == 2
    finally:
        kube.close()


def test_a_failed_pod_is_replaced_after_a_back_off_doubled_with_each_failure_up_to_ten_minutes():
    """``DefaultJobPodFailureBackOff`` (10 s here), doubled per failure, at most
    ``MaxJobPodFailureBackOff``: ten minutes."""
    clock = SimulatedClock()
    kube = static(clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(0.0, code=1))
    kube.backoff_seconds = 10.0
    try:
        crash = job("crash", {})
        crash["spec"]["backoffLimit"] = 8
        kube.create_job("katuna", crash)
        kube.run_until(lambda: "Failed" in job_changes(kube, "crash")[-1])
        made = sorted(datetime.fromisoformat(p["metadata"]["creationTimestamp"]).timestamp()
                      for p in pods_of(kube, "crash"))
        assert [b - a for a, b in zip(made, made[1:], strict=False)] == [10, 20, 40, 80, 160, 320, 600, 600]
    finally:
        kube.close()


def test_a_pool_resized_down_loses_nodes_picked_with_no_regard_to_their_pods():
    """gcloud's reference for a resize: "when resizing down, instances running pods and instances
    without pods are not differentiated. Resize will pick instances to remove at random". So a
    pool of six nodes, three of them running a trial, resized to three, may lose a trial's node
    while an empty one stays: its pod is evicted, and its Job runs it again."""
    clock = SimulatedClock()
    labels = {**SPOT["gke"], "cloud.google.com/gke-nodepool": "spot"}
    pool = NodePool("spot", 6, 6, labels, (TRIAL_TAINT,))
    pools = [pool]
    kube = simulated(clock, lambda: pools)
    try:
        kube.run_until(lambda: len(kube.nodes) == 6)
        for n in range(3):
            kube.create_job("katuna", job(f"trial-{n}", labels))
        kube.run_until(lambda: all(p["status"].get("phase") == "Running" for p in kube.pods.values())
                       and len(kube.pods) == 3)
        running = {p["spec"]["nodeName"]: p for p in kube.pods.values()}
        pools[0] = replace(pool, min_nodes=0, reconciling=True, resizing=3)
        kube.run_until(lambda: sum(bool(n["spec"].get("unschedulable")) for n in kube.nodes.values()) == 3)
        drained = {name for name, node in kube.nodes.items() if node["spec"].get("unschedulable")}
        assert drained & set(running) and drained - set(running), "trials' nodes and empty ones alike"
        for name in drained & set(running):
            assert conditions(running[name])["DisruptionTarget"] == "EvictionByEvictionAPI"
        pools[0] = replace(pool, min_nodes=0, max_nodes=3)
        kube.run_until(lambda: all(finished(kube, f"trial-{n}") for n in range(3)))
        assert len(kube.nodes) == 3 and not drained & set(kube.nodes), "the resize done, the drained nodes are gone"
    finally:
        kube.close()
