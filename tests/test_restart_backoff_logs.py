"""The log of a trial's container its kubelet runs again in place (``restartPolicy: OnFailure``)
while it waits out its crash-loop back-off: the kubelet then serves a read of the current run
the run that ended (``validateContainerLogStatus``), which katuna shows once, as the earlier
run. The real client against the stand-in's API server and kubelet, on a simulated clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_stub import KubeStub
from kubernetes import client

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.kubernetes_logs import between_runs
from functions.core.cluster import Cluster
from functions.core.launch import TrialLaunch

POD = "torch-0-master-0"
EARLIER = (f"[katuna: the trial's container in pod {POD} was run again in place (1 restart(s)); its previous "
           "run's log follows, which ended (exit code 1, Error)]\n"
           "first run: CUDA out of memory\n"
           f"[katuna: the current run of the trial's container in pod {POD} follows]\n")


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    """A cluster whose trial container fails its first run and runs for hours the next, with a
    back-off of an hour before a container is run again."""
    stub = KubeStub(clock=SimulatedClock())
    started: list[str] = []

    def behaviour(pod: dict) -> Run:
        started.append(pod["metadata"]["name"])
        return Run(5, "first run: CUDA out of memory\n", code=1) if len(started) == 1 else Run(7200, "second run\n")

    stub.kubelets.containers = SimulatedContainers(stub.clock, behaviour)
    stub.kubelets.restart_backoff = (3600.0, 3600.0)
    stub.install_operator("training-operator")
    yield stub
    stub.close()


def _launch() -> TrialLaunch:
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [
        {"name": "pytorch", "image": "python:3.12", "command": ["train"]}]}}}
    return TrialLaunch("torch", "0123456789ab", 0, 1, "torch-0", [], {}, ".", timeout=None, trial_spec={
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {"Master": replica}}},
        primary_container="pytorch")


def _backing_off(kube: KubeStub) -> bool:
    pod = kube.pods.get(("katuna", POD))
    statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
    return bool(statuses) and (statuses[0]["state"].get("waiting") or {}).get("reason") == "CrashLoopBackOff"


def test_a_container_backing_off_shows_its_earlier_run_once(kube: KubeStub):
    """While the container waits to run again, its log is its earlier run's, marked, and no
    current run's line: the kubelet's answer for the current run is that earlier run again."""
    executor = KubernetesExecutor(Cluster(namespace="katuna", start_allowance=600), api_client(kube.url),
                                  clock=kube.clock.time)
    launch = _launch()
    executor.launch(launch)
    kube.run_until(lambda: _backing_off(kube))
    assert "".join(executor.log(launch)) == EARLIER
    read = next(p for p in client.CoreV1Api(api_client(kube.url)).list_namespaced_pod("katuna").items
                if p.metadata.name == POD)
    assert between_runs(read, "pytorch"), "katuna reads no current run: the kubelet would serve the earlier one"
    assert executor.running_log(launch, None, 4096) is None, "no line of a current run is read"


def test_once_run_again_its_current_run_follows(kube: KubeStub):
    executor = KubernetesExecutor(Cluster(namespace="katuna", start_allowance=600), api_client(kube.url),
                                  clock=kube.clock.time)
    launch = _launch()
    executor.launch(launch)
    kube.run_until(lambda: _backing_off(kube))
    kube.run_until(lambda: not _backing_off(kube) and "second run" in "".join(executor.log(launch)))
    assert "".join(executor.log(launch)) == EARLIER + "second run\n"


def test_the_kubelet_answers_a_backing_off_containers_current_run_with_the_run_that_ended(kube: KubeStub):
    """As ``validateContainerLogStatus``: a last terminated run comes before a waiting state."""
    KubernetesExecutor(Cluster(namespace="katuna"), api_client(kube.url), clock=kube.clock.time).launch(_launch())
    kube.run_until(lambda: _backing_off(kube))
    core = client.CoreV1Api(api_client(kube.url))
    assert core.read_namespaced_pod_log(POD, "katuna", container="pytorch") == "first run: CUDA out of memory\n"
    assert core.read_namespaced_pod_log(POD, "katuna", container="pytorch", previous=True) == \
        "first run: CUDA out of memory\n"


def test_a_container_lost_while_backing_off_shows_its_earlier_run_once(kube: KubeStub):
    """A container its kubelet lost while it waited to run again (its node's VM restarted) ends
    with no ``containerID`` (``ContainerStatusUnknown``): the kubelet would answer a read of
    that run with the run before it, so katuna reads no current run of it."""
    executor = KubernetesExecutor(Cluster(namespace="katuna", start_allowance=600), api_client(kube.url),
                                  clock=kube.clock.time)
    launch = _launch()
    executor.launch(launch)
    kube.run_until(lambda: _backing_off(kube))
    with kube.lock:
        pod = kube.pods[("katuna", POD)]
        kube.kubelets.lose(kube, pod)
        state = pod["status"]["containerStatuses"][0]
    assert "containerID" not in state["state"]["terminated"] and state["lastState"]["terminated"]["containerID"]
    read = next(p for p in client.CoreV1Api(api_client(kube.url)).list_namespaced_pod("katuna").items
                if p.metadata.name == POD)
    assert between_runs(read, "pytorch"), "katuna reads no current run: the kubelet would serve the earlier one"
