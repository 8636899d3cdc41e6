"""The loopback API server's ResourceQuota sums and LimitRanges, as a real API server's admission
applies them to the pods the Job controller makes: a pod past the quota's hard cpu, memory or GPUs
is refused (``exceeded quota: NAME, requested: ..., used: ..., limited: ...``) and made once pods
that held the quota end; a LimitRange fills in what a container leaves out and refuses a container
outside its bounds (``maximum cpu usage per Container is 1, but limit is 2``)."""

from __future__ import annotations

import pytest
from kube_standin.limit_ranges import made, refusal
from kube_standin.quota_usage import pod_usage, shown
from kube_stub import KubeStub
from kubernetes import client
from test_kube_standin import api as kube_api
from test_kube_standin import job, pods_of
from waiting import eventually


@pytest.fixture(scope="module")
def kube():
    stub = KubeStub()
    yield stub
    stub.close()


def _asking(name: str, resources: dict, code: str = "print('done')") -> dict:
    made_job = job(name, code)
    made_job["spec"]["template"]["spec"]["containers"][0]["resources"] = resources
    return made_job


def _refused(kube: KubeStub, name: str) -> str:
    return kube.events_of("Job", name)[-1]["message"].partition(" is forbidden: ")[2]


def test_a_quota_refuses_a_pod_past_its_hard_cpu_and_admits_it_once_a_pod_holding_it_ends(kube: KubeStub):
    """Two pods asking for 1.5 cpu and 1Gi each against ``requests.cpu: 2``: the second is refused
    naming what it asks, what is used and the limit; the first's end frees the quota (an ended pod
    counts nothing), and the second is made at the controller's next try."""
    kube.add_namespace("sums")
    kube.set_quota("sums", {"requests.cpu": "2", "requests.memory": "4Gi", "limits.memory": "4Gi"})
    try:
        batch = client.BatchV1Api(kube_api(kube))
        asks = {"requests": {"cpu": "1500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
        batch.create_namespaced_job("sums", _asking("first", asks, "import time; time.sleep(1.5)"))
        eventually(lambda: pods_of(kube, "first"), "the first pod made")
        assert kube.quota_used("sums") == {"requests.cpu": "1500m", "requests.memory": "1Gi", "limits.memory": "1Gi"}
        batch.create_namespaced_job("sums", _asking("second", asks))
        eventually(lambda: kube.events_of("Job", "second"), "the second pod refused")
        assert _refused(kube, "second") == ("exceeded quota: trial-quota, requested: requests.cpu=1500m, "
                                            "used: requests.cpu=1500m, limited: requests.cpu=2")
        eventually(lambda: pods_of(kube, "second"), "the second pod made once the first ended", timeout=20)
    finally:
        kube.set_quota("sums", {})


def test_a_pod_counts_its_gpus_requests_limits_and_its_largest_init_container():
    """``podComputeUsageHelper``: the most of the containers' sum and each init container's; a
    limit alone stands for its request; an extended resource counts only under ``requests.``."""
    spec = {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 1}}},
                           {"name": "b", "resources": {"requests": {"cpu": "500m", "ephemeral-storage": "2Gi"}}}],
            "initContainers": [{"name": "seed", "resources": {"requests": {"cpu": "2", "memory": "128Mi"}}}]}
    usage = {name: shown(*value) for name, value in pod_usage(spec).items()}
    assert usage == {"pods": "1", "cpu": "2", "requests.cpu": "2", "limits.cpu": "1", "memory": "1Gi",
                     "requests.memory": "1Gi", "limits.memory": "1Gi", "ephemeral-storage": "2Gi",
                     "requests.ephemeral-storage": "2Gi", "requests.nvidia.com/gpu": "1"}


def test_a_limit_range_fills_in_what_a_container_leaves_out_and_refuses_what_is_outside_its_bounds(kube: KubeStub):
    """A Container item with ``max`` cpu 1 and ``min`` memory 64Mi: a container asking for nothing
    gets the max as its limit and request (``default`` from ``max``), noted in the pod's annotation;
    one whose limit is over the max is refused in LimitRanger's words; one whose request its
    default limit leaves above that limit is invalid."""
    kube.add_namespace("ranged")
    kube.set_limit_range("ranged", "bounds", [{"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}}])
    try:
        batch = client.BatchV1Api(kube_api(kube))
        batch.create_namespaced_job("ranged", _asking("plain", {}))
        batch.create_namespaced_job("ranged", _asking("over", {"limits": {"cpu": "2", "memory": "32Mi"}}))
        batch.create_namespaced_job("ranged", _asking("above", {"requests": {"cpu": "1500m"}}))
        eventually(lambda: pods_of(kube, "plain") and kube.events_of("Job", "over") and kube.events_of("Job", "above"),
                   "one pod made, two refused")
        pod = pods_of(kube, "plain")[0]
        assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1"},
                                                            "requests": {"cpu": "1", "memory": "64Mi"}}
        assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
            "LimitRanger plugin set: cpu, memory request for container trial; cpu limit for container trial")
        assert _refused(kube, "over") == ("[minimum memory usage per Container is 64Mi, but request is 32Mi, "
                                          "maximum cpu usage per Container is 1, but limit is 2]")
        assert kube.events_of("Job", "above")[-1]["message"].endswith(
            'is invalid: spec.containers[0].resources.requests: Invalid value: "1500m": must be less than or equal '
            "to cpu limit of 1")
    finally:
        kube.set_limit_range("ranged", "bounds", [])


def test_a_limit_range_refuses_a_limit_too_far_above_its_request_and_a_pod_past_its_pod_bounds():
    """``maxLimitRequestRatio`` per Container, and a Pod item's ``max`` against the pod's sums."""
    ranges = [made([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
                    {"type": "Pod", "max": {"memory": "1Gi"}}])]
    container = {"name": "t", "resources": {"requests": {"cpu": "100m", "memory": "768Mi"},
                                            "limits": {"cpu": "500m", "memory": "768Mi"}}}
    pod = {"metadata": {}, "spec": {"containers": [container, {**container, "name": "u"}]}}
    assert refusal(pod, ranges) == ("[cpu max limit to request ratio per Container is 2, but provided ratio is "
                                    "5.000000, maximum memory usage per Pod is 1Gi, but limit is 1536Mi]")


def test_a_pod_counts_its_native_sidecars_beside_its_containers_and_its_init_containers():
    """``PodRequests``: a native sidecar (``restartPolicy: Always``) runs beside the containers and
    beside each init container after it, so its requests and limits add to both."""
    sidecar = {"name": "proxy", "restartPolicy": "Always",
               "resources": {"requests": {"cpu": "300m", "memory": "64Mi"}, "limits": {"cpu": "1"}}}
    seed = {"name": "seed", "resources": {"requests": {"cpu": "1", "memory": "32Mi"}}}
    spec = {"containers": [{"name": "t", "resources": {"requests": {"cpu": "500m", "memory": "128Mi"},
                                                        "limits": {"cpu": "500m"}}}],
            "initContainers": [sidecar, seed]}
    usage = {name: shown(*value) for name, value in pod_usage(spec).items()}
    assert (usage["requests.cpu"], usage["requests.memory"], usage["limits.cpu"]) == ("1300m", "192Mi", "1500m")


def test_a_limit_range_pod_item_counts_a_native_sidecar_in_the_pods_sums():
    """The LimitRanger's own ``podRequests`` adds a sidecar's limits to the containers'."""
    ranges = [made([{"type": "Pod", "max": {"memory": "1Gi"}}])]
    sidecar = {"name": "proxy", "restartPolicy": "Always",
               "resources": {"requests": {"memory": "256Mi"}, "limits": {"memory": "256Mi"}}}
    container = {"name": "t", "resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}}
    pod = {"metadata": {}, "spec": {"containers": [container], "initContainers": [sidecar]}}
    assert refusal(pod, ranges) == "maximum memory usage per Pod is 1Gi, but limit is 1280Mi"


def test_a_pod_giving_its_own_resources_counts_them_for_its_containers():
    """Pod-level ``resources`` stand for the containers' sums of cpu and memory; a pod-level limit
    stands for a request no container gives; other resources are still the containers'."""
    spec = {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "4", "memory": "2Gi"}},
            "containers": [{"name": "t", "resources": {"requests": {"cpu": "100m", "nvidia.com/gpu": "1"}}}]}
    usage = {name: shown(*value) for name, value in pod_usage(spec).items()}
    assert {name: usage.get(name) for name in ("requests.cpu", "limits.cpu", "requests.memory", "limits.memory",
                                               "requests.nvidia.com/gpu")} == {
        "requests.cpu": "2", "limits.cpu": "4", "requests.memory": "2Gi", "limits.memory": "2Gi",
        "requests.nvidia.com/gpu": "1"}
