"""The cluster autoscaler's Events on the pods it could or could not help, and the Events API
that lists them, as a real cluster's (kubernetes/autoscaler's ``EventingScaleUpStatusProcessor``,
the API server's field selectors for Events), read through the real client on the simulated clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_stub import KubeStub
from kubernetes import client
from test_kube_standin import POOL, job, pods_of, refusal

from functions.adapters.kubernetes_client import api_client


@pytest.fixture
def offered() -> list:
    return [POOL]


@pytest.fixture
def kube(offered: list) -> Iterator[KubeStub]:
    stub = KubeStub(pools=lambda: list(offered), clock=SimulatedClock())
    stub.kubelets.containers = SimulatedContainers(stub.clock, lambda pod: Run(60, "loss=0.5\n"))
    yield stub
    stub.close()


def pod_events(kube: KubeStub, job_name: str) -> list[tuple[str, str, str, int]]:
    """(reason, message, source, count) of the Events on the Job's pod, as katuna lists them."""
    [pod] = pods_of(kube, job_name)
    listed = client.CoreV1Api(api_client(kube.url)).list_namespaced_event(
        "katuna", field_selector=f"involvedObject.uid={pod['metadata']['uid']}")
    return [(e.reason, e.message, e.source.component, e.count) for e in listed.items]


def test_a_pod_no_node_of_any_pool_fits_gets_not_trigger_scale_up_with_the_schedulers_reason(kube: KubeStub):
    client.BatchV1Api(api_client(kube.url)).create_namespaced_job("katuna", job("huge", cpu="8", pool=True))
    kube.settle()
    assert pod_events(kube, "huge") == [("NotTriggerScaleUp", "pod didn't trigger scale-up: 1 Insufficient cpu",
                                         "cluster-autoscaler", 1)]
    kube.clock.now += 60
    kube.settle()
    assert pod_events(kube, "huge")[0][3] > 1, "recorded again at every scan, counted up"
    assert kube.peak_nodes("spot") == 0


@pytest.mark.parametrize("added", [
    {"initContainers": [{"name": "seed", "resources": {"requests": {"cpu": "2"}}}]},
    {"initContainers": [{"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "600m"}}}]},
    {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}},
], ids=["init container", "native sidecar", "pod-level resources"])
def test_a_pod_whose_init_container_sidecar_or_own_resources_take_it_past_any_node_fits_none(kube: KubeStub,
                                                                                             added: dict):
    """The scheduler fits a pod by its whole requests (``PodRequests``): an init container asking
    for more than the containers' sum, a native sidecar running beside them, or the pod's own
    (pod-level) resources; a pod whose container alone (500m) fits the pool's 1-cpu nodes fits
    none with any of them."""
    made = job("helped", cpu="500m", pool=True)
    pod = made["spec"]["template"]["spec"]
    pod.update(added)
    for init in pod.get("initContainers", []):
        init.update(image="python:3.12", command=["true"])
    client.BatchV1Api(api_client(kube.url)).create_namespaced_job("katuna", made)
    kube.settle()
    assert pod_events(kube, "helped") == [("NotTriggerScaleUp", "pod didn't trigger scale-up: 1 Insufficient cpu",
                                           "cluster-autoscaler", 1)]
    assert kube.peak_nodes("spot") == 0


def test_a_pod_a_new_node_fits_gets_triggered_scale_up(kube: KubeStub):
    client.BatchV1Api(api_client(kube.url)).create_namespaced_job("katuna", job("fits", cpu="500m", pool=True))
    kube.settle()
    assert pod_events(kube, "fits") == [("TriggeredScaleUp", "pod triggered scale-up: [{spot 0->1 (max: 2)}]",
                                         "cluster-autoscaler", 1)]


@pytest.mark.parametrize("offered", [[replace(POOL, stocked_out=True)]])
def test_a_stocked_out_pool_fails_its_scale_up_and_backs_off_which_is_no_misfit(kube: KubeStub):
    client.BatchV1Api(api_client(kube.url)).create_namespaced_job("katuna", job("spot", cpu="500m", pool=True))
    kube.run_until(lambda: len(pod_events(kube, "spot")) == 3, moments=50)
    assert [(reason, message) for reason, message, _, _ in pod_events(kube, "spot")] == [
        ("TriggeredScaleUp", "pod triggered scale-up: [{spot 0->1 (max: 2)}]"),
        ("FailedScaleUp", "Node scale up in zones us-central1-a associated with this pod failed: GCE out of "
                          "resources. Pod is at risk of not being scheduled."),
        ("NotTriggerScaleUp", "pod didn't trigger scale-up: 1 in backoff after failed scale-up")]
    assert kube.peak_nodes("spot") == 0 and kube.autoscaler.node_seconds() == 0


def test_a_pool_at_its_maximum_is_skipped_not_misfit(kube: KubeStub):
    for n in range(3):
        client.BatchV1Api(api_client(kube.url)).create_namespaced_job("katuna", job(f"f{n}", cpu="1", pool=True))
    kube.run_until(lambda: any(e[0] == "NotTriggerScaleUp" for e in pod_events(kube, "f2")), moments=50)
    assert ("NotTriggerScaleUp", "pod didn't trigger scale-up: 1 max node group size reached") in \
        [e[:2] for e in pod_events(kube, "f2")]


def test_events_are_selected_by_the_fields_the_api_server_makes_selectable_and_no_other(kube: KubeStub):
    client.BatchV1Api(api_client(kube.url)).create_namespaced_job("katuna", job("huge", cpu="8", pool=True))
    kube.settle()
    core = client.CoreV1Api(api_client(kube.url))
    assert [e.reason for e in core.list_namespaced_event(
        "katuna", field_selector="reason=NotTriggerScaleUp,source=cluster-autoscaler").items] == ["NotTriggerScaleUp"]
    assert core.list_namespaced_event("katuna", field_selector="reason!=NotTriggerScaleUp").items == []
    assert core.list_namespaced_event("default").items == []
    assert refusal(lambda: core.list_namespaced_event("katuna", field_selector="message=x")) == (
        400, "field label not supported: message")


def test_katuna_may_list_events_where_its_trials_run_and_nowhere_else(kube: KubeStub):
    assert refusal(lambda: client.CoreV1Api(api_client(kube.url)).list_namespaced_event("kube-system"))[0] == 403
