"""Trials whose pod no node of the cluster's pools can fit, on the stand-in's simulated clock
with its cluster autoscaler, through the real client: the autoscaler says so on the pod
(``NotTriggerScaleUp``, every pool's node would not fit it), so the trial fails at once, naming
what the pod asked for and why; a study whose template itself asks for it stops after 3 such
failures, saying what to change. A pool the cloud has no machines for (a stockout: the scale-up
failed, the pool is in backoff) is no misfit: the trial waits its start allowance."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_standin.nodes import NodePool
from kube_stub import KubeStub
from kubernetes import client
from test_missing_objects import deliver, started
from test_trial_pods import pods_of

from functions.adapters.kubernetes_unstartable import Unstartable, misfit, unfit
from functions.handlers.starting import look

POOL = NodePool("standard", 0, 3, {"pool": "standard"}, (), {"cpu": "2", "memory": "8Gi", "pods": "110"})


@pytest.fixture
def offered() -> list[NodePool]:
    return [POOL]


@pytest.fixture
def kube(offered: list[NodePool]) -> Iterator[KubeStub]:
    stub = KubeStub(pools=lambda: list(offered), clock=SimulatedClock())
    stub.kubelets.containers = SimulatedContainers(stub.clock, lambda pod: Run(60, "loss=0.5\n"))
    yield stub
    stub.close()


def said(kube: KubeStub, job: str, reason: str):
    """Whether the autoscaler has recorded ``reason`` on the Job's pod."""
    return lambda: pods_of(kube, job) and any(
        e["reason"] == reason for e in kube.events_of("Pod", pods_of(kube, job)[0]["metadata"]["name"]))


CASES = {
    "cpu": ({"resources": {"requests": {"cpu": "8", "memory": "1Gi"}}}, {}, "cpu: 8, memory: 1Gi", "1 Insufficient cpu"),
    "gpu": ({"resources": {"limits": {"nvidia.com/gpu": "1"}}}, {}, "nvidia.com/gpu: 1", "1 Insufficient nvidia.com/gpu"),
    "selector": ({}, {"nodeSelector": {"pool": "a100"}}, "no resources with nodeSelector pool=a100",
                 "1 node(s) didn't match Pod's node affinity/selector"),
}


@pytest.mark.parametrize(("container", "pod", "asked", "autoscaler"), CASES.values(), ids=CASES.keys())
def test_a_study_whose_trials_no_node_of_the_pool_fits_stops_at_once_saying_what_to_change(
        kube: KubeStub, tmp_path: Path, container: dict, pod: dict, asked: str, autoscaler: str):
    """Five trials, one at a time: each fails as soon as the autoscaler says it cannot help,
    no start allowance waited; the third ends the study."""
    store, deps, record, dispatcher = started(kube, tmp_path, "big", trials=5, pod=pod, **container)
    try:
        for number in range(3):
            kube.run_until(said(kube, f"big-{number}", "NotTriggerScaleUp"))
            ended = look(record, store.get_trial("big", number), deps)
            assert ended is not None and ended.data["outcome"] == "error", "no allowance waited"
            deliver(dispatcher, ended)
        cause = (f"cannot be scheduled: the pod asks for {asked}, and no node the cluster's pools can add fits it "
                 f"(cluster autoscaler: pod didn't trigger scale-up: {autoscaler})")
        trial = store.get_trial("big", 0)
        assert trial.reason.startswith(f"could not start: {cause}; its pod big-0-")
        assert trial.reason.endswith("; no node the cluster autoscaler could add would fit it, so no wait can change it")
        study = store.get_study("big")
        assert (study.status, [t.state for t in store.trials("big")]) == ("failed", ["FAIL"] * 3)
        assert study.reason == (
            f"every trial could not start: {cause} (3 trials); every later trial would meet the same, so the study "
            "stops. Ask for what a node of the pool offers in the trial template (its resources, nodeSelector, "
            "tolerations), or give the pool a machine type that fits the trials (enough cpu, memory or GPUs, the "
            "labels and taints the trials select), "
            "then delete this study and submit it again (submitted again as it is, a failed study stays failed)")
        assert kube.peak_nodes() == 0
    finally:
        store.close()


def test_a_study_whose_requests_a_trials_parameter_sets_goes_on(kube: KubeStub, tmp_path: Path):
    """Another trial may ask for less: each unfit trial fails, the study goes on."""
    cpu = {"name": "cpu", "type": "categorical", "values": ["8"]}
    resources = {"requests": {"cpu": "${trialParameters.cpu}"}}
    store, deps, record, dispatcher = started(kube, tmp_path, "sized", 5, (cpu,), resources=resources)
    try:
        for number in range(3):
            kube.run_until(said(kube, f"sized-{number}", "NotTriggerScaleUp"))
            ended = look(record, store.get_trial("sized", number), deps)
            assert ended is not None and ended.data["outcome"] == "error"
            deliver(dispatcher, ended)
        assert store.get_study("sized").status == "running"
    finally:
        store.close()


@pytest.mark.parametrize("offered", [[replace(POOL, stocked_out=True)]])
def test_a_trial_waiting_for_a_stocked_out_pool_is_no_misfit_and_waits(kube: KubeStub, tmp_path: Path):
    """The pool's node would fit it; its scale-up failed and the pool is in backoff: capacity
    may come back, so the trial waits, as for any pod no node fits yet."""
    store, deps, record, _ = started(kube, tmp_path, "spot", 1, resources={"requests": {"cpu": "1"}})
    try:
        kube.run_until(said(kube, "spot-0", "NotTriggerScaleUp"))
        [event] = [e for e in kube.events_of("Pod", pods_of(kube, "spot-0")[0]["metadata"]["name"])
                   if e["reason"] == "NotTriggerScaleUp"]
        assert event["message"] == "pod didn't trigger scale-up: 1 in backoff after failed scale-up"
        assert look(record, store.get_trial("spot", 0), deps) is None
        assert "no node fits it" in store.get_trial("spot", 0).reason
    finally:
        store.close()


def event(reason: str, message: str, at: int, component: str = "cluster-autoscaler") -> client.CoreV1Event:
    stamp = datetime.fromtimestamp(1_700_000_000 + at, UTC)
    return client.CoreV1Event(involved_object=client.V1ObjectReference(kind="Pod", name="p"), metadata=client.V1ObjectMeta(),
                          reason=reason, message=message, last_timestamp=stamp, source=client.V1EventSource(component=component))


NO = "pod didn't trigger scale-up: "
WORDS = {
    "misfit": ([event("NotTriggerScaleUp", NO + "2 Insufficient memory, 1 node(s) had untolerated taint {gpu: true}", 0)],
               NO + "2 Insufficient memory, 1 node(s) had untolerated taint {gpu: true}"),
    "aggregated": ([event("NotTriggerScaleUp", "(combined from similar events): " + NO + "1 Insufficient cpu", 0)],
                   NO + "1 Insufficient cpu"),
    "older wording": ([event("NotTriggerScaleUp", "pod didn't trigger scale-up (it wouldn't fit if a new node is added)",
                             0)], "pod didn't trigger scale-up (it wouldn't fit if a new node is added)"),
    "a full pool": ([event("NotTriggerScaleUp", NO + "1 Insufficient cpu, 1 max node group size reached", 0)], None),
    "a stockout": ([event("NotTriggerScaleUp", NO + "1 in backoff after failed scale-up", 0)], None),
    "a cluster limit": ([event("NotTriggerScaleUp", NO + "max total nodes in cluster reached", 0)], None),
    "no pool counted": ([event("NotTriggerScaleUp", NO, 0)], None),
    "a pool grows since": ([event("NotTriggerScaleUp", NO + "1 Insufficient cpu", 0),
                            event("TriggeredScaleUp", "pod triggered scale-up: [{big 0->1 (max: 2)}]", 5)], None),
    "a later misfit": ([event("TriggeredScaleUp", "pod triggered scale-up: [{big 0->1 (max: 2)}]", 0),
                        event("NotTriggerScaleUp", NO + "1 Insufficient cpu", 5)], NO + "1 Insufficient cpu"),
    "another recorder": ([event("NotTriggerScaleUp", NO + "1 Insufficient cpu", 0, component="karpenter")], None),
    "nothing said": ([], None),
}


@pytest.mark.parametrize(("events", "words"), WORDS.values(), ids=WORDS.keys())
def test_only_the_autoscalers_latest_word_that_every_pools_node_would_not_fit_is_a_misfit(events, words):
    assert unfit(events) == words


SELECTED = {"none": ({}, True), "a label of the user's": ({"pool": "a100"}, True),
            "katuna's GKE pool": ({"cloud.google.com/gke-nodepool": "katuna-study"}, False),
            "katuna's EKS node group": ({"eks.amazonaws.com/nodegroup": "katuna-study"}, False)}


@pytest.mark.parametrize(("selector", "misfit_now"), SELECTED.values(), ids=SELECTED.keys())
def test_a_pod_for_a_pool_katuna_makes_is_no_misfit_until_that_pools_node_is_too_small(selector, misfit_now):
    """A study's own pool is made as the study starts (minutes on GKE and EKS): until it is, and
    the autoscaler has found it, no pool's node matches the pod's nodeSelector. Only a node of
    that pool too small for the pod (``Insufficient``) makes it a misfit."""
    pod = client.V1Pod(spec=client.V1PodSpec(containers=[client.V1Container(name="trial")], node_selector=selector))
    held = Unstartable(0.0, "p", "no node fits it", None, False, uid="u", unschedulable=True)
    unmatched = [event("NotTriggerScaleUp", NO + "1 node(s) didn't match Pod's node affinity/selector", 0)]
    assert misfit(held, pod, unmatched).permanent is misfit_now
    assert misfit(held, pod, [event("NotTriggerScaleUp", NO + "1 Insufficient cpu", 0)]).permanent
