"""Nothing a trial starts outlives it: background children, children in a new session and
children that ignore SIGTERM all end with their attempt, whether it exits, times out, is
stopped, is ended by an event, belongs to a deleted study, or was left by a killed service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import study_definition, uid_of
from http_helpers import KATUNA, Service, run_katuna
from proc_stat import alive, parent_of
from started_katuna import StartedKatuna
from test_cli import here
from waiting import START_WAIT, eventually

from functions.adapters import cloudevents_http
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import trial_finished
from functions.core.launch import TrialLaunch
from functions.core.records import RUNNING, TrialRecord

pytestmark = pytest.mark.slow
KUBE_NAMESPACES = ("forged",)

ROOT = Path(__file__).resolve().parent.parent
FAMILY = ROOT / "tests" / "trials" / "family.py"
TOKEN = "containment-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def pids(folder: Path, pattern: str = "pids.*") -> list[int]:
    return [int(pid) for path in folder.glob(pattern) for pid in path.read_text().split()]


@pytest.fixture
def family(tmp_path: Path) -> Iterator[Path]:
    """A folder the trials write their pids to; whatever survives a failed test is killed."""
    folder = tmp_path / "family"
    folder.mkdir()
    yield folder
    for pid in pids(folder):
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, os.WNOHANG)
        except (ProcessLookupError, ChildProcessError, PermissionError):
            pass


def family_argv(folder: Path, *flags: str) -> list[str]:
    return [sys.executable, str(FAMILY), "--dir", str(folder), *flags]


def launch_of(folder: Path, argv: list[str], timeout: float | None = None) -> TrialLaunch:
    """The attempt of a trial run in ``folder``, with a study uid of that folder's alone: its
    processes are found by a marker made of the uid, which another test's must not match."""
    return TrialLaunch(study="kin", uid=uid_of(folder), number=0, attempt=1, job_name="kin-0-1", argv=argv,
                       env={"KATUNA_TRIAL": "0", "KATUNA_ATTEMPT": "1"}, working_dir=str(folder), timeout=timeout)


def survivors(folder: Path) -> list[int]:
    return [pid for pid in pids(folder) if alive(pid)]


def test_background_children_are_killed_before_a_trial_that_exits_is_reported(family: Path):
    reported = []
    executor = LocalExecutor(family / "logs", lambda event: reported.append((event, survivors(family))),
                             kill_grace=0.5)
    executor.launch(launch_of(family, family_argv(family, "--ignore-term")))
    eventually(lambda: reported, "the end is reported", timeout=20)
    event, alive_then = reported[0]
    assert (event.data["outcome"], event.data["exitCode"]) == ("exited", 0)
    assert len(pids(family)) == 3, "the trial, its background child and its child in a new session"
    assert alive_then == [], "its children (one in a new session, both ignoring SIGTERM) end before its end is told"
    executor.shutdown()


def test_a_timed_out_trial_ends_with_every_descendant(family: Path):
    reported = []
    executor = LocalExecutor(family / "logs", reported.append, kill_grace=0.5)
    executor.launch(launch_of(family, family_argv(family, "--ignore-term", "--hold", "300"), timeout=1))
    eventually(lambda: reported, "the timeout is reported", timeout=20)
    assert reported[0].data["outcome"] == "timeout"
    assert survivors(family) == []
    executor.shutdown()


def test_a_stop_kills_a_trial_whose_processes_ignore_sigterm_and_leave_the_session(family: Path):
    reported = []
    executor = LocalExecutor(family / "logs", reported.append, kill_grace=0.5)
    launch = launch_of(family, family_argv(family, "--ignore-term", "--hold", "300"))
    executor.launch(launch)
    eventually(lambda: (family / "pids.0.1").exists(), "the trial starts its children", timeout=20)
    executor.stop(launch)
    eventually(lambda: executor.running() == 0, "the attempt ends", timeout=20)
    assert survivors(family) == []
    assert reported == [], "an end katuna caused is not reported"
    executor.shutdown()


def guards_of(pid: int) -> list[int]:
    """The trials' guard processes (:mod:`functions.adapters.local_guard`) that process ``pid`` started."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = parent_of(entry.name)
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and b"functions.adapters.local_guard" in command:
            found.append(int(entry.name))
    return found


def running(db: Path, study: str) -> list[TrialRecord]:
    """The study's trials recorded as running. A run killed between starting an attempt and
    recording it leaves a trial that never ran, as far as the database says: its resume starts
    that attempt again (ending what the first start left), as the same attempt."""
    store = SqliteStore(db)
    try:
        return store.trials(study, [RUNNING])
    finally:
        store.close()


def first_attempt_recorded(db: Path, study: str, family: Path) -> bool:
    """Whether the first attempt of trial 0 started its children and the handling that launched
    it committed: a service killed before that commit starts the same attempt again, where the
    tests of a killed service look for the next one."""
    return (family / "pids.0.1").exists() and [(t.number, t.attempt) for t in running(db, study)] == [(0, 1)]


def killed_run(tmp_path: Path, family: Path) -> tuple[list[str], list[int]]:
    """A ``katuna run`` killed with SIGKILL while its trial runs, once its launch is recorded,
    its trials' guard killed first (else the guard ends the trial), the run held meanwhile
    (SIGSTOP: else it starts its guard again): its arguments, and the pids of the trial
    processes it left behind, which only katuna's own clean-up of stale attempts can end."""
    definition = {
        "name": "stale", "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "maxTrials": 1, "parallelism": 1,
        "trialTemplate": {"command": family_argv(family, "--hold-first", "300"), "env": {"X": "${trialParameters.x}"}},
    }
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(definition))
    command = ["run", str(study), "--db", str(tmp_path / "katuna.db")]
    first = StartedKatuna(*command, cwd=tmp_path)
    try:
        eventually(lambda: first_attempt_recorded(tmp_path / "katuna.db", "stale", family),
                   "the first attempt starts its children and is recorded", timeout=START_WAIT)
        guards = guards_of(first.pid)
        assert len(guards) == 1, "the run started one guard for its trials"
        os.kill(first.pid, signal.SIGSTOP)
        os.kill(guards[0], signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    stale = pids(family, "pids.0.1")
    assert all(alive(pid) for pid in stale), "the killed service's trial processes run on, for now"
    return command, stale


def test_a_run_whose_guard_was_killed_starts_another_that_ends_its_trial_when_the_run_is_killed_outright(
        tmp_path: Path, family: Path):
    """The trials' guard of a ``katuna run`` is killed with SIGKILL (the OOM killer, a user's
    ``kill``) while a trial runs: the run starts another, told of the running attempt, so the
    run killed outright afterwards still takes the trial and its children with it."""
    definition = study_definition(name="reguarded", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["command"] = family_argv(family, "--ignore-term", "--hold-first", "300")
    definition["trialTemplate"]["env"] = {"X": "${trialParameters.x}"}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(definition))
    run = StartedKatuna("run", "study.yaml", cwd=tmp_path)
    try:
        eventually(lambda: first_attempt_recorded(tmp_path / "katuna.db", "reguarded", family),
                   "the first attempt starts its children and is recorded", timeout=START_WAIT)
        [guard] = guards_of(run.pid)
        os.kill(guard, signal.SIGKILL)
        eventually(lambda: [pid for pid in guards_of(run.pid) if pid != guard], "the run starts another guard")
    finally:
        run.kill()
        run.wait()
    trial = pids(family, "pids.0.1")
    assert len(trial) == 3, "the trial, its background child and its child in a new session"
    eventually(lambda: not [pid for pid in trial if alive(pid)], "the new guard ends the trial's processes")


CLOSING_GUARD = """import contextlib, logging, os, signal, stat, threading, time
from functions.adapters import process_tree
from functions.adapters.local_book import Book
from functions.adapters.local_containment import Containment
logging.basicConfig(format="%(message)s")
containment = Containment(Book(lambda: False), 0.2, sole_parent=True)
containment.guard.starting("closing/0/1")
containment.guard.ended("closing/0/1")
[guard] = process_tree.children()

def state():
    with contextlib.suppress(OSError):
        return open(f"/proc/{guard}/stat").read().rsplit(")", 1)[1].split()[0]

os.kill(guard, signal.SIGSTOP)
while state() != "T":
    time.sleep(0.01)

def pipe_to_guard():
    found = False
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found |= int(fd) > 2 and stat.S_ISFIFO(os.fstat(int(fd)).st_mode)
    return found

closing = threading.Thread(target=containment.guard.close)
closing.start()
while pipe_to_guard():
    time.sleep(0.01)
containment.end_adopted()
print(state())
with contextlib.suppress(ProcessLookupError):
    os.kill(guard, signal.SIGCONT)
closing.join()
"""


def test_the_guard_being_closed_is_no_orphan_of_a_trial(tmp_path: Path):
    """A ``katuna run`` closing its trials' guard at its shutdown waits for the guard to exit; a
    trial's thread that looks for orphans meanwhile (its end recorded, after the shutdown's own
    look) took the guard for one: it killed it and said "ended 1 process(es) that trials left
    running outside their session", after the run's last line, where no trial left any. The
    guard is held stopped as its pipe closes, so that look comes while it still runs."""
    done = subprocess.run([sys.executable, "-c", CLOSING_GUARD], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "outside their session" not in done.stderr, done.stderr
    assert done.stdout.split() == ["T"], "the guard was left, stopped as it was"


def test_a_service_killed_with_sigkill_has_its_stale_attempt_killed_before_the_trial_runs_again(
        tmp_path: Path, family: Path):
    command, stale = killed_run(tmp_path, family)
    second = run_katuna(*command, cwd=tmp_path, timeout=60)
    assert second.returncode == 0, second.stdout + second.stderr
    assert (family / "alive-at-start.0.2").read_text() == "", "no process of the first attempt ran beside the second"
    assert [pid for pid in stale if alive(pid)] == []


def test_stopping_a_study_kills_the_trial_processes_a_killed_service_left(tmp_path: Path, family: Path):
    _, stale = killed_run(tmp_path, family)
    stop = run_katuna("stop", "stale", "--db", str(tmp_path / "katuna.db"), cwd=tmp_path, timeout=60)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert [pid for pid in stale if alive(pid)] == []


def study_of(name: str, family: Path, **overrides) -> str:
    return json.dumps({
        "name": name, "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "maxTrials": 1, "parallelism": 1,
        "trialTemplate": {"command": family_argv(family, "--ignore-term", "--hold", "300"),
                          "env": {"X": "${trialParameters.x}"}, "workingDir": str(family)},
        **overrides,
    })


def submit(service: Service, body: str) -> dict:
    status, _, answer = service.request("POST", "/studies", body, {"Content-Type": "application/json", **AUTH})
    assert status == 201, answer
    return json.loads(answer)


def test_deleting_a_study_kills_its_trials_run_by_another_service_process(tmp_path: Path, family: Path):
    runner = Service(tmp_path, workers=2, KATUNA_API_TOKEN=TOKEN)
    other = None
    try:
        submit(runner, study_of("doomed", family))
        eventually(lambda: (family / "pids.0.1").exists(), "the trial starts its children", timeout=20)
        other = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN)
        status, _, body = other.request("DELETE", "/studies/doomed", headers=AUTH)
        assert status == 204, body
        eventually(lambda: survivors(family) == [], "every process of the deleted study's trial ends", timeout=20)
    finally:
        for service in (other, runner):
            if service is not None:
                service.close()


def test_a_service_and_its_workers_killed_with_sigkill_have_their_stale_attempt_killed_on_restart(
        tmp_path: Path, family: Path):
    """The trials' guard processes are killed with it (as when every process of katuna's container
    is killed; the workers held first, else they start their guards again), so only the
    restarted service can end the attempt it finds stale."""
    service = Service(tmp_path, workers=2, KATUNA_API_TOKEN=TOKEN)
    try:
        submit(service, study_of("crashed", family, trialTemplate={
            "command": family_argv(family, "--hold-first", "300"), "env": {"X": "${trialParameters.x}"}}))
        eventually(lambda: first_attempt_recorded(tmp_path / "katuna.db", "crashed", family),
                   "the first attempt starts its children and is recorded", timeout=START_WAIT)
        workers = [int(pid) for pid in Path(f"/proc/{service.process.pid}/task/{service.process.pid}/children")
                   .read_text().split()]
        guards = [guard for worker in workers for guard in guards_of(worker)]
        assert guards, "the worker running the trial started a guard for it"
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        for pid in [*guards, service.process.pid, *workers]:
            os.kill(pid, signal.SIGKILL)
        service.process.wait()
    finally:
        service.close()
    stale = pids(family, "pids.0.1")
    assert all(alive(pid) for pid in stale), "the killed service's trial processes run on, for now"
    restarted = Service(tmp_path, workers=2, KATUNA_API_TOKEN=TOKEN)
    try:
        eventually(lambda: (family / "pids.0.2").exists(), "the trial runs again", timeout=60)
        assert (family / "alive-at-start.0.2").read_text() == "", "no process of the first attempt ran beside the second"
        assert [pid for pid in stale if alive(pid)] == []
    finally:
        restarted.close()


def test_an_accepted_trial_finished_event_kills_the_attempt_it_ends(tmp_path: Path, family: Path):
    service = Service(tmp_path, workers=2, KATUNA_API_TOKEN=TOKEN)
    try:
        submit(service, study_of("forged", family))
        eventually(lambda: (family / "pids.0.1").exists(), "the trial starts its children", timeout=20)
        store = SqliteStore(tmp_path / "katuna.db")
        uid = store.get_study("forged").uid
        store.close()
        headers, body = cloudevents_http.to_http(trial_finished("forged", uid, 0, 1, "exited", exit_code=0))
        status, _, answer = service.request("POST", "/", body, {**headers, **AUTH})
        assert status == 202, answer
        trial = service.json("GET", "/studies/forged/trials/0", headers=AUTH)[1]
        assert trial["state"] in ("COMPLETE", "FAIL"), trial
        eventually(lambda: survivors(family) == [], "no process runs on under a finished trial", timeout=20)
    finally:
        service.close()


def test_an_accepted_trial_finished_event_deletes_the_job_it_ends(kube, tmp_path: Path):
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN=TOKEN, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="forged")
    try:
        definition = study_definition(name="forged-job", mode="hang", maxTrials=1, parallelism=1)
        definition["trialTemplate"]["image"] = "python:3.12"
        submit(service, json.dumps(definition))
        eventually(lambda: ("forged", "forged-job-0") in kube.jobs, "the trial's Job is created", timeout=20)
        store = SqliteStore(tmp_path / "katuna.db")
        uid = store.get_study("forged-job").uid
        store.close()
        headers, body = cloudevents_http.to_http(trial_finished("forged-job", uid, 0, 1, "exited", exit_code=0))
        status, _, answer = service.request("POST", "/", body, {**headers, **AUTH})
        assert status == 202, answer
        assert ("forged", "forged-job-0") not in kube.jobs, "the Job of an attempt marked finished is deleted"
        assert [(name, policy) for _, name, policy in kube.deleted if name == "forged-job-0"] == \
            [("forged-job-0", "Background")]
    finally:
        service.close()


def test_trials_resumed_after_a_sigkill_run_their_next_attempt_to_its_end(tmp_path: Path, family: Path):
    """The stale attempts a killed ``katuna run`` left are ended, and only those: the attempts
    that the resumed run starts next are not, so trials allowed two attempts complete. The killed
    run's attempts are still running (for 20 s) when the resumed run starts; the resumed run's
    own attempts last 3 s."""
    first_run = family / "first-run"
    first_run.touch()
    definition = {
        "name": "resumed", "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "maxTrials": 4, "parallelism": 3,
        "trialTemplate": {"command": ["sh", "-c", f"touch {family}/started.$KATUNA_TRIAL.$KATUNA_ATTEMPT; "
                                      f"if [ -e {first_run} ]; then sleep 20; else sleep 3; fi; "
                                      "echo loss=${trialParameters.x}"], "maxAttempts": 2},
    }
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(definition))
    command = ["run", str(study), "--db", str(tmp_path / "katuna.db")]
    first = StartedKatuna(*command, cwd=tmp_path)
    try:
        eventually(lambda: all((family / f"started.{n}.1").exists() for n in range(3)), "every first attempt runs",
                   timeout=START_WAIT)
        eventually(lambda: len(running(tmp_path / "katuna.db", "resumed")) == 3, "every first attempt is recorded",
                   timeout=30)
    finally:
        first.kill()
        first.wait()
        first_run.unlink()
    second = run_katuna(*command, cwd=tmp_path, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    shown = here("trials", "resumed", "--json", "--db", str(tmp_path / "katuna.db"), cwd=tmp_path)
    trials = json.loads(shown.stdout)
    assert [(t["state"], t["attempt"]) for t in trials] == [("COMPLETE", 2)] * 3 + [("COMPLETE", 1)], trials
    assert not any("SIGKILL" in (t["reason"] or "") for t in trials), trials


def test_stopping_an_attempt_a_killed_service_left_ends_no_later_attempt_of_its_trial(tmp_path: Path, family: Path):
    """Another process of the service (a worker of ``katuna serve``) runs the trial's next
    attempt when this one stops the attempt that a killed service left: the strays of that
    attempt end, the next attempt runs on to its end."""
    _, stale = killed_run(tmp_path, family)
    store = SqliteStore(tmp_path / "katuna.db")
    record = store.get_study("stale")
    store.close()
    lost = replace(launch_of(family, []), study="stale", uid=record.uid, log_folder=record.log_folder)
    reported = []
    runner = LocalExecutor(tmp_path / "katuna-logs", reported.append, kill_grace=0.5)
    runner.launch(replace(lost, attempt=2, job_name="stale-0-2", env={"KATUNA_TRIAL": "0", "KATUNA_ATTEMPT": "2"},
                          argv=family_argv(family, "--hold", "3")))
    eventually(lambda: (family / "pids.0.2").exists(), "the next attempt runs", timeout=20)
    assert [pid for pid in stale if alive(pid)] == [], "the next attempt's start ended the strays"
    stopper = LocalExecutor(tmp_path / "katuna-logs", lambda event: None, kill_grace=0.5)
    stopper.stop(lost)
    stopper.shutdown()
    eventually(lambda: reported, "the next attempt ends", timeout=20)
    assert (reported[0].data["outcome"], reported[0].data["exitCode"]) == ("exited", 0), reported[0].data
    runner.shutdown()


ESCAPE = """import os, sys
child = os.fork()
if child == 0:
    os.setsid()
    if os.fork() == 0:
        os.execve("/bin/sleep", ["sleep", sys.argv[1]], {})
    os._exit(0)
os.waitpid(child, 0)
print("loss=0.5")
"""


def _sleeping(mark: str) -> list[int]:
    """The processes whose command line is ``sleep <mark>``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", mark.encode()]:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_a_trial_process_that_leaves_its_session_and_clears_its_environment_outlives_no_run(tmp_path: Path):
    """A trial double-forks a process into a new session and runs it with an empty environment:
    no session, group or marker ties it to its attempt, but ``katuna run`` adopted it as a
    subreaper when its parent ended, and no trial process of the run's outlives it. A child the
    run inherited from the shell that ``exec``'d it is no trial's, and is left."""
    mark, shells = f"600.{os.getpid()}", f"601.{os.getpid()}"
    definition = study_definition(name="escape", maxTrials=2, parallelism=1)
    definition["trialTemplate"]["command"] = [sys.executable, "-c", ESCAPE, mark, "${trialParameters.x}"]
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(definition))
    try:
        done = subprocess.run(["sh", "-c", f'sleep {shells} >/dev/null 2>&1 & exec "$0" run study.yaml', KATUNA], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        left = _sleeping(mark)
        assert left == [], "no process a trial started outlives the run"
        assert len(_sleeping(shells)) == 1, "the shell's own job is left"
    finally:
        for pid in _sleeping(mark) + _sleeping(shells):
            os.kill(pid, signal.SIGKILL)


HIDE = """import os, sys, time
if os.fork() == 0:
    os.setsid()
    os.execve("/bin/sleep", ["sleep", sys.argv[1]], {})
child = os.fork()
if child == 0:
    os.setsid()
    if os.fork() == 0:
        os.execve("/bin/sleep", ["sleep", sys.argv[2]], {})
    os._exit(0)
os.waitpid(child, 0)
time.sleep(600)
"""


def test_trial_processes_that_left_their_session_and_cleared_their_environment_end_with_a_run_killed_outright(
        tmp_path: Path):
    """A trial starts two processes in new sessions with empty environments: one its own child,
    one double-forked, which the run adopts as a subreaper. Nothing but the run's process tree
    ties them to the trial, and the run is killed with SIGKILL (no shutdown) while the trial
    runs: its guard, which kept track of that tree, ends both. The child the run inherited from
    the shell that ``exec``'d it is no trial's, and is left."""
    child, orphan, shells = (f"{n}.{os.getpid()}" for n in (602, 603, 604))
    definition = study_definition(name="hidden", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["command"] = [sys.executable, "-c", HIDE, child, orphan, "${trialParameters.x}"]
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(definition))
    run = subprocess.Popen(["sh", "-c", f'sleep {shells} >/dev/null 2>&1 & exec "$0" run study.yaml', KATUNA],
                           cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: _sleeping(child) and _sleeping(orphan), "the trial starts both processes", timeout=START_WAIT)
        eventually(lambda: guards_of(run.pid), "the run's guard runs")
        time.sleep(2)  # the guard looks at the run's processes several times a second while a trial runs
    finally:
        run.kill()
        run.wait()
    try:
        eventually(lambda: not _sleeping(child) + _sleeping(orphan), "both processes end with the run")
        assert len(_sleeping(shells)) == 1, "the shell's own job is left"
    finally:
        for pid in _sleeping(child) + _sleeping(orphan) + _sleeping(shells):
            os.kill(pid, signal.SIGKILL)
