"""A trial's pod disrupted inside its Job (its node shut down), on the stand-in's simulated clock
through the real client: the Job's replacement pod runs the trial again from its start, so the
trial's metrics and steps are the replacement's, each counted once, whether or not katuna kept
the lost run's log while it ran (and whether or not it read the replacement's before the end);
the log a person reads shows both runs, the lost one first."""

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
from test_trial_pods import executor_of

from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import study_created
from functions.core.launch import trial_launch
from functions.core.log_reads import StreamedLogReads
from functions.core.metrics import parse_text
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.progress_scan import scan
from functions.handlers.starting import look
from functions.handlers.submit import store_study

LOST = Run(3600, pieces=((10, "epoch=1 loss=1.5\n"), (20, "epoch=2 loss=1.2\n")))
"""The first pod: two epochs printed, then its node shuts down long before its end."""
REPLACEMENT = Run(40, "loss=0.5\n", pieces=((10, "epoch=1 loss=1.5\n"), (20, "epoch=2 loss=1.2\n"),
                                            (30, "epoch=3 loss=1.0\n")))
"""The Job's replacement pod: the whole run, from its first epoch."""


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    stub = KubeStub(clock=SimulatedClock())
    runs = iter([LOST, REPLACEMENT])
    stub.kubelets.containers = SimulatedContainers(stub.clock, lambda pod: next(runs))
    yield stub
    stub.close()


def printed(kube: KubeStub, deps: Deps, launch, text: str, pods: int):
    """Whether the Job's pod number ``pods`` runs and its log holds ``text``."""
    def done() -> bool:
        running = deps.logs.running_log(launch, None, 1 << 20) if len(pods_of(kube, launch.job_name)) == pods else None
        return running is not None and any(text in line for line in running.lines)
    return done


@pytest.mark.parametrize("kept", ["nothing", "the lost run", "both runs"])
def test_a_run_lost_inside_its_job_counts_nothing_once_its_replacement_ran(kube: KubeStub, tmp_path: Path, kept: str):
    store = SqliteStore(tmp_path / "katuna.db")
    executor = executor_of(kube)
    deps = Deps(store, executor, kube.clock.time, trial_defaults=Cluster(namespace="katuna"), logs=executor,
                admissions=executor)
    definition = study_definition("lost", maxTrials=1, parallelism=1)
    definition["trialTemplate"] = {"image": "python:3.12", "command": ["train", "--x=${trialParameters.x}"],
                                   "retain": True}  # the Job and its pods kept once the trial ends, to be read
    record, _ = store_study(deps, parse_study(definition), definition)
    dispatcher = Dispatcher(deps)
    try:
        reads = StreamedLogReads(executor.log, lambda launch: None)
        deliver(dispatcher, study_created("lost", record.uid))
        trial = store.get_trial("lost", 0)
        launch = trial_launch(record, trial)
        kube.run_until(printed(kube, deps, launch, "epoch=2", pods=1))
        if kept != "nothing":
            assert not scan(deps, [record])
            assert [o.step for o in store.observations("lost", 0)] == [1, 2], "the lost run's epochs, kept"
        before = reads.window(launch, 0, 1 << 20)
        first = pods_of(kube, "lost-0")[0]
        kube.preempt_pod("katuna", first["metadata"]["name"], "TerminationByKubelet")
        kube.run_until(printed(kube, deps, launch, "epoch=1", pods=2))
        assert look(record, store.get_trial("lost", 0), deps) is None, "the trial may lose a run"
        if kept == "both runs":
            assert not scan(deps, [record])
            assert [o.step for o in store.observations("lost", 0)] == [1], "kept again from the replacement's start"
        kube.run_until(lambda: finished(kube, "lost-0"))
        assert pods_of(kube, "lost-0")[0]["status"]["reason"] == "Terminated", "the lost run's pod is still there"
        deliver(dispatcher, look(record, store.get_trial("lost", 0), deps))

        trial = store.get_trial("lost", 0)
        assert (trial.state, trial.attempt, trial.values) == ("COMPLETE", 1, [0.5])
        assert [(o.step, o.value) for o in store.observations("lost", 0)] == [(1, 1.5), (2, 1.2), (3, 1.0), (None, 0.5)]
        assert list(executor.output(launch)) == [*(text for _, text in REPLACEMENT.pieces), "loss=0.5\n"]
        lost, replacement = pods_of(kube, "lost-0")
        why = f"{lost['status']['reason']}: {lost['status']['message']}"
        mark = (f"[katuna: the run in pod {lost['metadata']['name']} was lost ({why}); "
                f"pod {replacement['metadata']['name']} ran the trial again from its start]\n")
        assert list(executor.log(launch)) == [*(text for _, text in LOST.pieces), mark,
                                              *(text for _, text in REPLACEMENT.pieces), "loss=0.5\n"], \
            "a person sees the lost run's log too, and where it ended and the next run began"
        assert not parse_text([mark], ["loss"]), "no metric is read from the mark"
        after = reads.window(launch, before.offset, 1 << 20)
        assert before.text == "".join(text for _, text in LOST.pieces) and after.text.startswith(mark), \
            "a read at the offset where the lost run's log ended goes on at the mark"
        assert before.text + after.text == "".join(executor.log(launch))
        assert "".join(reads.ends(launch, 1 << 20, 1 << 20)) == before.text + after.text
    finally:
        store.close()
