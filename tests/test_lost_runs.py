"""A running attempt whose run is gone when its study resumes (its process ended with the
``katuna`` that ran it, killed outright, its Job deleted) is a run lost: it counts against
``trialTemplate.maxAttempts`` as a preempted one does, and the trial's reason says so. One that
katuna killed as it stopped (Ctrl-C, a shutdown) runs again and is not counted. One whose
process ended on its own, its end recorded beside its log, but whose handling was given up (the
``katuna`` that ran it stopped meanwhile) is recorded from its log instead. Real trial
processes, a real SQLite store, the handlers as dispatched."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import study_definition
from waiting import eventually

from functions.adapters import local_ends
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.local_exits import Memory
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import RefusedFile
from functions.core.events import TRIAL_FINISHED, Event, study_created
from functions.core.launch import TrialLaunch, trial_launch
from functions.core.records import RUNNING, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.submit import store_study


def _deliver_all(dispatcher: Dispatcher, events: list[Event]) -> list[Event]:
    """Deliver the events and what they emit, until nothing is left; every event delivered."""
    delivered, pending = [], list(events)
    while pending:
        event = pending.pop(0)
        delivered.append(event)
        pending.extend(dispatcher.deliver(event))
    return delivered


def _resume(store: SqliteStore, tmp_path: Path, uid: str, lookahead: int, deliveries: int = 1,
            name: str = "lost", outright: bool = True) -> list[Event]:
    """A fresh process resumes the study (``deliveries`` times: an event delivered again), its
    trial left running; then that process ends, its trial's run with it: killed ``outright``
    (as ``kill -9``, whose guard ends the trials and records nothing), else shut down."""
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    dispatcher = Dispatcher(Deps(store, executor, lambda: 1000.0, lookahead=lookahead))
    try:
        return [event for _ in range(deliveries) for event in _deliver_all(dispatcher, [study_created(name, uid)])]
    finally:
        executor.shutdown()
        if outright:
            for ends in (tmp_path / "logs").glob(f"{name}/*/{local_ends.ENDS}"):
                kept = [line for line in ends.read_text().split("\n") if line and not json.loads(line)["interrupted"]]
                ends.write_text("".join(f"\n{line}" for line in kept))


def test_a_run_lost_while_the_study_was_not_running_counts_against_max_attempts(tmp_path: Path):
    for lookahead in (0, 1):
        store = SqliteStore(tmp_path / f"katuna-{lookahead}.db")
        native = study_definition("lost", mode="hang", maxTrials=1, parallelism=1)
        native["trialTemplate"]["maxAttempts"] = 2
        record, _ = store_study(Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), lambda: 1000.0),
                                parse_study(native), native)
        try:
            _resume(store, tmp_path, record.uid, lookahead)
            assert (store.get_trial("lost", 0).state, store.get_trial("lost", 0).attempt) == ("RUNNING", 1)
            ends = [e for e in _resume(store, tmp_path, record.uid, lookahead, deliveries=2) if e.type == TRIAL_FINISHED]
            trial = store.get_trial("lost", 0)
            assert (trial.state, trial.attempt) == ("RUNNING", 2)
            assert trial.reason.startswith("attempt 1 preempted: its run was lost"), trial.reason
            assert len({e.id for e in ends}) == 1, "one end of attempt 1, whichever delivery sent it"
            _resume(store, tmp_path, record.uid, lookahead)
            trial = store.get_trial("lost", 0)
            assert (trial.state, trial.attempt) == ("FAIL", 2), "no third attempt: maxAttempts is 2"
            assert trial.reason.startswith("preempted in all 2 attempts: its run was lost"), trial.reason
            assert "attempt 1 preempted" in trial.reason
            assert store.get_study("lost").status == "failed"
        finally:
            store.close()


def _hanging_study(tmp_path: Path) -> tuple[SqliteStore, StudyRecord]:
    """A stored study of one trial that runs until it is ended, allowed one attempt."""
    store = SqliteStore(tmp_path / "katuna.db")
    native = study_definition("lost", mode="hang", maxTrials=1, parallelism=1)
    native["trialTemplate"]["maxAttempts"] = 1
    record, _ = store_study(Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), lambda: 1000.0),
                            parse_study(native), native)
    return store, record


def test_a_run_that_katuna_ended_as_it_stopped_runs_again_and_is_never_counted(tmp_path: Path):
    store, record = _hanging_study(tmp_path)
    try:
        for attempt in (1, 2, 3):
            ends = [e for e in _resume(store, tmp_path, record.uid, 0, deliveries=2, outright=False)
                    if e.type == TRIAL_FINISHED]
            trial = store.get_trial("lost", 0)
            assert (trial.state, trial.attempt) == ("RUNNING", attempt), trial.reason
            assert [e.data["outcome"] for e in ends] == ["interrupted"] * (attempt > 1)
        assert trial.reason.splitlines() == [f"attempt {n} interrupted: the katuna process running it stopped, and "
                                             "ended it" for n in (2, 1)]
        assert store.get_study("lost").status == "running"
        _resume(store, tmp_path, record.uid, 0)
        trial = store.get_trial("lost", 0)
        assert (trial.state, trial.attempt) == ("RUNNING", 4), "the interruption is recorded, however it then ends"
    finally:
        store.close()


def test_a_trial_interrupted_again_and_again_fails_past_max_attempts_and_the_interruptions_allowed(tmp_path: Path):
    from functions.core.disruptions import INTERRUPTIONS

    store, record = _hanging_study(tmp_path)
    try:
        for _ in range(INTERRUPTIONS + 2):
            _resume(store, tmp_path, record.uid, 0, outright=False)
        trial = store.get_trial("lost", 0)
        assert (trial.state, trial.attempt) == ("FAIL", 1 + INTERRUPTIONS)
        assert trial.reason.startswith(f"interrupted in attempt {1 + INTERRUPTIONS}: the katuna process running it "
                                       f"stopped, and ended it; at most {1 + INTERRUPTIONS} attempts run"), trial.reason
    finally:
        store.close()


def test_an_attempt_that_ended_on_its_own_before_its_end_was_handled_is_recorded_from_its_log_on_resume(
        tmp_path: Path):
    """The process that ran the trial stopped before it handled the attempt's end (its event
    went with it): the attempt had ended on its own, its exit recorded beside its log, so the
    resume records the trial from that log, attempt 1, without running it again; resumed again,
    nothing changes. A record that is not this attempt's proves nothing: that run is lost."""
    store = SqliteStore(tmp_path / "katuna.db")
    native = study_definition("ended", maxTrials=1, parallelism=1)
    first = LocalExecutor(tmp_path / "logs", lambda event: None)
    record, _ = store_study(Deps(store, first, lambda: 1000.0), parse_study(native), native)
    try:
        _deliver_all(Dispatcher(Deps(store, first, lambda: 1000.0)), [study_created("ended", record.uid)])
        eventually(lambda: first.running("ended") == 0, "the trial ending on its own", timeout=20)
        first.shutdown()
        assert (store.get_trial("ended", 0).state, store.get_trial("ended", 0).attempt) == ("RUNNING", 1)

        ends = [e for e in _resume(store, tmp_path, record.uid, 0, deliveries=2, name="ended") if e.type == TRIAL_FINISHED]
        trial = store.get_trial("ended", 0)
        assert (trial.state, trial.attempt) == ("COMPLETE", 1), trial.reason
        assert trial.values == [pytest.approx((trial.params["x"] - 2) ** 2, abs=1e-6)]
        assert len({e.id for e in ends}) == 1 and ends[0].data["outcome"] == "exited"
        assert ends[0].data["exitCode"] == 0
        _resume(store, tmp_path, record.uid, 0, name="ended")
        assert store.get_trial("ended", 0) == trial, "resumed again, nothing changes"
    finally:
        store.close()


@contextlib.contextmanager
def _started_attempt(tmp_path: Path) -> Iterator[tuple[LocalExecutor, TrialLaunch, Path, str]]:
    """A local executor, the launch of trial 0 of a stored study ``ended`` (whose uid is given),
    and the folder of that attempt's log made: where an end's record is written beside it."""
    store = SqliteStore(tmp_path / "katuna.db")
    native = study_definition("ended", maxTrials=1, parallelism=1)
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    try:
        record, _ = store_study(Deps(store, executor, lambda: 1000.0), parse_study(native), native)
        launch = trial_launch(record, TrialRecord("ended", 0, {"x": 1.0}, RUNNING))
        log = executor.log_path(launch)
        log.parent.mkdir(parents=True)
        yield executor, launch, log, record.uid
    finally:
        executor.shutdown()
        store.close()


def test_an_end_record_that_is_not_the_attempts_own_is_not_taken(tmp_path: Path):
    """Only a record of this very attempt, written as katuna writes it, proves its end: one of
    another attempt (or study made again under the name), a malformed one, or a link are not."""
    with _started_attempt(tmp_path) as (executor, launch, log, uid):
        ends = local_ends.ends(log)
        local_ends.record(log, tmp_path / "logs", launch, local_ends.End(0))
        assert executor.recorded_end(launch).data["exitCode"] == 0
        ends.write_text(ends.read_text().replace('"attempt": 1', '"attempt": 2'))
        assert executor.recorded_end(launch) is None
        text_code = {"uid": uid, "trial": 0, "attempt": 1, "exitCode": "0", "timedOut": False}
        for forged in (json.dumps(text_code), "not json", ""):
            ends.write_text(forged)
            assert executor.recorded_end(launch) is None, forged
        local_ends.record(log, tmp_path / "logs", launch, local_ends.End(0))
        with ends.open("a") as appended:
            appended.write("\n" + json.dumps(text_code))
        assert executor.recorded_end(launch) is None, "the attempt's last line is its record"
        ends.unlink()
        elsewhere = tmp_path / "elsewhere.jsonl"
        local_ends.record(log, tmp_path / "logs", launch, local_ends.End(0))
        ends.rename(elsewhere)
        ends.symlink_to(elsewhere)
        assert executor.recorded_end(launch) is None, "a link is not followed"
        with pytest.raises(RefusedFile, match="is a link"):
            local_ends.record(log, tmp_path / "logs", launch, local_ends.End(0))
        ends.unlink()
        os.link(elsewhere, ends)
        assert executor.recorded_end(launch) is None, "nor a file with another name"


def test_the_ends_of_a_studys_attempts_are_appended_to_one_file_and_read_from_its_end(tmp_path: Path):
    """Each end is one line of the study's ends file, the attempt's last line its record, found
    however many records follow; an earlier release's record of its own is still read, a line
    cut short spoils no other, and no new file is made per attempt."""
    with _started_attempt(tmp_path) as (executor, launch, log, uid):
        ends = local_ends.ends(log)
        local_ends.record(log, tmp_path / "logs", launch, local_ends.End(3))
        for number in range(1, 3000):
            local_ends.record(log, tmp_path / "logs", replace(launch, number=number), local_ends.End(0))
        assert executor.recorded_end(launch).data["exitCode"] == 3, "found behind 2,999 later records"
        assert executor.recorded_end(replace(launch, number=2999)).data["exitCode"] == 0
        assert executor.recorded_end(replace(launch, attempt=2)) is None
        local_ends.record(log, tmp_path / "logs", launch, local_ends.End(5))
        assert executor.recorded_end(launch).data["exitCode"] == 5, "an attempt launched again: its latest end"
        with ends.open("a") as appended:
            appended.write('\n{"uid": "' + uid + '", "trial": 0, "attempt": 1, "exitC')
        local_ends.record(log, tmp_path / "logs", replace(launch, number=1), local_ends.End(7))
        assert executor.recorded_end(replace(launch, number=1)).data["exitCode"] == 7, "a line cut short spoils no other"
        assert sorted(path.name for path in log.parent.iterdir() if path.name != "runner.owner") == [local_ends.ENDS]
        earlier = replace(launch, number=5000)
        local_ends.path(executor.log_path(earlier)).write_text(json.dumps(
            {"uid": uid, "trial": 5000, "attempt": 1, "exitCode": 9, "timedOut": False}))
        assert executor.recorded_end(earlier).data["exitCode"] == 9, "an earlier release's record"


def test_a_recorded_end_keeps_the_peak_memory_its_reason_says(tmp_path: Path):
    """An end handled from its record (the handling of its report given up) says what its
    report said: a failure's peak memory, in its reason and for the trial's record."""
    with _started_attempt(tmp_path) as (executor, launch, log, _):
        local_ends.record(log, tmp_path / "logs", launch, local_ends.End(3, memory=Memory(3 * 2**30, exact=True)))
        end = executor.recorded_end(launch).data
        assert (end["exitCode"], end["message"], end["peakMemory"]) == (3, "peak memory 3.0 GiB", 3 * 2**30)
        local_ends.record(log, tmp_path / "logs", launch, local_ends.End(-9, memory=Memory(60 * 2**20, exact=False)))
        end = executor.recorded_end(launch).data
        assert end["message"].endswith("killer); peak memory at most 60.0 MiB") and "peakMemory" not in end, \
            "a peak within katuna's own as the trial started only bounds the trial's"


def _lost_after_end(tmp_path: Path, order: str, outcome: str) -> tuple[str, str, str, int]:
    """Trial 1's state, reason, state in Optuna and the study's pruned count, after trial 0
    failed and ended the study while trial 1 ran, and trial 1's run was then lost (``outcome``),
    its end delivered before the study's end (``lost first``) or after it."""
    import optuna

    from functions.core.events import trial_finished

    store = SqliteStore(tmp_path / f"{order}.db")
    executor = LocalExecutor(tmp_path / order, lambda event: None)
    dispatcher = Dispatcher(Deps(store, executor, lambda: 1000.0, lookahead=0))
    definition = study_definition("ended", mode="hang", maxTrials=4, parallelism=2, maxFailedTrials=0)
    try:
        record, _ = store_study(Deps(store, executor, lambda: 1000.0), parse_study(definition), definition)
        _deliver_all(dispatcher, [study_created("ended", record.uid)])
        eventually(lambda: store.count_trials("ended").running == 2, "two trials running")
        ended = dispatcher.deliver(trial_finished("ended", record.uid, 0, 1, "exited", exit_code=1))
        assert [event.type for event in ended] == ["dev.katuna.study.completed"]
        lost = trial_finished("ended", record.uid, 1, 1, outcome, message="its node was reclaimed")
        _deliver_all(dispatcher, [lost, *ended] if order == "lost first" else [*ended, lost])
        trial = store.get_trial("ended", 1)
        told = optuna.load_study(study_name="ended", storage=store.optuna_storage()).trials[1].state.name
        return trial.state, trial.reason.split(" (")[0], told, store.count_trials("ended").pruned
    finally:
        executor.shutdown()
        store.close()


@pytest.mark.parametrize("outcome", ["preempted", "interrupted"])
def test_a_run_lost_after_its_study_ended_is_stopped_at_end_whichever_event_comes_first(tmp_path: Path,
                                                                                         outcome: str):
    """Trial 0 fails and ends the study (``maxFailedTrials: 0``) while trial 1 runs; trial 1's run
    is then lost. Its end handled before or after the study's end stops it, trial 1 is pruned as
    stopped at the study's end, in katuna and in Optuna alike: never a failure that claims it used
    every attempt."""
    from functions.core.records import PRUNED, STOPPED_AT_END

    results = [_lost_after_end(tmp_path, order, outcome) for order in ("lost first", "end first")]
    assert results == [(PRUNED, STOPPED_AT_END, "PRUNED", 1)] * 2



WORKER = """
import sys, time
from pathlib import Path
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import trial_suggested
from functions.dispatch import Dispatcher
from functions.handlers import Deps

db, logs, uid = sys.argv[1:4]
executor = LocalExecutor(Path(logs), lambda event: None)
Dispatcher(Deps(SqliteStore(db), executor, time.time)).deliver(trial_suggested("worker", uid, 0, 1))
while sys.argv[4] == "ends" and executor.running():
    time.sleep(0.05)
print("ready", flush=True)
time.sleep(600)
"""
"""A worker of ``katuna serve`` in a process of its own: it launches trial 0 of the study
``worker``, says so (once the trial ended, where it ``ends``), and lives on until killed; the
end it would report goes nowhere."""


@pytest.mark.parametrize("trial_0", ["runs", "ends"])
def test_a_trial_whose_worker_died_is_found_by_the_tick_while_its_studys_other_trials_run(tmp_path: Path,
                                                                                          trial_0: str):
    """``katuna serve``'s worker that ran trial 0 is killed outright (its guard ends the trial),
    while another worker runs trial 1 on. The tick of the worker left, while trial 1 keeps the
    study from stalling, finds trial 0's run lost, and it runs again as its next attempt in the
    slot it held; one that had ended on its own, its end recorded, is recorded from its log. A
    trial another live worker runs is left alone."""
    from functions.core.events import study_completed, trial_suggested
    from functions.handlers.reconcile import Budget, reconcile_study

    store = SqliteStore(tmp_path / "katuna.db")
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    deps = Deps(store, executor, lambda: 1000.0)
    dispatcher = Dispatcher(deps)
    ends = 'if [ "$KATUNA_TRIAL" = 0 ]; then echo loss=1; exit; fi; ' if trial_0 == "ends" else ""
    native = study_definition("worker", maxTrials=4, parallelism=2)
    native["trialTemplate"]["command"] = ["/bin/sh", "-c", ends + "exec sleep 600", "trial", "${trialParameters.x}"]
    record, _ = store_study(deps, parse_study(native), native)
    assert len(dispatcher.deliver(study_created("worker", record.uid))) == 2
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "katuna.db"), str(tmp_path / "logs"),
                               record.uid, trial_0], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        dispatcher.deliver(trial_suggested("worker", record.uid, 1, 1))
        assert reconcile_study(store.get_study("worker"), deps, Budget()) == [], "trial 0's worker lives"
    finally:
        worker.kill()
        worker.wait()
    try:
        found = reconcile_study(store.get_study("worker"), deps, Budget())
        assert [(e.type, e.data["trial"], e.data["attempt"]) for e in found] == [(TRIAL_FINISHED, 0, 1)]
        _deliver_all(dispatcher, found)
        trial = store.get_trial("worker", 0)
        assert (store.get_trial("worker", 1).state, store.get_trial("worker", 1).attempt) == (RUNNING, 1)
        if trial_0 == "ends":
            assert (trial.state, trial.attempt, trial.values) == ("COMPLETE", 1, [1.0]), trial.reason
        else:
            assert (trial.state, trial.attempt) == (RUNNING, 2), trial.reason
            assert trial.reason.startswith("attempt 1 preempted: its run was lost"), trial.reason
    finally:
        dispatcher.deliver(study_completed("worker", record.uid, "stopped", "the test ended"))
        executor.shutdown()
        store.close()
