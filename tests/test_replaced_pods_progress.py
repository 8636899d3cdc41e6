"""A trial's pod disrupted inside its Job while early stopping reads its progress, on the
stand-in's simulated clock through the real client: the Job's replacement pod runs the trial
again from its start, in the same attempt, so its reports at the steps the lost run had reached
are the trial's new values there, judged by the study's rule, and the trial's curve in Optuna is
the replacement's alone, not the lost run's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import study_definition
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_stub import KubeStub
from test_kube_standin_simulated import finished, pods_of
from test_missing_objects import deliver
from test_replaced_pods import printed
from test_trial_pods import executor_of

from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import study_created
from functions.core.launch import trial_launch
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.progress_scan import scan
from functions.handlers.starting import look
from functions.handlers.submit import store_study

LOST = Run(3600, pieces=((10, "epoch=1 loss=1.0\n"), (20, "epoch=2 loss=0.9\n")))
"""The first pod: two good epochs, then its node shuts down long before its end."""


def replacement(first: float) -> Run:
    """The Job's replacement pod: the whole run again from its first epoch, whose loss is ``first``."""
    return Run(40, "loss=0.5\n", pieces=((10, f"epoch=1 loss={first}\n"), (20, "epoch=2 loss=0.8\n"),
                                         (30, "epoch=3 loss=0.7\n")))


def cluster_of(*runs: Run) -> KubeStub:
    stub = KubeStub(clock=SimulatedClock())
    given = iter(runs)
    stub.kubelets.containers = SimulatedContainers(stub.clock, lambda pod: next(given))
    return stub


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "katuna.db")
    yield opened
    opened.close()


def run_to_the_replacement(kube: KubeStub, store: SqliteStore):
    """A study of one trial with a threshold rule (a loss above 3 prunes it), its first pod's
    two epochs scanned and judged, that pod lost, and the replacement's first epoch printed."""
    executor = executor_of(kube)
    deps = Deps(store, executor, kube.clock.time, trial_defaults=Cluster(namespace="katuna"), logs=executor,
                admissions=executor)
    definition = study_definition("lost", maxTrials=1, parallelism=1,
                                  earlyStopping={"algorithm": "threshold", "settings": {"upper": 3.0}})
    definition["trialTemplate"] = {"image": "python:3.12", "command": ["train", "--x=${trialParameters.x}"]}
    record, _ = store_study(deps, parse_study(definition), definition)
    dispatcher = Dispatcher(deps)
    deliver(dispatcher, study_created("lost", record.uid))
    launch = trial_launch(record, store.get_trial("lost", 0))
    kube.run_until(printed(kube, deps, launch, "epoch=2", pods=1))
    for event in scan(deps, [record]):
        deliver(dispatcher, event)
    assert intermediate(store) == {1: 1.0, 2: 0.9}, "the lost run's epochs, judged as they came"
    kube.preempt_pod("katuna", pods_of(kube, "lost-0")[0]["metadata"]["name"], "TerminationByKubelet")
    kube.run_until(printed(kube, deps, launch, "epoch=1", pods=2))
    assert look(record, store.get_trial("lost", 0), deps) is None, "the trial may lose a run"
    for event in scan(deps, [record]):
        deliver(dispatcher, event)
    return deps, dispatcher, record


def intermediate(store: SqliteStore) -> dict[int, float]:
    storage = store.optuna_stream("lost")
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("lost"), 0)
    return dict(storage.get_trial(trial_id).intermediate_values)


def test_a_replacements_report_at_a_step_the_lost_run_reached_is_judged_by_the_rule(store: SqliteStore):
    kube = cluster_of(LOST, replacement(first=5.0))
    try:
        run_to_the_replacement(kube, store)
        trial = store.get_trial("lost", 0)
        assert (trial.state, trial.attempt) == ("PRUNED", 1), trial.reason
        assert trial.reason.startswith("pruned at step 1 by the threshold rule (loss=5)"), trial.reason
        assert intermediate(store) == {1: 5.0, 2: 5.0}, \
            "the replacement's value, carried over the step only the lost run reached"
    finally:
        kube.close()


def test_a_replacement_that_completes_leaves_its_own_curve_in_optuna(store: SqliteStore):
    kube = cluster_of(LOST, replacement(first=1.1))
    try:
        deps, dispatcher, record = run_to_the_replacement(kube, store)
        assert intermediate(store) == {1: 1.1, 2: 0.9}, "judged at the replacement's step; the lost run's step 2 stays until it is reached"
        kube.run_until(lambda: finished(kube, "lost-0"))
        for event in scan(deps, [record]):
            deliver(dispatcher, event)
        deliver(dispatcher, look(record, store.get_trial("lost", 0), deps))
        trial = store.get_trial("lost", 0)
        assert (trial.state, trial.attempt, trial.values) == ("COMPLETE", 1, [0.5])
        assert intermediate(store) == {1: 1.1, 2: 0.8, 3: 0.7}, "the replacement's curve, none of the lost run's"
    finally:
        kube.close()
