"""At-least-once delivery, event by event, on the Kubernetes stand-in: the same event taken by
two workers at once, and events that overtake one another (a stop before its study's start or
its trials' launch, an earlier attempt's end after its trial ran again, the events of a study
deleted and made again under its name, dead letters of an earlier run's or attempt's events). Each goes through the real dispatcher, handlers and
SQLite store; every Job katuna creates is counted by the stand-in's API server."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna
import pytest
from conftest import study_definition
from kube_stub import KubeStub
from waiting import eventually

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import (
    STUDY_COMPLETED,
    STUDY_CREATED,
    Event,
    pool_check,
    study_completed,
    study_created,
    trial_finished,
)
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.submit import store_or_restart, store_study

pytestmark = pytest.mark.slow

_NAMESPACES = itertools.count()


@dataclass
class Outcomes:
    """The dispatcher's observer: every handling's outcome, by handler."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handled(self, event_type: str, handler: str, outcome: str, seconds: float) -> None:
        with self.lock:
            self.seen.append((handler, outcome))

    def of(self, handler: str) -> list[str]:
        return sorted(outcome for name, outcome in self.seen if name == handler)


@dataclass
class Worker:
    """One worker of the service: a store of its own over the shared database, an executor of
    its own over the shared cluster."""

    store: SqliteStore
    executor: KubernetesExecutor
    dispatcher: Dispatcher

    def deliver(self, event: Event) -> list[Event]:
        return self.dispatcher.deliver(event)


class Workers:
    """Workers over one database and one namespace of the stand-in."""

    def __init__(self, kube: KubeStub, tmp_path: Path, workers: int = 1) -> None:
        self.kube = kube
        self.namespace = f"order-{next(_NAMESPACES)}"
        kube.add_namespace(self.namespace)
        self.outcomes = Outcomes()
        self.workers = [self._worker(tmp_path / "katuna.db") for _ in range(workers)]

    def _worker(self, db: Path) -> Worker:
        store = SqliteStore(db)
        executor = KubernetesExecutor(Cluster(namespace=self.namespace), api_client(self.kube.url))
        return Worker(store, executor, Dispatcher(Deps(store, executor, time.time), observer=self.outcomes))

    def submit(self, **overrides) -> StudyRecord:
        definition = study_definition(**overrides)
        definition["trialTemplate"]["image"] = "python:3.12"
        worker = self.workers[0]
        return store_study(Deps(worker.store, worker.executor, time.time), parse_study(definition), definition)[0]

    def submit_again(self, **overrides) -> StudyRecord:
        """Submit the study, or restart it where it ended by reaching its (now raised) ``maxTrials``."""
        definition = study_definition(**overrides)
        definition["trialTemplate"]["image"] = "python:3.12"
        worker = self.workers[0]
        return store_or_restart(Deps(worker.store, worker.executor, time.time), parse_study(definition), definition)[0]

    def posted(self) -> list[str]:
        """The Jobs katuna asked the API server to create, in order."""
        with self.kube.lock:
            return [name for namespace, name in self.kube.create_requests if namespace == self.namespace]

    def jobs(self) -> dict[str, str]:
        """The namespace's Jobs, each with the study uid on its labels."""
        with self.kube.lock:
            return {name: job["metadata"]["labels"]["katuna.dev/uid"]
                    for (namespace, name), job in self.kube.jobs.items() if namespace == self.namespace}

    def close(self) -> None:
        for worker in self.workers:
            worker.store.close()


def _at_once(workers: list[Worker], event: Event) -> list[list[Event]]:
    """What each worker emitted, handling ``event`` at the same moment as the others."""
    start = threading.Barrier(len(workers))
    emitted: list[list[Event]] = [[] for _ in workers]
    failures: list[Exception] = []

    def handle(index: int) -> None:
        start.wait()
        try:
            emitted[index] = workers[index].deliver(event)
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=handle, args=(index,)) for index in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    return emitted


def test_an_event_two_workers_take_at_once_is_handled_once_launching_one_job_and_asking_one_successor(
        kube: KubeStub, tmp_path: Path):
    cluster = Workers(kube, tmp_path, workers=2)
    first, second = cluster.workers
    try:
        record = cluster.submit(maxTrials=3, parallelism=2)
        for suggested in first.deliver(study_created("demo", record.uid)):
            emitted = _at_once(cluster.workers, suggested)
            assert emitted[0] == emitted[1] == []
        assert cluster.posted() == ["demo-0", "demo-1"], "each Job created once"
        assert cluster.outcomes.of("spawn") == ["duplicate", "duplicate", "ok", "ok"]

        launch = trial_launch(record, first.store.get_trial("demo", 0))
        end = eventually(lambda: first.executor.poll(launch), "trial 0's Job ended", timeout=60)
        emitted = _at_once(cluster.workers, end)
        assert [e.id for e in emitted[0]] == [e.id for e in emitted[1]], "the duplicate re-emits the same events"
        assert cluster.outcomes.of("collect") == ["duplicate", "ok"]
        assert [(t.number, t.state) for t in first.store.trials("demo")] == \
            [(0, "COMPLETE"), (1, "RUNNING"), (2, "WAITING")], "one successor asked for"
        study = optuna.load_study(study_name="demo", storage=second.store.optuna_storage())
        assert [t.state.name for t in study.trials] == ["COMPLETE", "RUNNING", "RUNNING"], "the sampler told once"
    finally:
        cluster.close()


def test_a_stop_that_overtakes_its_studys_start_or_its_trials_launch_launches_nothing(kube: KubeStub,
                                                                                       tmp_path: Path):
    cluster = Workers(kube, tmp_path)
    [worker] = cluster.workers
    try:
        record = cluster.submit(maxTrials=3, parallelism=2)
        suggested = worker.deliver(study_created("demo", record.uid))
        worker.deliver(study_completed("demo", record.uid, "stopped", "stopped by its user"))
        for late in suggested:
            assert worker.deliver(late) == []
        assert worker.deliver(study_created("demo", record.uid)) == [], "a start retried after the stop asks nothing"
        assert cluster.posted() == [] and worker.store.trials("demo") == [], "trials never launched are discarded"
        assert worker.store.get_study("demo").status == "stopped"

        early = cluster.submit(name="early", maxTrials=3, parallelism=2)
        worker.deliver(study_completed("early", early.uid, "stopped", "stopped by its user"))
        assert worker.deliver(study_created("early", early.uid)) == []
        assert worker.store.trials("early") == [] and cluster.posted() == []
        assert worker.store.get_study("early").status == "stopped"
    finally:
        cluster.close()


def test_an_earlier_attempts_end_delivered_after_its_trial_ran_again_leaves_the_new_attempt_running(
        kube: KubeStub, tmp_path: Path):
    """The end of attempt 1 comes again once the trial runs as attempt 2: with the id it had (a
    Trigger's retry), or under another (its handling's record pruned after a week, another
    source): the new attempt's Job is neither stopped nor replaced, and no verdict is stored."""
    cluster = Workers(kube, tmp_path)
    [worker] = cluster.workers
    record = cluster.submit(mode="hang", maxTrials=1, parallelism=1)
    try:
        for suggested in worker.deliver(study_created("demo", record.uid)):
            worker.deliver(suggested)
        preempted = trial_finished("demo", record.uid, 0, 1, "preempted", message="its node was reclaimed")
        [again] = worker.deliver(preempted)
        worker.deliver(again)
        assert cluster.posted() == ["demo-0", "demo-0-a2"]

        exited = trial_finished("demo", record.uid, 0, 1, "exited", exit_code=0)
        for late in (preempted, again, exited, replace(exited, id=str(uuid.uuid4()))):
            worker.deliver(late)
        trial = worker.store.get_trial("demo", 0)
        assert (trial.state, trial.attempt, trial.values) == ("RUNNING", 2, None)
        assert worker.executor.exists(trial_launch(record, trial)), "attempt 2's Job still runs"
        assert cluster.posted() == ["demo-0", "demo-0-a2"], "no attempt launched twice"
    finally:
        worker.deliver(study_completed("demo", record.uid, "stopped", "the test ended"))
        cluster.close()


def test_the_late_events_of_a_study_deleted_and_made_again_under_its_name_leave_the_new_one_alone(
        kube: KubeStub, tmp_path: Path):
    cluster = Workers(kube, tmp_path)
    [worker] = cluster.workers
    old = cluster.submit(mode="hang", maxTrials=2, parallelism=2)
    old_suggested = worker.deliver(study_created("demo", old.uid))
    worker.deliver(old_suggested[0])
    worker.deliver(study_completed("demo", old.uid, "stopped", "stopped to be deleted"))
    worker.store.delete_study("demo")
    new = cluster.submit(mode="hang", maxTrials=2, parallelism=2)
    try:
        for suggested in worker.deliver(study_created("demo", new.uid)):
            worker.deliver(suggested)
        late = [*old_suggested, study_created("demo", old.uid),
                trial_finished("demo", old.uid, 0, 1, "exited", exit_code=0),
                trial_finished("demo", old.uid, 1, 1, "preempted", message="its node was reclaimed"),
                study_completed("demo", old.uid, "stopped", "stopped to be deleted")]
        for event in late:
            assert worker.deliver(event) == [], event.type
        assert [(t.number, t.state, t.attempt) for t in worker.store.trials("demo")] == \
            [(0, "RUNNING", 1), (1, "RUNNING", 1)]
        assert not worker.store.get_study("demo").terminal
        assert cluster.jobs() == {"demo-0": new.uid, "demo-1": new.uid}, "the new study's Jobs run on"
        assert cluster.posted() == ["demo-0", "demo-0", "demo-1"], "the old study's trial 1 never launched"
    finally:
        worker.deliver(study_completed("demo", new.uid, "stopped", "the test ended"))
        cluster.close()


def _run_through(worker: Worker, events: list[Event]) -> list[Event]:
    """Deliver ``events``, what they emit, and each running trial's end once its Job reports
    it, until no trial runs: every event delivered."""
    delivered, pending = [], list(events)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        while pending:
            delivered.append(pending.pop(0))
            pending += worker.deliver(delivered[-1])
        record = worker.store.get_study("demo")
        running = [trial_launch(record, t) for t in worker.store.trials("demo") if t.state == "RUNNING"]
        if not running:
            return delivered
        pending = [end for launch in running if (end := worker.executor.poll(launch)) is not None]
        time.sleep(0.1)
    raise AssertionError("the study's trials did not end within 60 s")


def test_a_dead_letter_of_an_earlier_runs_events_fails_nothing_once_its_study_restarted(kube: KubeStub, tmp_path: Path):
    """A study that ended at its ``maxTrials`` is restarted with more; then the first run's
    events come back as dead letters, its ``study.created`` and ``study.completed`` among them
    (a lagging delivery to the dead-letter sink, whose letter is believed: it came with the API
    token, or from the broker's OIDC account). They are of a run that has ended: the restarted run goes on, as
    the first run's ``study.completed`` delivered late stops nothing. Before, the restarted run
    failed ("an event could not be delivered")."""
    cluster = Workers(kube, tmp_path)
    [worker] = cluster.workers
    record = cluster.submit_again(maxTrials=1, parallelism=1)
    try:
        first_run = _run_through(worker, [study_created("demo", record.uid)])
        assert [e.type for e in first_run if e.type == STUDY_COMPLETED] == [STUDY_COMPLETED]
        record = cluster.submit_again(maxTrials=2, parallelism=1)
        assert (record.status, record.restarts) == ("running", 1)
        for suggested in worker.deliver(study_created("demo", record.uid, record.restarts)):
            worker.deliver(suggested)
        for letter in first_run:
            assert worker.dispatcher.fail_dead_letter(letter, "http://katuna/functions/writeback 422") == [], letter
        study = worker.store.get_study("demo")
        assert (study.status, study.restarts) == ("running", 1), study
        assert [(t.number, t.state) for t in worker.store.trials("demo")] == [(0, "COMPLETE"), (1, "RUNNING")]
    finally:
        worker.deliver(study_completed("demo", record.uid, "stopped", "the test ended", record.restarts))
        cluster.close()


def test_a_dead_letter_of_a_study_created_fails_its_study_only_while_it_is_of_the_current_run(kube: KubeStub,
                                                                                                tmp_path: Path):
    """A study ends at its ``maxTrials`` and is restarted with more. Its first run's
    ``study.created`` (the submission's, and the one the tick sent before that was handled) then
    come back as dead letters: they started a run that has ended, and fail nothing. A dead letter
    of the ``study.created`` the tick sends for the restarted run still fails the study. Before,
    a ``study.created`` said nothing of its run, and the first run's failed the restarted run
    ("an event could not be delivered")."""
    cluster = Workers(kube, tmp_path)
    [worker] = cluster.workers
    record = cluster.submit_again(maxTrials=1, parallelism=1)
    try:
        first_run = [*_created(worker.deliver(pool_check())), study_created("demo", record.uid)]
        _run_through(worker, first_run[-1:])
        assert worker.store.get_study("demo").status == "completed"
        record = cluster.submit_again(maxTrials=2, parallelism=1)
        [restarted] = _created(worker.deliver(pool_check()))
        for suggested in worker.deliver(restarted):
            worker.deliver(suggested)
        for letter in first_run:
            assert worker.dispatcher.fail_dead_letter(letter, "http://katuna/functions/suggest 422") == [], letter
        study = worker.store.get_study("demo")
        assert (study.status, study.restarts) == ("running", 1), study
        assert [(t.number, t.state) for t in worker.store.trials("demo")] == [(0, "COMPLETE"), (1, "RUNNING")]
        [ended] = worker.dispatcher.fail_dead_letter(restarted, "http://katuna/functions/suggest 422")
        study = worker.store.get_study("demo")
        assert (ended.type, ended.data["status"], study.status) == (STUDY_COMPLETED, "failed", "failed")
        assert study.reason == "an event could not be delivered (dev.katuna.study.created): " \
                               "http://katuna/functions/suggest 422"
    finally:
        worker.deliver(study_completed("demo", record.uid, "stopped", "the test ended", record.restarts))
        cluster.close()


def _created(events: list[Event]) -> list[Event]:
    """The ``study.created`` among ``events``."""
    return [event for event in events if event.type == STUDY_CREATED]


def test_a_dead_letter_fails_its_study_only_for_an_event_of_its_trials_current_attempt(kube: KubeStub, tmp_path: Path):
    """A trial preempted runs again as attempt 2; dead letters of attempt 1's events (its
    ``trial.suggested``, its ends) are of an attempt superseded, and fail nothing. A dead letter
    of attempt 2's ``trial.suggested`` still fails the study: that event matters to it."""
    cluster = Workers(kube, tmp_path)
    [worker] = cluster.workers
    record = cluster.submit(mode="hang", maxTrials=1, parallelism=1)
    try:
        [suggested] = worker.deliver(study_created("demo", record.uid))
        worker.deliver(suggested)
        preempted = trial_finished("demo", record.uid, 0, 1, "preempted", message="its node was reclaimed")
        [again] = worker.deliver(preempted)
        worker.deliver(again)
        for letter in (suggested, preempted, trial_finished("demo", record.uid, 0, 1, "exited", exit_code=0)):
            assert worker.dispatcher.fail_dead_letter(letter, "http://katuna/functions/spawn 422") == [], letter
        assert worker.store.get_study("demo").status == "running"
        [ended] = worker.dispatcher.fail_dead_letter(again, "http://katuna/functions/spawn 422")
        study = worker.store.get_study("demo")
        assert (ended.type, ended.data["status"], study.status) == (STUDY_COMPLETED, "failed", "failed")
        assert study.reason == "an event could not be delivered (dev.katuna.trial.suggested): " \
                               "http://katuna/functions/spawn 422"
    finally:
        worker.deliver(study_completed("demo", record.uid, "stopped", "the test ended"))
        cluster.close()
