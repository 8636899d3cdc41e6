"""First come, first served under ``KATUNA_MAX_RUNNING_TRIALS``: room that frees goes to the
trial that has waited longest, whichever study of the service it belongs to, so a study whose
trials keep ending does not keep the room while another study's trials wait; trials that room
would not start (prepared beyond their study's ``parallelism``, of an ended study, held by their
quota, of another process's study) hold no place in line."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Service

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import ServiceBusy
from functions.core.events import TRIAL_SUGGESTED, study_completed, trial_suggested
from functions.core.launch import trial_launch
from functions.core.records import RUNNING, STOPPED, WAITING, TrialRecord
from functions.core.validate import parse_study
from functions.handlers import spawn, stop
from functions.handlers.asking import ask_trials
from functions.handlers.deps import Deps
from functions.handlers.starting import go_on
from functions.handlers.submit import store_study

REFUSED = "waiting: katuna runs at most 1 trial at once (KATUNA_MAX_RUNNING_TRIALS); it starts as soon as one of those"


@pytest.fixture
def service(tmp_path: Path):
    """Handlers on a real database and real trial processes, at most one trial at once."""
    store = SqliteStore(tmp_path / "katuna.db")
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    deps = Deps(store, executor, lambda: 10_000.0, running_trials=1)
    yield deps
    executor.shutdown()
    store.close()


def stored(deps: Deps, name: str, **overrides):
    definition = study_definition(name=name, **{"parallelism": 4, **overrides})
    return store_study(deps, parse_study(definition), definition)[0]


def test_a_freed_slot_goes_to_the_trial_that_waited_longest_whatever_its_study(service: Deps):
    """``first`` had a trial running and one waiting since 2,000; ``second``'s trial has waited
    since 1,000. When ``first``'s trial ends, the room is ``second``'s: its trial is sent on,
    so it starts at once (not at its own event's next delivery, up to 30 s of back-off later;
    nor only at the tick where look-ahead held it for its study's slot, with no event of its
    own), and ``first``'s own waiting trial waits its turn, refused room if it asks."""
    first, second = stored(service, "first"), stored(service, "second")
    service.store.add_trial(TrialRecord("first", 0, {"x": 1.0}, RUNNING, created_at=500.0))
    service.store.add_trial(TrialRecord("first", 1, {"x": 2.0}, WAITING, created_at=2_000.0))
    service.store.add_trial(TrialRecord("second", 0, {"x": 3.0}, WAITING, created_at=1_000.0))
    service.store.update_trial("first", 0, state="COMPLETE", values=[1.0], finished_at=10_000.0)

    events = go_on(first, service, service.store.get_trial("first", 0))

    handed = [event for event in events if event.data["study"] == "second"]
    assert [(event.type, event.data["trial"], event.data["uid"]) for event in handed] == \
        [(TRIAL_SUGGESTED, 0, second.uid)]
    assert handed[0].id != trial_suggested("second", second.uid, 0, 1).id, "a decision of this handling: a fresh id"
    assert service.store.get_trial("first", 1).state == WAITING, "younger: it waits its turn"
    with pytest.raises(ServiceBusy, match="1 trial waited longer"):
        spawn.handle(trial_suggested("first", first.uid, 1, 1), service)
    for _ in range(2):
        assert spawn.handle(handed[0], service) == [], "a second delivery changes nothing"
        assert service.store.get_trial("second", 0).state == RUNNING
    assert service.executor.exists(trial_launch(second, service.store.get_trial("second", 0)))
    assert service.store.get_trial("first", 1).state == WAITING


def test_a_trial_handed_room_keeps_it_while_a_younger_trial_of_the_ending_study_starts_first(service: Deps):
    """Room for two: ``first``'s trial 0 ends and hands the room to ``second``'s trial, which
    waited longest; before that trial's event is handled, ``first``'s trial 1 ends, and the room
    it frees goes to ``first``'s younger trial, started in that end's own transaction, while the
    older is handed room again: the younger starts first, yet took no room the older was due."""
    deps = replace(service, running_trials=2)
    first, second = stored(service, "first"), stored(service, "second")
    service.store.add_trial(TrialRecord("first", 0, {"x": 1.0}, RUNNING, created_at=100.0))
    service.store.add_trial(TrialRecord("first", 1, {"x": 1.0}, RUNNING, created_at=100.0))
    service.store.add_trial(TrialRecord("first", 2, {"x": 2.0}, WAITING, created_at=3_000.0))
    service.store.add_trial(TrialRecord("second", 0, {"x": 3.0}, WAITING, created_at=2_000.0))
    handed = []
    for number in (0, 1):
        service.store.update_trial("first", number, state="COMPLETE", values=[1.0], finished_at=10_000.0)
        events = go_on(first, deps, service.store.get_trial("first", number))
        handed += [event for event in events if event.data["study"] == "second"]
        assert service.store.get_trial("second", 0).state == WAITING
    assert [event.data["trial"] for event in handed] == [0, 0], "handed the room at each end"
    assert service.store.get_trial("first", 2).state == RUNNING, "the room the second end freed"
    assert spawn.handle(handed[0], deps) == []
    assert service.store.get_trial("second", 0).state == RUNNING
    assert spawn.handle(handed[1], deps) == [], "the second hand-over a duplicate"
    assert service.executor.exists(trial_launch(second, service.store.get_trial("second", 0)))


def test_a_study_that_ends_hands_its_room_to_the_trials_waiting_in_other_studies(service: Deps):
    first, second = stored(service, "first", parallelism=1), stored(service, "second")
    assert len(ask_trials(first, service, service.store.count_trials("first"))) == 1, "a trial the sampler knows"
    service.store.update_trial("first", 0, state=RUNNING, created_at=500.0, started_at=600.0)
    service.store.add_trial(TrialRecord("second", 0, {"x": 3.0}, WAITING, created_at=1_000.0, reason=REFUSED))
    events = stop.handle(study_completed("first", first.uid, STOPPED, "stopped by the user"), service)
    assert [(event.data["study"], event.data["trial"]) for event in events] == [("second", 0)]
    assert second.uid == events[0].data["uid"]


def test_trials_room_would_not_start_hold_no_place_in_line(service: Deps):
    """Older waiting trials that room would not start leave it to a younger one: a trial
    prepared beyond its study's ``parallelism``, one of an ended study, one its namespace's quota
    holds, one of a study another process runs."""
    stored(service, "ahead", parallelism=1)
    service.store.add_trial(TrialRecord("ahead", 0, {"x": 1.0}, RUNNING, created_at=100.0))
    service.store.add_trial(TrialRecord("ahead", 1, {"x": 1.0}, WAITING, created_at=100.0))
    stored(service, "ended")
    service.store.add_trial(TrialRecord("ended", 0, {"x": 1.0}, WAITING, created_at=100.0))
    service.store.update_study("ended", status=STOPPED)
    stored(service, "quota")
    service.store.add_trial(TrialRecord("quota", 0, {"x": 1.0}, WAITING, created_at=100.0,
                                        reason="waiting: its Job cannot be created now: quota full; katuna tries again"))
    stored(service, "claimed")
    service.store.add_trial(TrialRecord("claimed", 0, {"x": 1.0}, WAITING, created_at=100.0))
    service.store.update_study("claimed", runner="another-process")
    record = stored(service, "demo")
    service.store.add_trial(TrialRecord("demo", 0, {"x": 2.0}, WAITING, created_at=9_000.0))
    deps = replace(service, running_trials=2)
    assert spawn.handle(trial_suggested("demo", record.uid, 0, 1), deps) == []
    assert service.store.get_trial("demo", 0).state == RUNNING


CONCURRENCY = ("while [ ! -e {d}/go ]; do sleep 0.05; done; echo x=${{trialParameters.x}}; echo loss=1")
"""A trial that waits until the test lets every trial go, then ends at once."""


@pytest.mark.slow
def test_katuna_serve_starts_the_trials_of_its_studies_in_the_order_they_waited(tmp_path: Path):
    """Two studies of ``parallelism: 4`` on a bound of 2, the second submitted while the
    first's trials hold the room: the second's trials start before the first's later trials,
    room going to the trials in the order they began to wait, rather than after every trial of
    the first (the trials a study asks for at once may start in any order among themselves;
    the service asks no trial ahead, whatever ``KATUNA_LOOKAHEAD``).

    A trial handed room by another study's end starts by an event of its own, so the next end
    may start a younger trial of its own study beside it before it: no trial starts while the
    trials running and the other study's trials that waited longer and still wait fill the
    room, which holds whatever the events' delays (:func:`_overtaking`)."""
    service = Service(tmp_path, workers=2, KATUNA_MAX_RUNNING_TRIALS="2")
    command = ["sh", "-c", CONCURRENCY.format(d=tmp_path)]
    try:
        service.submit(study_definition(name="first", parallelism=4, maxTrials=8, trialTemplate={"command": command}))
        _wait_for(service, "first", lambda counts: counts["running"] == 2)
        service.submit(study_definition(name="second", parallelism=4, maxTrials=6, trialTemplate={"command": command}))
        _wait_for(service, "second", lambda counts: counts["waiting"] >= 4)
        (tmp_path / "go").touch()
        for name in ("first", "second"):
            assert service.wait_for(name, timeout=120)["status"] == "completed"
    finally:
        service.close()
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        trials = [trial for name in ("first", "second") for trial in store.trials(name)]
    finally:
        store.close()
    assert len(trials) == 14 and all(trial.started_at is not None for trial in trials)
    assert _overtaking(trials, 2) == [], "room goes to the trials that waited longest, whatever their study"
    started = "".join(trial.study[0] for trial in sorted(trials, key=lambda trial: trial.started_at))
    assert started.index("s") < started.rindex("f"), "the second study's trials do not wait for the first to end"


def test_a_trial_started_past_the_trials_that_waited_longer_is_seen():
    """What :func:`_overtaking` finds, on the stored times of two studies' trials under a bound of
    2: every trial of ``first`` started before the trials ``second`` had waiting longer, and
    (where a younger trial starts beside a trial handed room that starts after it) nothing."""
    def trial(study: str, number: int, created: float, started: float, finished: float) -> TrialRecord:
        return TrialRecord(study, number, {}, "COMPLETE", created_at=created, started_at=started, finished_at=finished)

    early = [trial("first", 0, 0, 1, 5), trial("first", 1, 0, 2, 6), trial("second", 0, 3, 9, 10),
             trial("first", 2, 5, 5.5, 7), trial("first", 3, 6, 6.5, 8)]
    assert [(each.study, each.number) for each in _overtaking(early, 2)] == [("first", 2), ("first", 3)]
    handed = [trial("first", 0, 0, 1, 5), trial("first", 1, 0, 2, 6), trial("second", 0, 3, 6.8, 9),
              trial("first", 2, 4, 6.5, 8)]
    assert _overtaking(handed, 2) == []


def _overtaking(trials: list[TrialRecord], bound: int) -> list[TrialRecord]:
    """The trials that started while the trials running and the other studies' trials that
    had waited longer and still waited filled the ``bound``: each trial's start, end and the
    time it began waiting are stamped in the write transactions that decide them, so these are
    the counts katuna had."""
    def running(at: float) -> int:
        return sum(1 for each in trials if each.started_at < at and (each.finished_at is None or each.finished_at > at))

    return [trial for trial in trials
            if running(trial.started_at) + sum(1 for each in trials if each.study != trial.study
                                                and each.suggested_since < trial.suggested_since
                                                and each.started_at > trial.started_at) >= bound]


def _wait_for(service: Service, name: str, condition) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, study = service.json("GET", f"/studies/{name}")
        if status == 200 and condition(study["counts"]):
            return
        time.sleep(0.1)
    raise AssertionError(f"study {name} never reached the state awaited: {study}")
