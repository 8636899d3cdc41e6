"""A trial's output is parsed outside the store's write transaction: while ``katuna run`` reads
and parses a large output at a trial's end, another study's write goes through; and the parse is
taken in the transaction only while the state it was parsed against holds.

The parse is held for as long as the test needs, without timing anything: the ``katuna run``
process is stopped (SIGSTOP) while its read of the trial's log is under way, which the test
sees in ``/proc`` (the log open for reading, its offset short of the log's end).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from kube_stub import KubeStub
from started_katuna import StartedKatuna
from waiting import eventually

from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import TRIAL_FINISHED, Event, study_created, trial_finished
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.embedded import Embedded
from functions.handlers import Deps, collect
from functions.handlers.output import parse_output, record_output
from functions.handlers.parsed import ParsedOutput
from functions.runtime import Runtime
from functions.settings import Settings

LOUD = Path(__file__).parent / "trials" / "loud.py"
SHORT_MB, REPORTS = 2, 5_000
"""Output of the held trial: 2 MiB of noise lines, and its reports of the loss."""
NAMESPACE = "ends"
KUBE_NAMESPACES = (NAMESPACE,)
POLL = 0.002
"""Seconds between two looks at the run's read (a pause, so the looks leave the run the CPU)."""


def _reading(pid: int, log: Path) -> tuple[int, int] | None:
    """The offset of ``pid``'s read of ``log``, and the log's size, while it holds the log
    open for reading only; None when it does not."""
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        try:
            if Path(os.readlink(fd)) != log:
                continue
            info = dict(line.split(":", 1) for line in (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text().splitlines()
                        if ":" in line)
        except OSError:
            continue
        if int(info["flags"].strip(), 8) & os.O_ACCMODE == os.O_RDONLY:
            return int(info["pos"]), log.stat().st_size
    return None


def _held_mid_read(process: StartedKatuna, logs: Path) -> tuple[int, int]:
    """Stop ``process`` once it reads its trial's log, partway; the offset it reached and the
    log's size."""
    while process.poll() is None:
        found = list(logs.glob("held/*/0.1.log"))
        reading = _reading(process.pid, found[0]) if found else None
        if reading is not None and reading[0] > 0:
            process.send_signal(signal.SIGSTOP)
            held = _reading(process.pid, found[0])
            assert held is not None and held[0] < held[1], "the run was stopped partway through its read of the log"
            return held
        time.sleep(POLL)
    pytest.fail(f"katuna run ended before its read of the trial's log was seen: {process.returncode}")


def test_another_study_is_written_while_a_trials_large_output_is_parsed(tmp_path: Path):
    db = tmp_path / "katuna.db"
    held = study_definition("held", maxTrials=1, parallelism=1)
    held["objective"] = {"metric": "loss", "direction": "minimize"}
    held["parameters"] = [{"name": "best", "type": "categorical", "values": [0.125]}]
    held["trialTemplate"] = {"command": [sys.executable, str(LOUD), "--best", "${trialParameters.best}",
                                         "--short-mb", str(SHORT_MB), "--reports", str(REPORTS)]}
    (tmp_path / "held.yaml").write_text(yaml.safe_dump(held))
    process = StartedKatuna("run", "held.yaml", "--db", str(db), cwd=tmp_path)
    try:
        _held_mid_read(process, tmp_path / "katuna-logs")
        other = Embedded(Settings(db=db, busy_timeout=2.0))
        try:
            definition = study_definition("other")
            other.submit(parse_study(definition), definition, tmp_path)
        finally:
            other.close()
        assert process.poll() is None, "the held run is still in its read"
        process.send_signal(signal.SIGCONT)
        _, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait()
    assert process.returncode == 0, errors
    store = SqliteStore(db)
    try:
        trial = store.get_trial("held", 0)
        assert trial is not None and trial.state == "COMPLETE" and trial.values == [0.125]
        assert len(store.observations("held", 0)) > 0
        assert store.get_study("other").name == "other"
    finally:
        store.close()


def _ended_trial(runner: Embedded, tmp_path: Path) -> Event:
    """A one-trial study run until its trial ended: the ``trial.finished`` event of its end, not
    handled yet."""
    definition = study_definition("race", maxTrials=1, parallelism=1)
    record = runner.submit(parse_study(definition), definition, tmp_path)
    ended: list[Event] = []
    runner.broker.publish_and_handle = ended.append  # the local executor reports the trial's end here
    pending = runner.dispatcher.deliver(study_created("race", record.uid))
    while pending:
        pending = runner.dispatcher.deliver(pending[0]) + pending[1:]
    while not ended:
        time.sleep(POLL)
    [event] = ended
    assert event.type == TRIAL_FINISHED
    return event


def test_an_end_another_worker_handles_while_its_output_is_parsed_is_handled_once(tmp_path: Path):
    """Another worker handles the same ``trial.finished`` between this one's parse and its
    transaction: this one's handling is then a duplicate, answered with what the other emitted,
    and the trial's observations are stored once."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    other = SqliteStore(tmp_path / "katuna.db")
    try:
        event = _ended_trial(runner, tmp_path)
        raced: list[list[Event]] = []

        def parse_then_race(event: Event, deps: Deps) -> ParsedOutput | None:
            parsed = collect.prepare(event, deps)
            raced.append(Dispatcher(Deps(other, runner.executor, time.time)).deliver(event))
            return parsed

        emitted = Dispatcher(runner.deps, preparers={"collect": parse_then_race}).deliver(event)
        assert [e.id for e in emitted] == [e.id for e in raced[0]]
        trial = runner.store.get_trial("race", 0)
        assert trial is not None and trial.state == "COMPLETE"
        once = len(runner.store.observations("race", 0))
        assert once > 0
        assert runner.dispatcher.deliver(event) == emitted and len(runner.store.observations("race", 0)) == once
    finally:
        other.close()
        runner.close()


def test_an_output_parsed_against_another_state_is_parsed_again(tmp_path: Path):
    """A parse whose basis is not the stored state (here: another attempt's) is not taken."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        _ended_trial(runner, tmp_path)
        record, trial = runner.store.get_study("race"), runner.store.get_trial("race", 0)
        assert trial is not None
        fresh = record_output(record, trial, runner.deps)
        stale = parse_output(record, replace(trial, attempt=trial.attempt + 1), runner.deps)
        assert stale.summary.seen == 0, "no output of an attempt that never ran"
        with runner.store.transaction():
            taken = record_output(record, trial, replace(runner.deps, parsed=stale))
        assert taken == fresh and fresh.metrics
    finally:
        runner.close()


def _write_locked(db: Path) -> bool:
    """Whether another connection holds ``db``'s write lock (a transaction under way)."""
    probe = sqlite3.connect(db, timeout=0)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.rollback()
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        probe.close()


def test_a_cluster_trials_log_and_where_it_begins_are_read_while_other_writers_go_on(kube: KubeStub, tmp_path: Path):
    """At a cluster trial's end its log is read for its output and for where it begins, which
    says whether the kubelet rotated lines away (:mod:`functions.core.log_rotation`): neither
    call to the Kubernetes API is made while the handling holds the database's write lock. The
    events are delivered here alone: no broker thread handles the same end beside them, whose
    transaction a read here would see held."""
    db = tmp_path / "katuna.db"
    runtime = Runtime(Settings(db=db, executor="kubernetes", k8s_api=kube.url, k8s_namespace=NAMESPACE))
    reads: list[tuple[dict[str, str], bool]] = []
    try:
        definition = study_definition("cluster-end", maxTrials=1, parallelism=1)
        definition["trialTemplate"]["image"] = "python:3.12"
        record, _ = runtime.submit(parse_study(definition), definition)
        pending = runtime.dispatcher().deliver(study_created("cluster-end", record.uid))
        while pending:
            pending = [emitted for event in pending for emitted in runtime.dispatcher().deliver(event)]
        deadline = time.monotonic() + 60
        while not any(c["type"] == "Complete" for c in kube.jobs[(NAMESPACE, "cluster-end-0")]["status"].get(
                "conditions", [])):
            assert time.monotonic() < deadline, "the trial's Job did not complete within a minute"
            time.sleep(0.05)
        kube.on_log_read = lambda pod, query: reads.append((query, _write_locked(db)))
        runtime.dispatcher().deliver(trial_finished("cluster-end", record.uid, 0, 1, "exited", 0))
        trial = runtime.store().get_trial("cluster-end", 0)
        assert trial is not None and trial.state == "COMPLETE", trial
    finally:
        kube.on_log_read = None
        runtime.close()
    assert any(query.get("limitBytes") for query, _ in reads), "where the log begins was read"
    assert any(not query.get("limitBytes") for query, _ in reads), "the whole log was read"
    assert [query for query, locked in reads if locked] == [], "no read waited in the write transaction"


@pytest.mark.parametrize(("output_bytes", "parsed_before"), [(100, False), (collect.SMALL_OUTPUT, False),
                                                             (collect.SMALL_OUTPUT + 1, True), (None, True)])
def test_a_small_output_is_read_in_the_handlings_transaction_and_a_larger_one_before_it(
        tmp_path: Path, output_bytes: int | None, parsed_before: bool):
    """An end whose executor says its output is small has nothing parsed before its handling's
    transaction (the handling reads it there, at less cost than the reads of the study and the
    trial a parse before it makes again); a larger output, or one whose size is not told (a
    cluster's), is parsed before. The trial is recorded the same either way."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    definition = study_definition(maxTrials=1, parallelism=1)
    record = runner.submit(parse_study(definition), definition, tmp_path)
    runner.broker.publish_and_handle = lambda event: None  # the end is handled below, once
    waiting = [study_created("demo", record.uid)]
    while waiting:
        waiting += runner.dispatcher.deliver(waiting.pop(0))
    eventually(lambda: not runner.executor.running("demo"), "the trial ends")
    end = trial_finished("demo", record.uid, 0, 1, outcome="exited", exit_code=0, output_bytes=output_bytes)
    assert isinstance(collect.prepare(end, runner.deps), ParsedOutput) is parsed_before
    runner.dispatcher.deliver(end)
    trial = runner.store.get_trial("demo", 0)
    assert trial.state == "COMPLETE" and trial.metrics["loss"] == trial.values[0]
    runner.close()
