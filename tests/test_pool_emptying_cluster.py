"""A shared GKE pool katuna made is emptied only once the trials of the study that ended on it
are stopped: on the cost benchmark's simulated cluster (katuna's runtime, the Kubernetes
stand-in with its Job controller, scheduler and cluster autoscaler, and the GKE stand-in), the
study's end delivered to its functions in queue mode's order (``stop`` first) and as Knative's
Triggers may deliver it (``provision`` first)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_benchmarks import load_cluster_cost

from functions.core.cluster import TRIAL_LABEL
from functions.core.events import STUDY_COMPLETED, Event

pytestmark = pytest.mark.slow

ORDERS = {"queue": None, "knative": ("provision", "stop", "writeback")}
"""The order each mode's functions take a ``study.completed`` in (queue mode: the routes')."""
REFUSED = 5
"""Deletes of Jobs the API server refuses (503) after the study's first trial ends: several
ticks' worth, well past the minute GKE's resize takes."""


def stopped_jobs(sim, number: int) -> list[str]:
    """The Jobs of trial ``number`` the cluster holds."""
    return [name for (_, name), job in sim.kube.jobs.items() if job["metadata"]["labels"][TRIAL_LABEL] == str(number)]


@pytest.fixture
def cost(monkeypatch: pytest.MonkeyPatch):
    return load_cluster_cost(monkeypatch)


@pytest.mark.parametrize("mode", sorted(ORDERS))
def test_a_shared_pool_is_emptied_only_once_the_jobs_of_its_ended_studys_trials_are_deleted(
        cost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str):
    """The study reaches its goal while a trial runs, and the API server refuses to delete that
    trial's Job for a few minutes. Emptying the pool then would evict the trial's pod, which its
    Job replaces, and once the resize is done the autoscaler would boot a fresh node for it,
    billed for 10 unneeded minutes after the Job goes. The pool is emptied once the Job is
    deleted instead: no pod of the study is made after its end, no node is booted, and the
    resize removes every node."""
    cloud = cost.make_cloud("gke", cost.SimulatedClock(), 0.0, 1)
    ref = cost.Reference(trials=4, parallelism=2, shortest=600.0, longest=3600.0)
    sim = cost.Simulation(tmp_path, cloud, ref)
    order = ORDERS[mode]
    if order is not None:
        deliver = sim._deliver

        def by_trigger(event: Event) -> None:
            if event.type != STUDY_COMPLETED:
                return deliver(event)
            for function in order:
                sim.queue.extend(sim.dispatcher.deliver_to(function, event))
        monkeypatch.setattr(sim, "_deliver", by_trigger)
    try:
        study = cost.definition(ref, "gke", "spot", "goal", cost.SHARED_POOL)
        study["objective"]["goal"] = 1e9
        record = sim.submit(study)
        sim.until(lambda: sum(p["status"].get("phase") == "Running" for p in sim.kube.pods.values()) == 2)
        sim.kube.faults.refuse("deletecollection", "jobs", REFUSED)
        sim.kube.faults.refuse("delete", "jobs", REFUSED)
        sim.until(lambda: sim.deps.store.get_study("goal").terminal)
        end, pods = sim.clock.now, set(sim.kube.pods)
        assert sim.deps.store.get_study("goal").reason.startswith("goal reached by trial")
        [stopped] = [trial.number for trial in sim.deps.store.trials("goal", ("PRUNED",))]
        assert stopped_jobs(sim, stopped), "the trial stopped at the end runs on, its Job's delete refused"
        made: set[str] = set()
        sim.until(lambda: made.update(set(sim.kube.pods) - pods) or sim.machines_running() == 0)
        assert made == set(), "no pod of the ended study was made again"
        machines = list(sim.autoscaler.machines.values())
        assert [m.created for m in machines if m.created > end] == [], "no node booted after the study's end"
        assert stopped_jobs(sim, stopped) == [] and sim.deps.store.stopping_trials(1, "goal") == []
        use = sim.deps.store.pool_use(record.uid)
        assert use.emptied and use.operation is None, "the resize removed the nodes"
    finally:
        sim.close()
        cloud.close()
