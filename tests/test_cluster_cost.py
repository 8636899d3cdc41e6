"""The cost benchmark's cluster (``benchmarks/cluster_cost.py``) at a tiny size, in this process:
where a study's time goes on a pool katuna creates, and the steady state of a shared pool that an
earlier study created and left at zero nodes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_benchmarks import load_cluster_cost

from functions.core.pool_use import CREATING
from functions.core.records import COMPLETE

pytestmark = pytest.mark.slow

TINY = {"trials": 4, "parallelism": 2}
PAIR = {"trials": 2, "parallelism": 2}
"""Each of two studies on a shared pool: as many trials as run at once, all its nodes booted for them."""


@pytest.fixture
def cost(monkeypatch: pytest.MonkeyPatch):
    return load_cluster_cost(monkeypatch)


@pytest.fixture
def cluster(cost, tmp_path: Path):
    """A simulated GKE cluster with katuna's runtime on it, no spot interruptions."""
    cloud = cost.make_cloud("gke", cost.SimulatedClock(), 0.0, 1)
    sim = cost.Simulation(tmp_path, cloud, cost.Reference(**TINY))
    yield cloud, sim
    sim.close()
    cloud.close()


def test_trial_jobs_wait_for_no_pool_and_no_tick(cost, cluster):
    """The first trials' Jobs are created at submission, while GKE still creates the pool, so
    their pending pods are there for the autoscaler the moment the pool runs; each later Job is
    created at the moment the trial that made room for it ended, with no PingSource tick waited for."""
    cloud, sim = cluster
    record = sim.submit(cost.definition(cost.Reference(**TINY), "gke", "spot"))
    sim.settle()
    assert sim.deps.store.pool_use(record.uid).phase == CREATING, "GKE takes 90 s to create a pool"
    assert len(sim.kube.jobs) == TINY["parallelism"], "a Job for each trial that may run, before any node"
    sim.until(lambda: sim.released(record))
    timeline = sim.timelines[record.name]
    assert len(timeline.created) == TINY["trials"] and len(timeline.ended) == TINY["trials"]
    assert timeline.launch_wait(TINY["parallelism"]) == 0


@contextmanager
def _two_shared_studies(cost, tmp_path: Path, cloud_name: str, spot_price: float) -> Iterator[tuple]:
    """Two studies of ``PAIR`` run one after the other on ``cost.SHARED_POOL`` of a simulated
    ``cloud_name`` cluster, each measured at ``spot_price`` an hour: the earlier (``first``) creates
    the pool, the measured one (``reference``) finds it. Yields the simulation, its cloud and the two
    studies' cost rows in that order; closes both after."""
    ref = cost.Reference(**PAIR)
    cloud = cost.make_cloud(cloud_name, cost.SimulatedClock(), 0.0, 1)
    sim = cost.Simulation(tmp_path, cloud, ref)
    try:
        yield sim, cloud, [
            cost.measure(sim, cloud, row, cost.definition(ref, cloud_name, "spot", name, cost.SHARED_POOL), spot_price)
            for row, name in (("spot_shared_first", "first"), ("spot_steady", "reference"))]
    finally:
        sim.close()
        cloud.close()


def test_a_study_on_a_shared_pool_left_at_zero_nodes_pays_none_of_the_earlier_studys_machines(cost, tmp_path):
    """The steady state: an earlier study creates the shared pool and ends; the pool is scaled
    back and the autoscaler removes its nodes; the measured study finds the pool (it creates
    none) and is billed only the machines that ran from its submission until its own were gone."""
    with _two_shared_studies(cost, tmp_path, "gke", 0.04) as (sim, cloud, rows):
        first, steady = (sim.deps.store.pool_use(sim.deps.store.get_study(name).uid) for name in ("first", "reference"))
        assert (first.created, first.deleted, steady.created, steady.owned) == (True, False, False, True), \
            "the earlier study created the pool and left it; the measured one found it"
        assert cost.SHARED_POOL in cloud.gke.pools and sim.machines_running() == 0
        assert sum(row["node_hours"] for row in rows) == pytest.approx(sim.autoscaler.node_seconds() / 3600), \
            "every machine-second is billed to exactly one of the two studies"
        assert [row["nodes"] for row in rows] == [PAIR["parallelism"]] * 2, "each study booted its own nodes"
        assert [row["complete"] for row in rows] == [PAIR["trials"]] * 2


def test_on_eks_a_shared_group_katuna_made_gives_back_its_nodes_two_minutes_after_its_studys_end(cost, tmp_path):
    """EKS's steady state: katuna resizes no node group the cluster autoscaler sizes, but tags
    the group it made with two minutes' unneeded time, so the ended study's nodes go within
    about two minutes (and a scan) of its end, not the autoscaler's ten."""
    with _two_shared_studies(cost, tmp_path, "eks", 0.076) as (sim, _cloud, rows):
        assert sim.machines_running() == 0 and [row["complete"] for row in rows] == [PAIR["trials"]] * 2
        assert [row["tail_s"] <= 150 for row in rows] == [True, True], [row["tail_s"] for row in rows]


@pytest.mark.parametrize(("cloud_name", "grace"), [("gke", 15.0), ("eks", 30.0)])
def test_a_preempted_trial_runs_on_to_the_end_of_its_grace_and_is_replaced_after_the_jobs_back_off(
        cost, tmp_path: Path, cloud_name: str, grace: float):
    """The reference trial handles no SIGTERM, as a training script run as its container's PID 1
    does not: its node's notice ends it only at SIGKILL, once its grace is over (a GKE node's
    shutdown gives it 15 s, an EKS drain's eviction its own 30 s), and its Job makes the
    replacement 10 s later (the Job controller's back-off, which a failure its podFailurePolicy
    ignores starts too). The run lost is no failure and leaves no metric: the trial completes in
    its first attempt, with its replacement's objective."""
    ref = cost.Reference(trials=1, parallelism=1)
    cloud = cost.make_cloud(cloud_name, cost.SimulatedClock(), 0.0, 1)
    sim = cost.Simulation(tmp_path, cloud, ref)
    try:
        record = sim.submit(cost.definition(ref, cloud_name, "spot"))
        sim.until(lambda: record.name in sim.timelines and sim.timelines[record.name].first_running is not None)
        [first] = sim.kube.pods.values()
        cloud.interruptions.per_hour = 3600.0
        sim.until(lambda: cloud.interruptions.count)
        cloud.interruptions.per_hour = 0.0
        notice = sim.clock.now
        sim.until(lambda: any(pod is not first for pod in sim.kube.pods.values()))
        killed = first["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (first["status"]["phase"], killed["exitCode"]) == ("Failed", 137), "SIGKILLed, deaf to SIGTERM"
        assert sim.clock.now - notice == grace + 10.0, "its grace, then the Job's back-off"
        sim.until(lambda: sim.deps.store.get_trial(record.name, 0).state == COMPLETE)
        trial = sim.deps.store.get_trial(record.name, 0)
        assert (trial.attempt, trial.values) == (1, [(trial.params["x"] - 2.0) ** 2]), trial.reason
        assert cloud.interruptions.count == 1
    finally:
        sim.close()
        cloud.close()
