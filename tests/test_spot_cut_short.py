"""A trial on a GKE spot VM whose graceful shutdown was cut short, on a simulated clock: the VM
stops before its kubelet tells the API anything, its pod stays ``Running`` there, and the
managed instance group recreates the VM under the same name a minute later; the kubelet, back,
fails the pod with its container lost (``ContainerStatusUnknown``, exit code 137, no
``DisruptionTarget`` condition), which fails the trial's Job. katuna's runtime, as the service
wires it, runs the trial again as preempted, and the second attempt completes."""

from __future__ import annotations

from pathlib import Path

import pytest
from kube_standin.interruptions import Interruptions
from test_benchmarks import load_cluster_cost

from functions.core.records import COMPLETE

pytestmark = pytest.mark.slow


def test_a_trial_whose_spot_vm_came_back_without_its_container_runs_again_as_preempted(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    cost = load_cluster_cost(monkeypatch)
    cloud = cost.make_cloud("gke", cost.SimulatedClock(), 0.0, 1)
    interruptions = cloud.interruptions = Interruptions.gke(per_hour=0.0, cut_short=True)
    ref = cost.Reference(trials=1, parallelism=1)
    sim = cost.Simulation(tmp_path, cloud, ref)
    try:
        record = sim.submit(cost.definition(ref, "gke", "spot"))
        sim.until(lambda: record.name in sim.timelines and sim.timelines[record.name].first_running is not None)
        [first] = sim.kube.pods.values()
        node = first["spec"]["nodeName"]
        interruptions.per_hour = 3600.0
        sim.until(lambda: interruptions.count)
        interruptions.per_hour = 0.0
        assert node in sim.kube.unreachable and first["status"]["phase"] == "Running", \
            "the VM stopped before its kubelet said anything"

        sim.until(lambda: sim.deps.store.get_trial(record.name, 0).attempt == 2)
        lost = first["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (lost["reason"], lost["exitCode"]) == ("ContainerStatusUnknown", 137)
        assert node in sim.kube.nodes and node not in sim.kube.unreachable, "recreated under its name"
        assert sim.deps.store.get_trial(record.name, 0).reason.startswith(
            "attempt 1 preempted: every pod of its Job was disrupted")

        sim.until(lambda: sim.deps.store.get_trial(record.name, 0).state == COMPLETE)
        assert interruptions.count == 1
        machine = sim.autoscaler.machines[node]
        assert [end - start for start, end in machine.stopped] == [interruptions.recreate_seconds], \
            "not billed while stopped"
    finally:
        sim.close()
        cloud.close()
