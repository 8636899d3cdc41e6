"""The cluster autoscaler's scale-down, on a simulated clock: it removes a node unneeded for its
unneeded time, empty or under-used (its pods request less than half of it) with pods that may be
evicted and fit on the other nodes; it drains such a node through evictions. A trial katuna runs
is never evicted so: it would start again from its beginning on the other node."""

from __future__ import annotations

from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_standin.nodes import NodePool
from kube_stub import KubeStub
from test_kube_standin_simulated import SPOT, TRIAL_TAINT, finished, job, pods_of

from functions.core.cluster import Cluster
from functions.core.job import render_job
from functions.core.launch import TrialLaunch

UNNEEDED_SECONDS = 600
SHORT, LONG = 100, 3000
"""How long the big trial and the two others run (seconds of container time)."""


def cluster(clock: SimulatedClock) -> KubeStub:
    """A spot pool of up to two 4-cpu nodes whose containers run ``SHORT`` seconds for the Job
    ``big``, ``LONG`` for the others."""
    pool = NodePool("spot", 0, 2, SPOT["gke"], (TRIAL_TAINT,), {"cpu": "4", "memory": "16Gi", "pods": "110"})
    kube = KubeStub(pools=lambda: [pool], boot_seconds=90, idle_seconds=UNNEEDED_SECONDS, clock=clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(
        SHORT if pod["metadata"]["labels"]["job-name"] == "big" else LONG, "loss=1.5\n"))
    return kube


def sized(name: str, cpu: str) -> dict:
    manifest = job(name, SPOT["gke"])
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": cpu}}
    return manifest


def katunas(name: str) -> dict:
    """A trial Job as katuna renders it, of 1 cpu, for the spot pool."""
    launch = TrialLaunch(study="packed", uid="0123456789ab", number=0, attempt=1, job_name=name,
                         argv=["train"], env={}, working_dir=".", timeout=None, image="python:3.12",
                         resources={"cpu": "1"}, cluster=Cluster(namespace="katuna", node_selector=SPOT["gke"],
                                                                 tolerations=({**TRIAL_TAINT, "operator": "Equal"},)))
    return render_job(launch)


def packed(kube: KubeStub, small: dict) -> tuple[str, str]:
    """``big`` (3 cpu, short) and ``small`` on one node, ``wide`` (2 cpu) on another; once ``big``
    ended, ``small``'s node is a quarter used and ``small`` fits beside ``wide``. The node names."""
    for manifest in (sized("big", "3"), sized("wide", "2"), small):
        assert kube.create_job("katuna", manifest)[0] == 201
    kube.run_until(lambda: all(p["status"].get("phase") == "Running" for p in kube.pods.values()) and len(kube.pods) == 3)
    [big], [wide], [first] = (pods_of(kube, name) for name in ("big", "wide", small["metadata"]["name"]))
    assert first["spec"]["nodeName"] == big["spec"]["nodeName"] != wide["spec"]["nodeName"]
    kube.run_until(lambda: finished(kube, "big"))
    return first["spec"]["nodeName"], wide["spec"]["nodeName"]


def test_an_under_used_node_is_drained_once_unneeded_its_pod_evicted_onto_the_other_node():
    clock = SimulatedClock()
    kube = cluster(clock)
    try:
        under_used, other = packed(kube, sized("small", "1"))
        [first] = pods_of(kube, "small")
        ended, version = clock.now, kube.history.version
        kube.run_until(lambda: under_used not in kube.nodes)
        assert clock.now == ended + UNNEEDED_SECONDS, "unneeded for the autoscaler's ten minutes, then drained"
        evicted = [c.object for c in kube.changes_since(version, "pods")
                   if c.object["metadata"]["uid"] == first["metadata"]["uid"] and c.type == "MODIFIED"][-1]
        disruption = next(c for c in evicted["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert (evicted["status"]["phase"], disruption["reason"]) == ("Failed", "EvictionByEvictionAPI")
        kube.run_until(lambda: finished(kube, "small"))
        [second] = pods_of(kube, "small")
        assert second["spec"]["nodeName"] == other, "the Job ran the evicted trial again on the other node"
        assert clock.now >= ended + UNNEEDED_SECONDS + LONG, "from its beginning"
    finally:
        kube.close()


def test_a_trial_katuna_runs_keeps_its_node_until_it_ends():
    clock = SimulatedClock()
    kube = cluster(clock)
    try:
        under_used, _ = packed(kube, katunas("packed-0"))
        kube.run_until(lambda: finished(kube, "packed-0"))
        [pod] = pods_of(kube, "packed-0")
        assert not [c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget"]
        assert pod["status"]["phase"] == "Succeeded" and pod["spec"]["nodeName"] == under_used
        ended = clock.now
        kube.run_until(lambda: under_used not in kube.nodes)
        assert clock.now == ended + UNNEEDED_SECONDS, "the node goes once the trial has ended and it is unneeded"
    finally:
        kube.close()


def test_no_node_goes_within_ten_minutes_of_a_scale_up_however_long_it_was_unneeded():
    """The real autoscaler's ``--scale-down-delay-after-add`` (10 minutes, the same as its
    unneeded time): after a scale-up in any pool, it removes no node for that long, though it goes
    on timing which nodes are unneeded."""
    clock = SimulatedClock()
    pools = [NodePool(name, 0, 1, {"pool": name}, (TRIAL_TAINT,), {"cpu": "4", "memory": "16Gi", "pods": "110"})
             for name in ("first", "second")]
    kube = KubeStub(pools=lambda: pools, boot_seconds=90, idle_seconds=UNNEEDED_SECONDS, clock=clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(SHORT, "loss=1.5\n"))
    try:
        assert kube.create_job("katuna", job("early", {"pool": "first"}))[0] == 201
        kube.run_until(lambda: finished(kube, "early"))
        [node] = kube.nodes
        ended = clock.now
        clock.wake_at(ended + 300)
        kube.run_until(lambda: clock.now >= ended + 300)
        assert kube.create_job("katuna", job("late", {"pool": "second"}))[0] == 201
        kube.run_until(lambda: len(kube.autoscaler.machines) == 2)
        added = clock.now
        kube.run_until(lambda: node not in kube.nodes)
        assert clock.now == added + UNNEEDED_SECONDS > ended + UNNEEDED_SECONDS, \
            "kept past its own ten minutes unneeded, until ten minutes after the other pool grew"
    finally:
        kube.close()


def test_empty_nodes_go_ten_at_a_time():
    """The real autoscaler deletes at most ``--max-scale-down-parallelism`` (10) nodes at once,
    and looks again a scan later."""
    clock = SimulatedClock()
    pool = NodePool("spot", 0, 12, SPOT["gke"], (TRIAL_TAINT,), {"cpu": "4", "memory": "16Gi", "pods": "110"})
    kube = KubeStub(pools=lambda: [pool], boot_seconds=90, idle_seconds=UNNEEDED_SECONDS, clock=clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(SHORT, "loss=1.5\n"))
    try:
        for number in range(12):
            assert kube.create_job("katuna", job(f"trial-{number}", SPOT["gke"]))[0] == 201
        kube.run_until(lambda: all(finished(kube, f"trial-{number}") for number in range(12)))
        kube.run_until(lambda: len(kube.nodes) < 12)
        first = clock.now
        assert len(kube.nodes) == 2, "ten of the twelve at once"
        kube.run_until(lambda: not kube.nodes)
        assert clock.now == first + 10, "the other two at the next scan"
    finally:
        kube.close()
