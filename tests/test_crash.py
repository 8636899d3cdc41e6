"""A crash at every step: each port call a handler makes may be the last one of its process.

The ports are wrapped from the outside (a store, an executor that delegate to the real ones and
raise ``Crash`` right after the n-th call of one method: the effect happened, the process
died). The event is then delivered again, as Knative redelivers a request that failed. A crash
after the handler's commit and before its events were sent is played by the harness dropping
the emitted events. Every study must end with exactly the configured trials, as an undisturbed
run does, each attempt launched once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import study_definition
from kube_stub import KubeStub
from test_delivery import ChaosDelivery
from waiting import eventually

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import pool_check, study_completed, study_created
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.embedded import Embedded
from functions.handlers import Deps, reconcile
from functions.handlers.stopping import stop_marked
from functions.handlers.submit import store_study
from functions.settings import Settings

pytestmark = pytest.mark.slow

TRIALS = 3


class Crash(Exception):
    """The process died here."""


class CrashAfter:
    """A port that delegates every call, and crashes right after the ``n``-th call of ``method``
    (for a generator, after it yielded ``lines`` items)."""

    def __init__(self, port, method: str, n: int, lines: int | None = None) -> None:
        self._port, self._method, self._n, self._lines = port, method, n, lines
        self.calls = 0
        self.crashed = False

    def __getattr__(self, name: str):
        attribute = getattr(self._port, name)
        if name != self._method:
            return attribute

        def call(*args, **kwargs):
            self.calls += 1
            result = attribute(*args, **kwargs)
            if self.calls != self._n:
                return result
            if self._lines is not None:
                return self._crash_midway(result)
            self.crashed = True
            raise Crash(f"{self._method} #{self._n}")
        return call

    def _crash_midway(self, lines) -> Iterator[str]:
        for count, line in enumerate(lines):
            if count == self._lines:
                break
            yield line
        self.crashed = True
        raise Crash(f"{self._method} #{self._n} after {self._lines} lines")


class CrashingDelivery(ChaosDelivery):
    """Redelivers an event whose handling crashed; drops the events of one delivery (the crash
    between commit and send) when asked."""

    def __init__(self, *args, drop_emitted_of: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.drop_emitted_of = drop_emitted_of
        self.crashes = 0

    def deliver(self, event) -> None:
        try:
            emitted = self.dispatcher.deliver(event)
        except Crash:
            self.crashes += 1
            self.publish(event)
            return
        if event.type == self.drop_emitted_of and emitted and self.crashes == 0:
            self.crashes += 1
            self.publish(event)
            return
        for out in emitted:
            self.publish(out)


def _submit(tmp_path: Path) -> Embedded:
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    definition = study_definition(maxTrials=TRIALS, parallelism=2)
    definition["trialTemplate"]["image"] = "python:3.12"
    runner.submit(parse_study(definition), definition, tmp_path)
    return runner


def _outcome(runner: Embedded) -> list[tuple]:
    return [(t.number, t.state, t.params, t.values) for t in runner.store.trials("demo")]


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory) -> list[tuple]:
    runner = _submit(tmp_path_factory.mktemp("undisturbed"))
    try:
        runner.run("demo")
        return _outcome(runner)
    finally:
        runner.close()


STORE_STEPS = [(method, n) for method, counts in {
    "add_trial": (1, TRIALS),                 # suggest: a new trial stored, the Optuna ask not yet committed
    "update_study": (1, 2),                   # suggest: started_at; collect: completed
    "update_trial": (1, 2, 2 * TRIALS),       # spawn marks running; collect stores the verdict
    "add_observations": (1, TRIALS),          # collect: metrics stored, the sampler not yet told
    "optuna_study": (2, 5),                   # the sampler's storage opened to ask or tell
    "record_processed": (1, 3, 7),            # everything done but the processed-event record
}.items() for n in counts]


@pytest.mark.parametrize("method, n", STORE_STEPS, ids=[f"store.{m}#{n}" for m, n in STORE_STEPS])
def test_a_crash_after_any_store_step_is_redelivered_to_the_same_study(tmp_path: Path, undisturbed, method: str,
                                                                        n: int):
    runner = _submit(tmp_path)
    store = CrashAfter(runner.store, method, n)
    delivery = CrashingDelivery(runner, n, Dispatcher(Deps(store, runner.executor, time.time)))
    try:
        delivery.run("demo")
        assert store.crashed and delivery.crashes >= 1
        assert _outcome(runner) == undisturbed
        logs = sorted(p.name for p in (runner.settings.logs / "demo").glob("*/*.log"))
        assert logs == [f"{k}.1.log" for k in range(TRIALS)], "every attempt launched once"
    finally:
        runner.close()


EXECUTOR_STEPS = [("launch", 1, None, 0), ("launch", TRIALS, None, 0), ("launch", TRIALS, None, 1),
                  ("exists", 2, None, 0), ("output", 1, 0, 0), ("output", 1, 2, 0), ("output", TRIALS, 3, 0)]
"""Each crash point with the look-ahead it runs under: with look-ahead, the last trial is
prepared while the first two run and launched by the handling of the first one's end."""


@pytest.mark.parametrize("method, n, lines, lookahead", EXECUTOR_STEPS,
                         ids=[f"executor.{m}#{n}" + (f"-after-{k}-lines" if k is not None else "")
                              + ("-look-ahead" if ahead else "") for m, n, k, ahead in EXECUTOR_STEPS])
def test_a_crash_after_a_launch_or_in_the_middle_of_log_collection_is_redelivered(
        tmp_path: Path, undisturbed, method: str, n: int, lines: int | None, lookahead: int):
    runner = _submit(tmp_path)
    executor = CrashAfter(runner.executor, method, n, lines)
    delivery = CrashingDelivery(runner, n, Dispatcher(Deps(runner.store, executor, time.time, lookahead=lookahead)),
                                executor)
    try:
        delivery.run("demo")
        assert executor.crashed and delivery.crashes >= 1
        assert _outcome(runner) == undisturbed
        logs = sorted(p.name for p in (runner.settings.logs / "demo").glob("*/*.log"))
        assert logs == [f"{k}.1.log" for k in range(TRIALS)], "a launched attempt is never launched again"
        observations = runner.store.observations("demo", 0)
        assert [o.step for o in observations] == [1, 2, 3, None], "observations stored once"
    finally:
        runner.close()


EVENT_TYPES = ["dev.katuna.study.created", "dev.katuna.trial.suggested", "dev.katuna.trial.finished"]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_a_crash_between_commit_and_send_loses_nothing(tmp_path: Path, undisturbed, event_type: str):
    runner = _submit(tmp_path)
    delivery = CrashingDelivery(runner, 1, drop_emitted_of=event_type)
    try:
        delivery.run("demo")
        assert _outcome(runner) == undisturbed
    finally:
        runner.close()


@pytest.mark.parametrize("n", [1, 2])
def test_a_crash_after_a_job_create_and_before_its_record_creates_no_second_job(tmp_path: Path, undisturbed,
                                                                                  kube: KubeStub, n: int):
    from test_delivery import JobSource

    runner = _submit(tmp_path)
    namespace = f"crash-{n}"
    kube.add_namespace(namespace)
    executor = CrashAfter(KubernetesExecutor(Cluster(namespace=namespace), api_client(kube.url)), "launch", n)
    delivery = CrashingDelivery(runner, n, Dispatcher(Deps(runner.store, executor, time.time)), executor,
                                JobSource(kube, random.Random(n)))
    try:
        delivery.run("demo")
        assert executor.crashed
        assert _outcome(runner) == undisturbed
        posted = [name for ns, name in kube.create_requests if ns == namespace]
        assert sorted(posted) == [f"demo-{k}" for k in range(TRIALS)]
    finally:
        runner.close()


@contextmanager
def _stopped_midway(tmp_path: Path) -> Iterator[tuple[Deps, StudyRecord]]:
    """A study of two running trials whose stop dies right after stopping their attempts: its
    verdict stored, the attempts still marked to stop."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = LocalExecutor(tmp_path / "logs", publish=lambda event: None)
    deps = Deps(store, executor, time.time)
    definition = study_definition(name="halted", mode="hang", maxTrials=2, parallelism=2)
    record, _ = store_study(deps, parse_study(definition), definition)
    try:
        pending = [study_created(record.name, record.uid)]
        while pending:
            pending = [emitted for event in pending for emitted in Dispatcher(deps).deliver(event)]
        eventually(lambda: executor.running("halted") == 2, "both attempts running", timeout=30)
        crashing = Dispatcher(Deps(store, CrashAfter(executor, "stop_trials", 1), time.time))
        with pytest.raises(Crash):
            crashing.deliver(study_completed(record.name, record.uid, "stopped", "stopped by its user", 0))
        yield deps, record
    finally:
        executor.shutdown()
        store.close()


def test_a_stop_whose_process_dies_at_the_trials_stop_keeps_its_verdict_and_the_tick_stops_them(tmp_path: Path):
    """The stop function stores the study's end and its trials pruned, then stops their
    attempts, and the process dies right there (POST /studies/{name}/stop delivers it once):
    the stop is kept, nothing runs again, and the tick stops the attempts, which it finds
    still marked to stop, again (:mod:`functions.handlers.stopping`)."""
    with _stopped_midway(tmp_path) as (deps, _):
        store, executor = deps.store, deps.executor
        assert store.get_study("halted").status == "stopped"
        assert [(t.state, t.attempt) for t in store.trials("halted")] == [("PRUNED", 1), ("PRUNED", 1)]
        assert store.stopping_trials(10) == [("halted", 0), ("halted", 1)]
        eventually(lambda: executor.running("halted") == 0, "the stopped processes gone", timeout=30)
        assert reconcile.handle(pool_check(), deps) == []
        assert store.stopping_trials(10) == []
        assert [(t.state, t.attempt) for t in store.trials("halted")] == [("PRUNED", 1), ("PRUNED", 1)]


def test_two_stops_that_read_the_same_marks_stop_the_attempts_once(tmp_path: Path):
    """The stop's own effect and a tick (of this process or another) may both have read the
    marks before either cleared them: the first to take the store's lock stops the attempts,
    the second finds no mark left and stops nothing again."""
    with _stopped_midway(tmp_path) as (deps, record):
        counting = CrashAfter(deps.executor, "stop_trials", 0)
        racing = Deps(deps.store, counting, time.time)
        for _ in range(2):
            stop_marked(racing, record.name, record.uid, [0, 1])
        assert counting.calls == 1
        assert deps.store.stopping_trials(10) == []
