"""At-least-once delivery on the Kubernetes stand-in, two workers at once: a study's stop
taken twice, a stop racing its trial's end, a start taken twice under two ids."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest
from kube_stub import KubeStub
from test_delivery_order import Workers, _at_once
from waiting import eventually

from functions.core.events import study_completed, study_created
from functions.core.launch import trial_launch

pytestmark = pytest.mark.slow


def _told(cluster: Workers) -> dict[int, str]:
    storage = cluster.workers[0].store.optuna_storage()
    return {t.number: t.state.name for t in optuna.load_study(study_name="demo", storage=storage).trials}


def test_a_stop_two_workers_take_at_once_prunes_each_running_trial_once(kube: KubeStub, tmp_path: Path):
    cluster = Workers(kube, tmp_path, workers=2)
    first, _ = cluster.workers
    record = cluster.submit(mode="hang", maxTrials=4, parallelism=2)
    try:
        for suggested in first.deliver(study_created("demo", record.uid)):
            first.deliver(suggested)
        stop = study_completed("demo", record.uid, "stopped", "stopped by its user")
        emitted = _at_once(cluster.workers, stop)
        assert emitted[0] == emitted[1] == []
        assert sorted(cluster.outcomes.of("stop")) == ["duplicate", "ok"]
        assert [(t.number, t.state) for t in first.store.trials("demo")] == [(0, "PRUNED"), (1, "PRUNED")]
        assert _told(cluster) == {0: "PRUNED", 1: "PRUNED"}
        assert cluster.jobs() == {} and cluster.posted() == ["demo-0", "demo-1"]
    finally:
        cluster.close()


def test_a_trials_end_racing_its_studys_stop_settles_it_once_and_launches_nothing_after(kube: KubeStub,
                                                                                          tmp_path: Path):
    cluster = Workers(kube, tmp_path, workers=2)
    first, second = cluster.workers
    record = cluster.submit(maxTrials=4, parallelism=1)
    try:
        [suggested] = first.deliver(study_created("demo", record.uid))
        first.deliver(suggested)
        launch = trial_launch(record, first.store.get_trial("demo", 0))
        end = eventually(lambda: first.executor.poll(launch), "trial 0's Job ended", timeout=60)
        stop = study_completed("demo", record.uid, "stopped", "stopped by its user")
        for later in (first.deliver(end), second.deliver(stop)):
            for event in later:
                first.deliver(event)
        states = [(t.number, t.state) for t in first.store.trials("demo")]
        assert states == [(0, "COMPLETE")], states
        assert _told(cluster)[0] == "COMPLETE"
        assert cluster.posted() == ["demo-0"], "nothing launched after the stop"
        assert first.store.get_study("demo").status == "stopped"
    finally:
        cluster.close()


def test_two_starts_of_a_study_taken_at_once_ask_for_its_parallelism_once(kube: KubeStub, tmp_path: Path):
    cluster = Workers(kube, tmp_path, workers=2)
    first, _ = cluster.workers
    record = cluster.submit(mode="hang", maxTrials=6, parallelism=2)
    try:
        starts = [study_created("demo", record.uid), study_created("demo", record.uid)]
        assert starts[0].id != starts[1].id
        emitted: list = [None, None]
        barrier = threading.Barrier(2)

        def deliver(index: int) -> None:
            barrier.wait()
            emitted[index] = cluster.workers[index].deliver(starts[index])

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for events in emitted:
            for event in events:
                first.deliver(event)
        assert [(t.number, t.state) for t in first.store.trials("demo")] == [(0, "RUNNING"), (1, "RUNNING")]
        assert sorted(cluster.posted()) == ["demo-0", "demo-1"]
        assert _told(cluster) == {0: "RUNNING", 1: "RUNNING"}
    finally:
        first.deliver(study_completed("demo", record.uid, "stopped", "the test ended"))
        cluster.close()
