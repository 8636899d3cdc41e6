"""At-least-once delivery: duplicated and reordered events change nothing twice."""

from __future__ import annotations

import copy
import os
import random
import threading
import time
from pathlib import Path

import optuna
import pytest
from conftest import study_definition
from kube_stub import KubeStub

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.core.cluster import Cluster
from functions.core.events import Event, study_created
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.embedded import Embedded
from functions.handlers import Deps
from functions.settings import Settings


class ChaosDelivery:
    """Delivers pending events in random order, each one to three times, through a real dispatcher.

    ``announce`` plays an event source outside katuna (an ApiServerSource): called whenever
    nothing is pending, it returns events to publish.
    """

    def __init__(self, runner: Embedded, seed: int, dispatcher: Dispatcher | None = None,
                 executor=None, announce=lambda: []) -> None:
        self.runner = runner
        self.dispatcher = dispatcher or runner.dispatcher
        self.executor = executor or runner.executor
        self.announce = announce
        self.rng = random.Random(seed)
        self.pending: list = []
        self.lock = threading.Lock()
        runner.broker.publish = self.publish  # the local executor reports trial ends here
        runner.broker.publish_and_handle = self.publish

    def publish(self, event) -> None:
        with self.lock:
            self.pending.extend([event] * self.rng.randint(1, 3))

    def deliver(self, event) -> None:
        for emitted in self.dispatcher.deliver(event):
            self.publish(emitted)

    def run(self, name: str, deadline: float = 60.0) -> None:
        self.publish(study_created(name, self.runner.store.get_study(name).uid))
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with self.lock:
                event = self.pending.pop(self.rng.randrange(len(self.pending))) if self.pending else None
            if event is not None:
                self.deliver(event)
            elif self.runner.store.get_study(name).terminal and self.executor.running(name) == 0:
                return
            else:
                for announced in self.announce():
                    self.publish(announced)
                time.sleep(0.01)
        raise AssertionError("the study did not end")


SEEDS = range(int(os.environ.get("KATUNA_CHAOS_SEEDS", "16")))
"""Seeds of the shuffled, duplicated deliveries (16 by default; see docs/reliability.md)."""


def _outcome(runner: Embedded) -> list[tuple]:
    return [(t.number, t.state, t.params, t.values, t.attempt) for t in runner.store.trials("demo")]


def _submit(tmp_path: Path) -> Embedded:
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    definition = study_definition(maxTrials=6, parallelism=2)
    definition["trialTemplate"]["image"] = "python:3.12"
    runner.submit(parse_study(definition), definition, tmp_path)
    return runner


@pytest.fixture(scope="module")
def exactly_once(tmp_path_factory) -> list[tuple]:
    """The study delivered exactly once, in order: what every chaotic run must end with."""
    runner = _submit(tmp_path_factory.mktemp("once"))
    try:
        runner.run("demo")
        return _outcome(runner)
    finally:
        runner.close()


def _assert_same_study(runner: Embedded, expected: list[tuple]) -> None:
    assert _outcome(runner) == expected
    assert runner.store.get_study("demo").status == "completed"
    study = optuna.load_study(study_name="demo", storage=runner.store.optuna_storage())
    assert [(t.number, t.state.name, t.params) for t in study.trials] == [(n, s, p) for n, s, p, _, _ in expected]
    best = min(expected, key=lambda t: t[3][0])
    assert (study.best_trial.number, study.best_value) == (best[0], best[3][0])


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_duplicated_and_shuffled_delivery_matches_exactly_once(tmp_path: Path, seed: int, exactly_once):
    chaos = _submit(tmp_path)
    try:
        ChaosDelivery(chaos, seed).run("demo")
        _assert_same_study(chaos, exactly_once)
        logs = sorted(p.name for p in (chaos.settings.logs / "demo").glob("*/*.log"))
        assert logs == [f"{n}.1.log" for n in range(6)], "every trial launched exactly once"
    finally:
        chaos.close()


class JobSource:
    """Plays the ApiServerSource over the loopback Kubernetes API: every Job change as an event,
    final ones announced again and again, as a watch that reconnects would."""

    def __init__(self, kube: KubeStub, rng: random.Random) -> None:
        self.kube = kube
        self.rng = rng

    def __call__(self) -> list[Event]:
        with self.kube.lock:
            jobs = [copy.deepcopy(job) for job in self.kube.jobs.values()]
        events = []
        for job in jobs:
            if job["status"].get("conditions") or self.rng.random() < 0.2:
                event = Event("dev.knative.apiserver.resource.update", job, subject=job["metadata"]["name"])
                events += [event] * self.rng.randint(1, 2)
        return events


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS[:6])
def test_duplicated_and_shuffled_job_events_create_each_job_once(tmp_path: Path, seed: int, exactly_once,
                                                                 kube: KubeStub):
    chaos = _submit(tmp_path)
    namespace = f"chaos-{seed}"
    kube.add_namespace(namespace)
    executor = KubernetesExecutor(Cluster(namespace=namespace), api_client(kube.url))
    dispatcher = Dispatcher(Deps(chaos.store, executor, time.time))
    try:
        ChaosDelivery(chaos, seed, dispatcher, executor, JobSource(kube, random.Random(seed))).run("demo")
        _assert_same_study(chaos, exactly_once)
        posted = [name for ns, name in kube.create_requests if ns == namespace]
        assert sorted(posted) == [f"demo-{n}" for n in range(6)], "every Job created once, never posted twice"
    finally:
        chaos.close()


def test_a_redelivered_event_re_emits_what_it_emitted_the_first_time(embedded, tmp_path: Path):
    definition = study_definition(maxTrials=3, parallelism=2)
    embedded.submit(parse_study(definition), definition, tmp_path)
    event = study_created("demo", embedded.store.get_study("demo").uid)
    first = embedded.dispatcher.deliver(event)
    again = embedded.dispatcher.deliver(event)
    assert [e.id for e in first] == [e.id for e in again]
    assert len(first) == 2
    assert len(embedded.store.trials("demo")) == 3, "two to run, one prepared ahead of a free slot"


def test_an_attempt_launched_by_a_delivery_whose_record_was_lost_still_ends_its_trial(embedded, tmp_path: Path):
    from functions.core.launch import trial_launch

    definition = study_definition(maxTrials=2, parallelism=2)
    record = embedded.submit(parse_study(definition), definition, tmp_path)
    suggested = embedded.dispatcher.deliver(study_created("demo", record.uid))
    first = embedded.store.get_trial("demo", 0)
    embedded.executor.launch(trial_launch(record, first))  # launched, but spawn's transaction never committed
    for event in suggested:
        embedded.broker.publish(event)
    embedded.broker.run(until=lambda: embedded.store.get_study("demo").terminal and not embedded.executor.running())
    assert [t.state for t in embedded.store.trials("demo")] == ["COMPLETE", "COMPLETE"]
    assert sorted(p.name for p in (embedded.settings.logs / "demo").glob("*/*.log")) == ["0.1.log", "1.1.log"]
