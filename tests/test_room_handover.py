"""Under ``KATUNA_MAX_RUNNING_TRIALS``, a study that ends hands the room its trials held, or the
place in line its waiting trials stood in, to the other studies' waiting trials at once, however
it ends: a stop rule found by its ``study.created``, handler failures past their count or a dead
letter (:mod:`functions.handlers.failures`), its node pool refused (:mod:`functions.handlers.provision`)
or failed (:mod:`functions.handlers.releasing`). Each path ends the study with its
``study.completed``, whose ``stop`` hands the room over (:func:`functions.handlers.starting.handed_over`);
the other study's trial must not wait for its own refused event's back-off (up to 30 seconds on
katuna's broker, minutes on a Knative Trigger), or for the tick.

Events flow through the real dispatcher as a broker delivers them: each emitted event is
delivered in turn, and a launch refused for room (:class:`ServiceBusy`) is left to its back-off,
which does not come within a test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from clocks import Clock
from conftest import study_definition
from gke_stub import GkeStub

from functions.adapters import broker
from functions.adapters.broker import LocalBroker
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import ServiceBusy
from functions.core.events import TRIAL_SUGGESTED, Event, pool_check, study_created, trial_suggested
from functions.core.limits import Limits
from functions.core.records import RUNNING, WAITING, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.embedded import Embedded
from functions.handlers import spawn
from functions.handlers.asking import ask_trials
from functions.handlers.deps import Deps
from functions.handlers.submit import store_study
from functions.runtime import Runtime
from functions.settings import Settings
from infra import gke, gke_requests

START = 10_000.0


@pytest.fixture
def world(tmp_path: Path, gke_api: GkeStub):
    """The dispatcher on a real database, real trial processes and the GKE stand-in, at most
    one trial at once."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    pools = gke.GkeNodePools(gke_requests.GkeCluster("proj-7", "europe-west4", "tuning"), gke.client(gke_api.url))
    deps = Deps(store, executor, Clock(START), pools, running_trials=1)
    yield deps
    executor.shutdown()
    store.close()


def stored(deps: Deps, name: str, **overrides) -> StudyRecord:
    definition = study_definition(name=name, **{"parallelism": 1, **overrides})
    store_study(deps, parse_study(definition), definition)
    deps.store.update_study(name, started_at=START)
    return deps.store.get_study(name)


def pooled(deps: Deps, name: str, **pool) -> StudyRecord:
    definition = study_definition(name=name, parallelism=1)
    definition["trialTemplate"]["image"] = "python:3.12"
    definition["nodePool"] = {"provider": "gke", "machineType": "n2-standard-4", "maxNodes": 4, **pool}
    return store_study(deps, parse_study(definition), definition)[0]


def settle(dispatcher: Dispatcher, events: list[Event]) -> None:
    """Deliver ``events`` and all they lead to, as a broker does; a launch refused for room waits
    out its back-off, which does not come here."""
    queue = list(events)
    while queue:
        event = queue.pop(0)
        try:
            queue[:0] = dispatcher.deliver(event)
        except ServiceBusy:
            continue


def waiting_in_second(deps: Deps) -> StudyRecord:
    """``second``, whose trial waits since after the first study's trials, its launch refused."""
    second = stored(deps, "second")
    deps.store.add_trial(TrialRecord("second", 0, {"x": 3.0}, WAITING, created_at=START + 100))
    with pytest.raises(ServiceBusy):
        spawn.handle(trial_suggested("second", second.uid, 0, 1), deps)
    return second


def asked_in(deps: Deps, record: StudyRecord, **fields) -> None:
    """The study's trial 0, asked of its sampler, waiting since the study began unless ``fields``
    say otherwise."""
    assert len(ask_trials(record, deps)) == 1
    deps.store.update_trial(record.name, 0, **{"created_at": START, **fields})


def running_in(deps: Deps, record: StudyRecord) -> None:
    asked_in(deps, record, state=RUNNING, started_at=START)


def by_stop_rule(deps: Deps, dispatcher: Dispatcher) -> None:
    """``first`` runs out of its time budget; the tick's resume (a ``study.created``) finds it."""
    first = stored(deps, "first", timeBudget=60)
    running_in(deps, first)
    waiting_in_second(deps)
    deps.clock.now = START + 120  # type: ignore[attr-defined]
    settle(dispatcher, [study_created("first", first.uid)])


def by_dead_letter(deps: Deps, dispatcher: Dispatcher) -> None:
    first = stored(deps, "first")
    running_in(deps, first)
    waiting_in_second(deps)
    settle(dispatcher, dispatcher.fail_dead_letter(trial_suggested("first", first.uid, 0, 1), "refused"))


def by_pools_limit(deps: Deps, dispatcher: Dispatcher) -> None:
    """``first`` was stored before ``KATUNA_MAX_POOLS`` was lowered to hold no pool."""
    first = pooled(deps, "first")
    running_in(deps, first)
    waiting_in_second(deps)
    limited = Dispatcher(replace(deps, limits=replace(Limits(), pools=0)))
    settle(limited, limited.deliver_to("provision", study_created("first", first.uid)))


def by_pool_refused(deps: Deps, dispatcher: Dispatcher) -> None:
    first = pooled(deps, "first", machineType="e2-standard-3")
    running_in(deps, first)
    waiting_in_second(deps)
    settle(dispatcher, dispatcher.deliver_to("provision", study_created("first", first.uid)))


def by_pool_failed(deps: Deps, dispatcher: Dispatcher, gke_api: GkeStub) -> None:
    first = pooled(deps, "first")
    gke_api.fail_next = 'Insufficient regional quota to satisfy request: resource "CPUS"'
    settle(dispatcher, dispatcher.deliver_to("provision", study_created("first", first.uid)))
    running_in(deps, first)
    waiting_in_second(deps)
    gke_api.advance(600)
    settle(dispatcher, [pool_check()])


ENDS: dict[str, Callable[..., None]] = {
    "stop rule": by_stop_rule, "dead letter": by_dead_letter, "pools limit": by_pools_limit,
    "pool refused": by_pool_refused, "pool failed": by_pool_failed,
}


@pytest.mark.parametrize("end", ENDS)
def test_a_study_ended_by_any_handler_hands_the_room_its_trial_held_to_another_studys_waiting_trial(
        world: Deps, gke_api: GkeStub, end: str):
    dispatcher = Dispatcher(world)
    ending = ENDS[end]
    ending(world, dispatcher, gke_api) if end == "pool failed" else ending(world, dispatcher)
    assert world.store.get_study("first").terminal
    assert world.store.get_trial("first", 0).state == "PRUNED"
    assert world.store.get_trial("second", 0).state == RUNNING, f"ended by its {end}: the room is handed on"


@pytest.mark.parametrize("end", ["stop rule", "dead letter"])
def test_a_study_that_ends_with_only_waiting_trials_hands_their_place_in_line_on(world: Deps, end: str):
    """Room for one, free: ``first``'s trial waited longest and was handed the room, so
    ``second``'s younger trial was refused it; ``first`` ends before its trial starts (the
    trial, never run, is discarded). ``second``'s trial is now first in line, and starts at
    once, not at its refused event's next delivery."""
    dispatcher = Dispatcher(world)
    first = stored(world, "first", timeBudget=60)
    asked_in(world, first)
    waiting_in_second(world)
    if end == "stop rule":
        world.clock.now = START + 120  # type: ignore[attr-defined]
        settle(dispatcher, [study_created("first", first.uid)])
    else:
        settle(dispatcher, dispatcher.fail_dead_letter(trial_suggested("first", first.uid, 0, 1), "refused"))
    assert world.store.get_study("first").terminal
    assert world.store.get_trial("first", 0) is None, "never run: discarded"
    assert world.store.get_trial("second", 0).state == RUNNING


def test_a_stop_through_the_service_sends_the_room_it_frees_to_the_trials_waiting_in_other_studies(tmp_path: Path):
    """``POST /studies/{name}/stop`` (and ``katuna stop`` where trials run as Jobs) handles the
    study's ``study.completed`` itself: what its handling sends on (the room the stopped trials
    freed, handed to ``second``'s waiting trial) goes into the service's queue, as any
    handling's does, rather than leaving that trial to its refused event's back-off."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", max_running_trials=1))
    try:
        deps = runtime.deps()
        first = stored(deps, "first")
        running_in(deps, first)
        second = waiting_in_second(deps)
        runtime.stop("first")
        assert deps.store.get_trial("first", 0).state == "PRUNED"
        sent = []
        while (delivery := runtime.queue.take(0)) is not None:
            sent.append(delivery.event)
        assert [(event.type, event.data["study"], event.data["trial"]) for event in sent] == \
            [(TRIAL_SUGGESTED, "second", 0)]
        assert sent[0].data["uid"] == second.uid
    finally:
        runtime.close()


def drained(runtime: Runtime) -> list[Event]:
    """The events waiting in the database's queue, taken."""
    sent = []
    while (delivery := runtime.queue.take(0)) is not None:
        sent.append(delivery.event)
    return sent


def until(done: Callable[[], bool], what: str) -> None:
    """Wait for ``done`` (a state another thread or process reaches), failing after a minute."""
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def held(definition: dict, go: Path) -> dict:
    """``definition`` whose trials wait, after their first epoch, until ``go`` exists."""
    definition["trialTemplate"]["command"] += ["--until", str(go)]
    return definition


def test_katuna_stop_sends_the_room_it_frees_to_the_service_queue_for_its_waiting_trials(tmp_path: Path):
    """``katuna stop`` (trials run here) handles the study's ``study.completed`` in its own
    process: the room the stopped trial freed, handed to the trial a ``katuna serve`` on the
    database holds waiting, goes to the database's queue that service takes from, not lost with
    the command, the trial left to its refused event's back-off."""
    db = tmp_path / "katuna.db"
    service = Runtime(Settings(db=db, max_running_trials=1))
    stopper = Embedded(Settings(db=db, max_running_trials=1))
    try:
        deps = service.deps()
        running_in(deps, stored(deps, "first"))
        second = waiting_in_second(deps)
        stopper.stop("first")
        assert deps.store.get_trial("first", 0).state == "PRUNED"
        sent = drained(service)
        assert [(event.type, event.data["study"], event.data["trial"], event.data["uid"]) for event in sent] == \
            [(TRIAL_SUGGESTED, "second", 0, second.uid)]
        settle(service.dispatcher(), sent)
        assert deps.store.get_trial("second", 0).state == RUNNING
    finally:
        stopper.close()
        service.close()


def test_a_katuna_run_hands_the_room_its_trial_left_to_a_waiting_trial_of_the_service(tmp_path: Path):
    """A ``katuna run`` beside a ``katuna serve`` on the database (one trial at once): the
    service's trial, refused the room the run's trial held, is sent on through the database's
    queue as that trial ends, as the run starts no trial of the service's."""
    db, go = tmp_path / "katuna.db", tmp_path / "go"
    service = Runtime(Settings(db=db, max_running_trials=1))
    run = Embedded(Settings(db=db, max_running_trials=1))
    try:
        definition = held(study_definition(name="first", parallelism=1, maxTrials=1), go)
        run.submit(parse_study(definition), definition, tmp_path)
        ran = threading.Thread(target=run.run, args=("first",))
        ran.start()
        until(lambda: run.store.count_trials("first").running == 1, "the run's trial runs")
        second = waiting_in_second(service.deps())
        go.touch()
        ran.join()
        assert run.store.get_study("first").status == "completed"
        sent = drained(service)
        assert [(event.type, event.data["study"], event.data["trial"], event.data["uid"]) for event in sent] == \
            [(TRIAL_SUGGESTED, "second", 0, second.uid)]
        settle(service.dispatcher(), sent)
        assert service.store().get_trial("second", 0).state == RUNNING
    finally:
        run.close()
        service.close()


def test_a_katuna_run_starts_its_waiting_trial_once_the_services_trial_ends_not_at_its_back_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The other way round: the service's trial holds the room, the run's trial waits, its
    event put back for an hour; the service's trial ends, and no event of the run's tells it.
    The run's tick sees the room free and delivers its waiting trial's event now."""
    db, go = tmp_path / "katuna.db", tmp_path / "go"
    service = Runtime(Settings(db=db, max_running_trials=1))
    run = Embedded(Settings(db=db, max_running_trials=1))
    monkeypatch.setattr(broker, "MAX_BACKOFF", 3600.0)
    run.broker = LocalBroker(run, backoff=3600.0)
    ran = threading.Thread(target=run.run, args=("first",))
    try:
        deps = service.deps()
        definition = held(study_definition(name="second", parallelism=1, maxTrials=1), go)
        second = store_study(deps, parse_study(definition), definition)[0]
        settle(service.dispatcher(), [study_created("second", second.uid)])
        assert deps.store.count_trials("second").running == 1
        definition = held(study_definition(name="first", parallelism=1, maxTrials=1), go)
        run.submit(parse_study(definition), definition, tmp_path)
        ran.start()
        until(lambda: (trial := run.store.get_trial("first", 0)) is not None and trial.reason.startswith("waiting: "),
              "the run's trial is refused room")
        go.touch()
        until(lambda: not service.queue.empty(), "the service's trial ended")
        settle(service.dispatcher(), drained(service))
        assert deps.store.get_study("second").status == "completed"
        until(lambda: not ran.is_alive(), "the run's trial started, ran and ended, well before its event's back-off")
        assert run.store.get_study("first").status == "completed"
    finally:
        if ran.is_alive():
            run.stop("first")
            run.broker.events.hurry(lambda event: True)  # type: ignore[attr-defined]
            ran.join()
        run.close()
        service.close()


def test_of_two_processes_starting_the_same_waiting_trial_one_launches_it(tmp_path: Path):
    """The room handed on by another process and the trial's own event delivered again may
    reach two processes at once: the launch and its record are one write transaction, so one
    launches the trial and the other finds it running."""
    db = tmp_path / "katuna.db"
    workers = [Runtime(Settings(db=db, max_running_trials=1)) for _ in range(2)]
    try:
        deps = workers[0].deps()
        second = stored(deps, "second")
        deps.store.add_trial(TrialRecord("second", 0, {"x": 3.0}, WAITING, created_at=START))
        events = [replace(trial_suggested("second", second.uid, 0, 1), id=f"handed-{n}") for n in range(2)]
        ready = threading.Barrier(2)

        def deliver(worker: Runtime, event: Event) -> None:
            ready.wait()
            worker.dispatcher().deliver(event)

        threads = [threading.Thread(target=deliver, args=pair) for pair in zip(workers, events, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert deps.store.get_trial("second", 0).state == RUNNING
        assert sorted(len(worker.executor.attempts()) for worker in workers) == [0, 1]
    finally:
        for worker in workers:
            worker.close()
