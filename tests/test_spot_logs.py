"""A trial whose first pod was on a preempted GKE spot VM, on a simulated clock: GKE stops the VM
and keeps its Node, with the disrupted pod on it, for minutes, and the API answers 500 to a read
of that pod's log. The trial's replacement pod ran to its end elsewhere, so its end is read from
that pod's log, through the real client, while the old node is still there."""

from __future__ import annotations

import pytest
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_standin.interruptions import Interruptions
from kube_standin.nodes import NodePool
from kube_stub import KubeStub
from test_kube_standin_simulated import SPOT, TRIAL_TAINT, finished, pods_of

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.core.cluster import Cluster
from functions.core.errors import TemporaryError
from functions.core.launch import TrialLaunch


def test_the_end_of_a_trial_is_read_while_its_disrupted_pods_node_is_unreachable():
    kube, executor, launch = spot_trial()
    try:
        first, second = pods_of(kube, "spot-0")
        assert first["spec"]["nodeName"] in kube.unreachable, "the stopped VM's Node is still there"
        assert second["status"]["phase"] == "Succeeded"

        ended = executor.poll(launch)
        assert (ended.data["outcome"], ended.data["exitCode"]) == ("exited", 0)
        assert list(executor.output(launch)) == ["epoch=1 loss=0.5\n"], "the replacement's log; the lost run's is left"
    finally:
        kube.close()


def test_a_throttled_read_of_a_disrupted_pods_log_is_tried_again_not_dropped():
    """The API server's own answers (its priority and fairness's 429, a credential not taken)
    say nothing of the disrupted pod's node: the log a person reads keeps the lost run's lines,
    or the read fails for now, never a shorter log whose offsets move under its readers."""
    kube, executor, launch = spot_trial()
    try:
        kube.unreachable.clear()  # the stopped VM's Node is gone, its pod's log readable again
        shown = "".join(executor.log(launch))
        assert shown.startswith("[katuna: the run in pod spot-0-") and " was lost " in shown, shown
        kube.faults.refuse("get", "pods", times=1, throttled=True)
        with pytest.raises(TemporaryError, match="429"):
            "".join(executor.log(launch))
        assert "".join(executor.log(launch)) == shown
    finally:
        kube.close()


def spot_trial() -> tuple[KubeStub, KubernetesExecutor, TrialLaunch]:
    """A trial whose first pod a spot VM's preemption took, run to its end by its replacement."""
    clock = SimulatedClock()
    pool = NodePool("spot", 0, 2, SPOT["gke"], (TRIAL_TAINT,), {"cpu": "4", "memory": "16Gi", "pods": "110"})
    kube = KubeStub(pools=lambda: [pool], boot_seconds=90, idle_seconds=600, clock=clock)
    runs = iter([3600, 100])  # the first pod would run an hour (its node is preempted long before)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(next(runs), "epoch=1 loss=0.5\n"))
    interruptions = kube.autoscaler.interruptions = Interruptions.gke(per_hour=0.0)
    executor = KubernetesExecutor(Cluster(namespace="katuna", node_selector=SPOT["gke"],
                                          tolerations=({**TRIAL_TAINT, "operator": "Equal"},)), api_client(kube.url))
    launch = TrialLaunch("spot", "0123456789ab", 0, 1, "spot-0", ["train"], {}, ".", timeout=None,
                         image="python:3.12", resources={"cpu": "1"})
    try:
        executor.launch(launch)
        kube.run_until(lambda: any(p["status"].get("phase") == "Running" for p in pods_of(kube, "spot-0")))
        interruptions.per_hour = 60.0
        kube.run_until(lambda: interruptions.stopping)
        interruptions.per_hour = 0.0
        kube.run_until(lambda: finished(kube, "spot-0"))
    except BaseException:
        kube.close()
        raise
    return kube, executor, launch
