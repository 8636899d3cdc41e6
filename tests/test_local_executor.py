"""The local executor: an attempt exists while the process that owns it lives, and its end
is reported even when publishing fails for a while."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import study_definition, uid_of
from proc_stat import state
from waiting import eventually

from functions.adapters import local_exits, process_tree
from functions.adapters.broker import LocalBroker
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.owners import RUNNER
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import LogsUnavailable, TemporaryError
from functions.core.events import TRIAL_FINISHED, TRIAL_PROGRESS, Event, study_created
from functions.core.launch import Progress, TrialLaunch
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.submit import store_study
from functions.watch import Watcher

ROOT = Path(__file__).resolve().parent.parent


def attempt(tmp_path: Path, argv: list[str]) -> TrialLaunch:
    return TrialLaunch(study="demo", uid=uid_of(tmp_path), number=0, attempt=1, job_name="demo-0-1", argv=argv, env={},
                       working_dir=str(tmp_path), timeout=None)


OWNER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from functions.adapters.local_executor import LocalExecutor
    from functions.core.launch import TrialLaunch
    executor = LocalExecutor(Path(sys.argv[1]), publish=lambda event: None)
    executor.launch(TrialLaunch(study="demo", uid=os.environ.get("OWNER_UID", "u1"), number=0, attempt=1, job_name="demo-0-1",
                                argv=sys.argv[2:] or [sys.executable, "-c", "import time; time.sleep(5)"], env={},
                                working_dir=sys.argv[1], timeout=None))
    print("launched", flush=True)
    time.sleep(60)
""")


def start_owner(logs: Path, *argv: str, uid: str | None = None) -> subprocess.Popen[str]:
    """Another process that runs attempt 1 of trial 0 of ``demo`` of ``uid`` (by default the
    test's, whose folder holds ``logs``: :func:`uid_of`) (``argv``, or 5 s of sleep), logging to
    ``logs``."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(logs), *argv], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT), "OWNER_UID": uid or uid_of(logs.parent)})
    assert owner.stdout is not None and owner.stdout.readline().strip() == "launched"
    return owner


def test_an_attempt_owned_by_a_live_process_exists_and_stops_existing_when_that_process_dies(tmp_path: Path):
    logs = tmp_path / "logs"
    owner = start_owner(logs)
    try:
        here = LocalExecutor(logs, publish=lambda event: None)
        launch = attempt(tmp_path, [sys.executable, "-c", "pass"])
        claim = logs / "demo" / "0.1.owner"
        runner = logs / "demo" / RUNNER
        assert here.exists(launch), "another live process runs the attempt"
        assert claim.stat().st_nlink == 3, "the claims of the attempt and its study are links to the owner's identity file"
        assert claim.read_text().startswith(f"{owner.pid}:")
        assert runner.read_text().startswith(f"{owner.pid}:"), "the process launching a trial runs its study"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert not here.exists(launch), "its owner died: the attempt was lost"

    here.launch(launch)
    assert claim.read_text().startswith(f"{os.getpid()}:"), "a new run of the attempt claims it anew"
    assert runner.read_text().startswith(f"{os.getpid()}:"), "and its study"
    deadline = time.monotonic() + 10
    while here.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    here.shutdown()
    assert claim.read_text().startswith(f"{os.getpid()}:"), "claims outlive the executor's identity file"
    identities = [p.read_text() for p in (logs / ".owners").iterdir()]
    assert [i.split(":")[0] for i in identities] == [str(owner.pid)], \
        "this executor's identity file goes with it (a killed owner's stays behind)"


def test_an_attempts_processes_end_with_the_process_that_runs_it_killed_outright(tmp_path: Path):
    """The process running an attempt is killed with SIGKILL, running no shutdown: the attempt's
    main process (leading a session of its own) and its background child end with it."""
    uid = f"guarded-{os.getpid()}"

    def alive() -> list[int]:
        return [p.pid for p in process_tree.processes() if p.marker == f"{uid}/0/1" and not p.zombie]

    owner = start_owner(tmp_path / "logs", "/bin/sh", "-c", "sleep 600 & exec sleep 600", uid=uid)
    try:
        eventually(lambda: len(alive()) == 2, "the attempt and its background child run")
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    try:
        eventually(lambda: not alive(), "every process of the attempt ended")
    finally:
        for pid in alive():
            os.kill(pid, signal.SIGKILL)


def test_asking_whether_a_process_ended_leaves_its_status_and_peak_memory_to_its_wait():
    """The thread waiting for an attempt collects its status with its peak memory; a stop or a
    progress reader asking meanwhile whether it ended collects nothing, and Popen, told the
    status, sees the process ended."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        assert local_exits.wait_within(process, 0.01, floor=0) is None, "it sleeps on past the timeout"
        assert not local_exits.ended(process)
    finally:
        process.kill()
    eventually(lambda: local_exits.ended(process), "the killed process is seen ended")
    assert (process.returncode, state(process.pid)) == (None, "Z"), "seen ended, its status not collected"
    end = local_exits.wait(process, floor=0)
    assert end.code == -9 and end.memory is not None and end.memory.exact and end.memory.peak > 0
    assert (process.returncode, process.poll(), process.wait(timeout=0)) == (-9, -9, -9)


def test_where_peaks_are_not_measured_asking_whether_a_process_ended_never_loses_its_status(
        monkeypatch: pytest.MonkeyPatch):
    """On a system whose peaks katuna does not read (``MEASURED`` false off Linux), asking
    whether a process ended collects its status through Popen, and the wait takes what Popen
    collected: a failed trial never reads as exit 0 however the two threads meet."""
    monkeypatch.setattr(local_exits, "MEASURED", False)
    for _ in range(40):
        process = subprocess.Popen(["/bin/sh", "-c", "exit 3"])
        asking = threading.Thread(target=lambda started=process: [local_exits.ended(started) for _ in range(200)])
        asking.start()
        end = local_exits.wait_within(process, 30, floor=None)
        asking.join()
        assert end is not None and (end.code, end.memory) == (3, None)


def test_an_end_that_publishing_refuses_a_few_times_still_arrives(tmp_path: Path):
    arrived, refusals = [], [TemporaryError("database or disk is full")] * 2

    def publish(event) -> None:
        if refusals:
            raise refusals.pop()
        arrived.append(event)

    executor = LocalExecutor(tmp_path / "logs", publish, publish_delays=(0.01, 0.01, 0.01))
    executor.launch(attempt(tmp_path, [sys.executable, "-c", "pass"]))
    eventually(lambda: arrived, "the end is published")
    assert (arrived[0].data["outcome"], arrived[0].data["exitCode"]) == ("exited", 0)
    executor.shutdown()


@pytest.mark.slow
def test_an_end_never_published_is_found_by_the_watcher_and_the_study_completes(tmp_path: Path):
    """Publishing the first trial's end fails for good: the watcher's poll republishes it."""
    store = SqliteStore(tmp_path / "katuna.db")
    refused = []

    def publish(event) -> None:
        if event.type == TRIAL_FINISHED and (not refused or event.id == refused[0].id):
            refused.append(event)
            raise TemporaryError("database or disk is full")
        broker.publish(event)

    executor = LocalExecutor(tmp_path / "logs", publish, publish_delays=(0.01,))
    deps = Deps(store, executor, time.time)
    broker = LocalBroker(Dispatcher(deps))
    definition = study_definition(name="full", maxTrials=2, parallelism=1)
    store_study(replace(deps, workdir=str(tmp_path)), parse_study(definition), definition)
    broker.publish(study_created("full", store.get_study("full").uid))
    watcher = Watcher(deps, broker.events, lambda: [store.get_study("full")], stop_local=executor.stop_study)
    deadline = time.monotonic() + 30
    broker.run(until=lambda: store.get_study("full").terminal or time.monotonic() > deadline, tick=watcher.tick)
    executor.shutdown()
    assert len(refused) == 2, "the first end was tried twice, then left to the watcher"
    assert store.get_study("full").status == "completed"
    assert [t.state for t in store.trials("full")] == ["COMPLETE", "COMPLETE"]
    broker.close()
    store.close()


def test_an_owner_that_died_but_is_not_yet_reaped_owns_nothing(tmp_path: Path):
    logs = tmp_path / "logs"
    owner = start_owner(logs)
    try:
        here = LocalExecutor(logs, publish=lambda event: None)
        launch = attempt(tmp_path, [sys.executable, "-c", "pass"])
        os.kill(owner.pid, signal.SIGKILL)
        eventually(lambda: state(owner.pid) == "Z",
                   "the owner is a zombie", timeout=10)
        assert not here.exists(launch), "a zombie owner is dead: the attempt was lost"
    finally:
        owner.kill()
        owner.wait()


def test_trial_logs_are_private_to_the_service_user(embedded, tmp_path: Path):
    definition = study_definition(name="private", maxTrials=2)
    embedded.submit(parse_study(definition), definition, tmp_path)
    embedded.run("private")
    logs = embedded.settings.logs
    assert sorted(logs.rglob("*.log"))
    for path in [logs, *logs.rglob("*")]:
        if path.is_dir() or path.suffix == ".log":
            assert path.stat().st_mode & 0o077 == 0, path


def test_a_log_folder_that_cannot_be_made_fails_the_launch_naming_the_folder_not_the_database(tmp_path: Path):
    (tmp_path / "a-file").write_text("")
    logs = tmp_path / "a-file" / "logs"
    executor = LocalExecutor(logs, publish=lambda event: None)
    with pytest.raises(LogsUnavailable, match=f"katuna needs to write in the trial-log folder {logs} "
                                              r"\(KATUNA_LOG_DIR\)"):
        executor.launch(attempt(tmp_path, [sys.executable, "-c", "print('loss=1')"]))
    assert executor.running() == 0
    executor.shutdown()


def test_a_start_failure_names_the_templates_program_as_its_cause_only_for_what_every_trial_would_meet(tmp_path: Path):
    """A program that is not there is the template's fault, which every trial meets: the end
    names it as its cause (3 such trials stop the study). An argument list too long, which a
    parameter's value may make, is no such cause."""
    ends: list = []
    executor = LocalExecutor(tmp_path / "logs", ends.append, publish_delays=())
    try:
        executor.launch(attempt(tmp_path, ["no-such-program-k7"]))
        executor.launch(replace(attempt(tmp_path, [sys.executable, "-c", "pass", "x" * 200_000]), number=1))
        eventually(lambda: len(ends) == 2, "both ends")
    finally:
        executor.shutdown()
    causes = {end.data["trial"]: end.data.get("cause") for end in ends}
    assert causes == {0: 'program "no-such-program-k7" cannot be run: No such file or directory', 1: None}, causes
    assert all(end.data["outcome"] == "error" for end in ends)


def test_an_attempt_that_fails_to_start_for_an_unforeseen_reason_is_failed_not_left_started(tmp_path: Path):
    """A variable named by a number (no check foresaw one) makes the process's start raise a
    TypeError: the attempt ends as an error naming it, and nothing stays running, where it was
    once left started with no process, its trial running for ever."""
    ends: list = []
    executor = LocalExecutor(tmp_path / "logs", ends.append, publish_delays=())
    try:
        executor.launch(replace(attempt(tmp_path, [sys.executable, "-c", "pass"]), env={5: "x"}))
        eventually(lambda: len(ends) == 1, "the attempt's end")
        assert executor.running() == 0
    finally:
        executor.shutdown()
    [end] = ends
    assert end.data["outcome"] == "error" and "cause" not in end.data, end.data
    assert end.data["message"].startswith(f"{sys.executable!r}: TypeError: "), end.data


def test_a_trial_printing_steps_by_the_thousand_reports_them_paced_and_its_latest_last(tmp_path: Path):
    """A trial with early stopping that prints 20,000 steps at once: the first hundred are
    reported as they come, then ten a second, each the latest; the last of the first 10,000
    (as many as the store keeps) is reported once the output ends. One study's flood no longer
    queues tens of thousands of events ahead of every other study's."""
    published = []
    executor = LocalExecutor(tmp_path / "logs", publish=published.append)
    script = "import time\nfor i in range(20000): print(f'score={i}', flush=True)\ntime.sleep(0.5)"
    launch = replace(attempt(tmp_path, [sys.executable, "-c", script]), progress=Progress("score"))
    started = time.monotonic()
    try:
        executor.launch(launch)
        eventually(lambda: any(e.type == TRIAL_FINISHED for e in published), "the attempt's end", timeout=60)
    finally:
        executor.shutdown()
    steps = [e.data["step"] for e in published if e.type == TRIAL_PROGRESS]
    assert steps[:100] == list(range(1, 101)) and steps[-1] == 10_000 and steps == sorted(steps)
    assert len(steps) <= 100 + 10 * (time.monotonic() - started) + 1, len(steps)


def test_a_step_held_back_by_the_pace_is_reported_while_the_trial_prints_nothing_more(tmp_path: Path):
    """150 steps at once, then nothing until the test says so: the 150th, held back by the pace,
    goes out as soon as the pace allows, not when the trial next prints or ends."""
    published: list[Event] = []
    executor = LocalExecutor(tmp_path / "logs", publish=published.append)
    flag = tmp_path / "go"
    script = (f"import os, time\nfor i in range(150): print(f'score={{i}}', flush=True)\n"
              f"while not os.path.exists({str(flag)!r}): time.sleep(0.05)")
    launch = replace(attempt(tmp_path, [sys.executable, "-c", script]), progress=Progress("score"))
    try:
        executor.launch(launch)
        eventually(lambda: any(e.type == TRIAL_PROGRESS and e.data["step"] == 150 for e in published),
                   "the held step reported while the trial waits", timeout=30)
        assert not any(e.type == TRIAL_FINISHED for e in published)
        steps = [e.data["step"] for e in published if e.type == TRIAL_PROGRESS]
        assert steps[:100] == list(range(1, 101)) and len(steps) < 150, "the pace passed some over"
        flag.touch()
        eventually(lambda: any(e.type == TRIAL_FINISHED for e in published), "the attempt's end", timeout=30)
    finally:
        executor.shutdown()


def test_an_end_says_how_large_the_output_its_metrics_are_read_from_is(tmp_path: Path):
    """The log's size where the metrics are read from the log; none where they come from a
    metrics file, whose size the log does not tell."""
    arrived: list[Event] = []
    executor = LocalExecutor(tmp_path / "logs", arrived.append)
    printed = [sys.executable, "-c", "print('loss=' + '1' * 99)"]
    executor.launch(attempt(tmp_path, printed))
    executor.launch(replace(attempt(tmp_path, printed), number=1, job_name="demo-1-1",
                            metrics_file=str(tmp_path / "metrics.txt")))
    eventually(lambda: len(arrived) == 2, "both ends are published")
    sizes = {event.data["trial"]: event.data.get("outputBytes") for event in arrived}
    assert sizes == {0: len("loss=" + "1" * 99) + 1, 1: None}
    assert sizes[0] == executor.log_file(attempt(tmp_path, printed)).stat().st_size
    executor.shutdown()


def _pipes() -> set[str]:
    """The pipes this process holds open, by descriptor and pipe."""
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("pipe:"):
            held.add(f"{fd} {target}")
    return held


def test_an_ended_attempt_whose_output_was_streamed_holds_no_pipe_open(tmp_path: Path):
    """An attempt whose progress is read from its output, once ended, holds no descriptor of the
    pipe it printed to: the executor keeps its latest thousand ended runs (a launch delivered
    twice starts nothing), and a ``katuna serve`` worker that held each one's pipe open ran out of
    descriptors (1,024 by default) after as many trials with early stopping."""
    ended: list[Event] = []
    executor = LocalExecutor(tmp_path / "logs", publish=lambda event: ended.append(event) if event.type == TRIAL_FINISHED else None)
    printed = [sys.executable, "-c", "print('score=1')"]

    def run(number: int) -> None:
        executor.launch(replace(attempt(tmp_path, printed), number=number, job_name=f"demo-{number}-1",
                                progress=Progress("score")))
        eventually(lambda: len(ended) == number + 1, f"the end of trial {number} is published")
    try:
        run(0)  # what the executor holds for as long as it runs (its guard) is open from here on
        before = _pipes()
        for number in (1, 2, 3):
            run(number)
        assert _pipes() - before == set(), "an ended attempt's output pipe is still open"
    finally:
        executor.shutdown()
