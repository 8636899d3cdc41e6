"""A trial's pod preempted while it runs, stopped as a kubelet stops it: SIGTERM, then SIGKILL
once its grace period (30 s: katuna sets no ``terminationGracePeriodSeconds``) is over, on the
stand-in's simulated clock through the real client. Whatever the trial does with SIGTERM, its
preempted run is a run lost: the run that counts is one no disruption ended."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import study_definition
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_stub import KubeStub
from test_missing_objects import deliver
from test_trial_pods import executor_of, pods_of

from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import study_created
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.starting import look
from functions.handlers.submit import store_study

PREEMPTED_AT = 25.0
"""Seconds into its run when the trial's first pod is preempted (the scheduler's preemption)."""
EPOCHS = ((10, "epoch=1 loss=1.5\n"), (20, "epoch=2 loss=1.2\n"), (30, "epoch=3 loss=1.0\n"))
WHOLE = Run(40, "loss=0.5\n", pieces=EPOCHS)
"""A whole run: three epochs, then its objective."""


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    stub = KubeStub(clock=SimulatedClock())
    stub.preempted = []  # type: ignore[attr-defined]
    yield stub
    stub.close()


def ran(kube: KubeStub, tmp_path: Path, first: Run, deleted: bool = False) -> tuple[SqliteStore, list[dict]]:
    """Run a one-trial study whose first pod runs as ``first`` and is preempted
    :data:`PREEMPTED_AT` seconds in (or, ``deleted``, deleted then with no disruption condition,
    as ``kubectl delete pod`` deletes it); every later pod runs :data:`WHOLE`. The store, and
    every pod of the trial's Jobs as each last was."""
    runs = iter([first])
    kube.kubelets.containers = SimulatedContainers(kube.clock, lambda pod: next(runs, WHOLE))
    firsts = iter([PREEMPTED_AT])
    if deleted:
        kube.clock.wake_at(kube.clock.now + PREEMPTED_AT)
    else:
        kube.disrupt = lambda job, index: next(firsts, None)
    store = SqliteStore(tmp_path / "katuna.db")
    executor = executor_of(kube)
    deps = Deps(store, executor, kube.clock.time, trial_defaults=Cluster(namespace="katuna"), logs=executor,
                admissions=executor)
    definition = study_definition("graceful", maxTrials=1, parallelism=1)
    definition["trialTemplate"] = {"image": "python:3.12", "command": ["train", "--x=${trialParameters.x}"],
                                   "maxAttempts": 3}
    record, _ = store_study(deps, parse(definition), definition)
    dispatcher = Dispatcher(deps)
    seen: dict[str, dict] = {}

    def ended():
        for job in [j for (ns, j) in list(kube.jobs) if ns == "katuna"]:
            seen.update({p["metadata"]["uid"]: p for p in pods_of(kube, job)})
            running = [p for p in pods_of(kube, job) if p["status"].get("phase") == "Running"]
            if deleted and len(seen) == 1 and running and kube.clock.now >= PREEMPTED_AT + kube.clock.start:
                with kube.lock:
                    kube.delete_pod(running[0])
                kube.settle()
        return look(record, store.get_trial("graceful", 0), deps)

    deliver(dispatcher, study_created("graceful", record.uid))
    while store.get_trial("graceful", 0).state == "RUNNING":
        kube.run_until(ended)
        deliver(dispatcher, ended())
    return store, sorted(seen.values(), key=lambda pod: pod["metadata"]["creationTimestamp"])


def parse(definition: dict):
    from functions.core.validate import parse_study
    return parse_study(definition)


def terminated(pod: dict) -> dict:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]


def test_a_trial_deaf_to_sigterm_is_killed_at_the_end_of_its_grace_period_and_its_run_counts_as_lost(
        kube: KubeStub, tmp_path: Path):
    store, pods = ran(kube, tmp_path, Run(3600, pieces=EPOCHS[:2], term_seconds=None))
    try:
        lost, replacement = pods
        assert (lost["status"]["phase"], terminated(lost)["exitCode"]) == ("Failed", 137), "SIGKILLed after 30 s"
        assert lost["status"]["conditions"][-1]["type"] == "DisruptionTarget" or any(
            c["type"] == "DisruptionTarget" for c in lost["status"]["conditions"])
        trial = store.get_trial("graceful", 0)
        assert (trial.state, trial.attempt, trial.values) == ("COMPLETE", 1, [0.5]), trial.reason
        assert [(o.step, o.value) for o in store.observations("graceful", 0)] == [
            (1, 1.5), (2, 1.2), (3, 1.0), (None, 0.5)], "only the replacement's run counts"
    finally:
        store.close()


def test_a_trial_that_flushes_a_last_metric_and_exits_0_on_sigterm_is_run_again_not_taken_as_complete(
        kube: KubeStub, tmp_path: Path):
    """Its pod succeeds (every container exited 0), so the Job completes: its run was still
    cut short, and its last metric is no result."""
    flushing = Run(3600, pieces=EPOCHS[:2], term_seconds=1.0, term_output="loss=1.2\n", term_code=0)
    store, pods = ran(kube, tmp_path, flushing)
    try:
        lost, replacement = pods
        assert (lost["status"]["phase"], terminated(lost)["exitCode"]) == ("Succeeded", 0)
        trial = store.get_trial("graceful", 0)
        assert (trial.state, trial.values) == ("COMPLETE", [0.5]), trial.reason
        assert trial.attempt == 2, "the Job completed, but its one run was lost: the trial ran again"
    finally:
        store.close()


def test_a_preempted_trial_that_ends_its_work_in_its_grace_period_is_run_again(kube: KubeStub, tmp_path: Path):
    """SIGTERM ignored, it prints its objective and exits 0 at 40 s, inside its grace period:
    its pod succeeds, and katuna cannot tell its work from a flush on SIGTERM, so it runs again."""
    store, pods = ran(kube, tmp_path, WHOLE._replace(term_seconds=None))
    try:
        lost = pods[0]
        assert (lost["status"]["phase"], terminated(lost)["exitCode"]) == ("Succeeded", 0)
        trial = store.get_trial("graceful", 0)
        assert (trial.state, trial.attempt, trial.values) == ("COMPLETE", 2, [0.5]), trial.reason
    finally:
        store.close()


@pytest.mark.parametrize(("code", "phase"), [(143, "Failed"), (0, "Succeeded")])
def test_a_trial_whose_pod_is_deleted_while_it_runs_is_run_again_whatever_it_exits_with(
        kube: KubeStub, tmp_path: Path, code: int, phase: str):
    """``kubectl delete pod``, or a tool deleting pods with no disruption condition: its
    container stopped (143, or 0 where its trial exits cleanly on SIGTERM), the pod is no end of
    the trial's own: neither a failure (its Job, whose ``backoffLimit`` is 0, fails for it) nor
    a completed run with the last metric it flushed."""
    store, pods = ran(kube, tmp_path, Run(3600, pieces=EPOCHS[:2], term_output="loss=1.2\n", term_code=code),
                      deleted=True)
    try:
        deleted = pods[0]
        assert (deleted["status"]["phase"], terminated(deleted)["exitCode"]) == (phase, code)
        trial = store.get_trial("graceful", 0)
        assert (trial.state, trial.attempt, trial.values) == ("COMPLETE", 2, [0.5]), trial.reason
    finally:
        store.close()
