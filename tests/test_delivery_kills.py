"""At-least-once delivery against real crashes, with a trial prepared ahead (``KATUNA_LOOKAHEAD``):
``katuna run`` killed outright while the handling of its trials' ends waits on the database, or
at random moments again and again, and every ``katuna serve`` worker killed mid-study. Real
trial processes, each recording the attempts of its study running as it started, so that a
parallelism exceeded even for a moment is seen, and an attempt launched twice too. Then the
handlers' look-ahead path on the Kubernetes stand-in under duplicated and shuffled Job events,
and a stop that overtakes its study's start or its trials' launches.

Every study must end with exactly its ``maxTrials``, each counted once, none launched twice for
one slot, no more than its ``parallelism`` running at once, and no trial process left.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from http_helpers import Service, run_katuna
from kube_stub import KubeStub
from started_katuna import StartedKatuna
from test_delivery import ChaosDelivery, JobSource
from waiting import START_WAIT, eventually
from write_lock import WriteLock

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.core.cluster import Cluster
from functions.core.events import study_completed, study_created
from functions.core.naming import job_name
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.embedded import Embedded
from functions.handlers import Deps
from functions.settings import Settings

pytestmark = pytest.mark.slow

TRIALS, PARALLELISM = 5, 2
KILLS = 4
"""The times a run is killed outright before the one left to end the study."""

GATED = '''\
"""A trial that records how many of its study's trials run as it starts, then waits for the
file ``go`` in ``WORK`` and reports a loss."""
import os, sys, time
from pathlib import Path

work = Path(os.environ["WORK"])
me = f"{os.environ['KATUNA_TRIAL']}.{os.environ['KATUNA_ATTEMPT']}"
running = work / "running"
running.mkdir(exist_ok=True)
(running / str(os.getpid())).write_text(me)


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def running_attempt(path):
    """The attempt a live trial process recorded; None once it ended (its file may go meanwhile)."""
    try:
        return path.read_text() if alive(int(path.name)) else None
    except FileNotFoundError:
        return None


live = [attempt for p in running.iterdir() if (attempt := running_attempt(p)) is not None]
(work / "seen").mkdir(exist_ok=True)
(work / "seen" / me).write_text(" ".join(live))
with open(work / "starts", "a") as starts:
    starts.write(me + "\\n")
while not (work / "go").exists():
    time.sleep(0.05)
print(f"loss={(float(sys.argv[1]) - 2) ** 2}", flush=True)
(running / str(os.getpid())).unlink()
'''


def _study(tmp_path: Path, name: str = "demo") -> Path:
    script = tmp_path / "gated.py"
    script.write_text(GATED)
    definition = {
        "name": name, "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": -5.0, "max": 5.0}],
        "algorithm": {"name": "random", "seed": 1}, "parallelism": PARALLELISM, "maxTrials": TRIALS,
        "trialTemplate": {"command": [sys.executable, str(script), "${trialParameters.x}"],
                          "env": {"WORK": str(tmp_path)}},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(definition))
    return path


def _trials(db: Path) -> list[dict]:
    conn = sqlite3.connect(db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM trials ORDER BY number")]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _seen(tmp_path: Path) -> dict[str, list[str]]:
    """Each started attempt (``trial.attempt``) and the attempts it saw running as it started."""
    folder = tmp_path / "seen"
    return {path.name: path.read_text().split() for path in folder.iterdir()} if folder.exists() else {}


def _live_trials(tmp_path: Path) -> list[int]:
    """The pids of the trial processes still alive."""
    folder = tmp_path / "running"
    pids = [int(path.name) for path in folder.iterdir()] if folder.exists() else []
    return [pid for pid in pids if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ends(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for path in (tmp_path / "katuna-logs").glob("demo/*/ends.jsonl")
            for line in path.read_text().split("\n") if line]


def _assert_exactly_once(tmp_path: Path, db: Path, relaunched: int = 0) -> list[dict]:
    """The study's trials each stored once, complete, their logs those of their attempts, never
    more than its parallelism running at once; and at most ``relaunched`` starts of an attempt
    begun again: a trial is started inside the handling that makes it running, so a process
    killed before that handling commits leaves it waiting, and the next run starts the same
    attempt anew (its earlier process ended by its guard)."""
    trials = _trials(db)
    assert [(t["number"], t["state"]) for t in trials] == [(n, "COMPLETE") for n in range(TRIALS)], trials
    seen = _seen(tmp_path)
    assert max(len(running) for running in seen.values()) <= PARALLELISM, seen
    logs = sorted(p.name for p in (tmp_path / "katuna-logs").glob("demo/*/*.log"))
    assert logs == sorted(f"{t['number']}.{a}.log" for t in trials for a in range(1, t["attempt"] + 1)), logs
    starts = (tmp_path / "starts").read_text().split()
    assert len(starts) - len(set(starts)) <= relaunched, f"an attempt was launched twice: {sorted(starts)}"
    left = _live_trials(tmp_path)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "no trial process outlives its run"
    return trials


def test_a_run_killed_while_its_trials_ends_wait_on_the_database_records_them_from_their_logs(tmp_path: Path):
    """Two trials end on their own while another connection holds the database's write lock:
    their ends are appended to ``ends.jsonl``, and the handling that would store them (and start
    the trial prepared ahead in their slot) waits. ``katuna run`` is then killed outright. Run
    again, the two are recorded from their logs as their first attempts, the prepared trial runs
    once, and the study ends with exactly its trials, never more than its parallelism at once."""
    study, db = _study(tmp_path), tmp_path / "katuna.db"
    process = StartedKatuna("run", str(study), cwd=tmp_path)
    lock = WriteLock(db)
    try:
        eventually(lambda: len(_seen(tmp_path)) == PARALLELISM
                   and [t["state"] for t in _trials(db)] == ["RUNNING", "RUNNING", "WAITING"],
                   "two trials run, a third is prepared", timeout=START_WAIT)
        lock.hold()
        (tmp_path / "go").touch()
        eventually(lambda: len(_ends(tmp_path)) == PARALLELISM, "both ends recorded beside their logs")
        assert all(end["exitCode"] == 0 and not end["interrupted"] for end in _ends(tmp_path))
    finally:
        process.kill()
        process.communicate()
        lock.release()
        lock.close()
    assert [(t["state"], t["attempt"]) for t in _trials(db)][:2] == [("RUNNING", 1)] * 2, "no end was stored"
    rerun = run_katuna("run", str(study), cwd=tmp_path, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    trials = _assert_exactly_once(tmp_path, db)
    assert [t["attempt"] for t in trials] == [1] * TRIALS, "every trial ran once: the two ended were not run again"


@pytest.mark.parametrize("seed", range(3))
def test_a_run_killed_outright_again_and_again_ends_with_exactly_its_trials_once_run_to_its_end(
        tmp_path: Path, seed: int):
    """``katuna run`` killed with SIGKILL at random moments of a study whose trials end quickly
    (between a trial's end and its handling's commit, inside the handling that starts the trial
    prepared ahead, as it asks the sampler), then run again each time: no trial is counted
    twice, none exceeds the study's parallelism, and the last
    run ends the study with exactly its trials. A kill before the handling that starts a trial
    commits may have the next run start that attempt again: at most the trials running at each
    kill."""
    rng = random.Random(seed)
    study, db = _study(tmp_path), tmp_path / "katuna.db"
    (tmp_path / "go").touch()
    for _ in range(KILLS):
        process = StartedKatuna("run", str(study), cwd=tmp_path)
        try:
            process.wait(timeout=rng.uniform(0.3, 1.2))
        except subprocess.TimeoutExpired:
            process.kill()
        process.communicate()
    rerun = run_katuna("run", str(study), cwd=tmp_path, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    trials = _assert_exactly_once(tmp_path, db, relaunched=KILLS * PARALLELISM)
    assert len(trials) == TRIALS


def _workers(service: Service) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{service.process.pid}/task/{service.process.pid}/children")
            .read_text().split()]


def test_a_serve_worker_killed_mid_study_loses_and_repeats_no_trial_and_exceeds_no_slot(tmp_path: Path):
    """Every worker of ``katuna serve`` is killed with SIGKILL, one after the other, while the
    study's trials run; gunicorn starts new ones. The study still ends with exactly its trials,
    each counted once, never more than its parallelism running, none launched twice. The kills
    come once the handlings that launched the two trials committed (a kill inside such a
    handling may start its attempt again, as the random kills of ``katuna run`` above bound)."""
    definition = yaml.safe_load(_study(tmp_path).read_text())
    db = tmp_path / "katuna.db"
    service = Service(tmp_path, workers=2)
    try:
        service.submit(definition)
        eventually(lambda: len(_seen(tmp_path)) == PARALLELISM
                   and [t["state"] for t in _trials(db)] == ["RUNNING"] * PARALLELISM,
                   "two trials run, their launches committed", timeout=60)
        for worker in _workers(service):
            os.kill(worker, signal.SIGKILL)
            eventually(lambda killed=worker: killed not in _workers(service) and len(_workers(service)) == 2,
                       "gunicorn replaces the worker")
        (tmp_path / "go").touch()
        study = service.wait_for("demo", timeout=180)
        assert study["status"] == "completed", study
        eventually(lambda: _live_trials(tmp_path) == [], "no trial process runs on", timeout=30)
    finally:
        service.close()
    _assert_exactly_once(tmp_path, db)


class Watched(ChaosDelivery):
    """Chaotic delivery that counts, after every handling, the study's Jobs that have not ended."""

    def __init__(self, *args, kube: KubeStub, namespace: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kube, self.namespace = kube, namespace
        self.most = 0

    def deliver(self, event) -> None:
        super().deliver(event)
        with self.kube.lock:
            unended = [name for (namespace, name), job in self.kube.jobs.items() if namespace == self.namespace
                       and not any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
                                   for c in job["status"].get("conditions", []))]
        self.most = max(self.most, len(unended))


@pytest.mark.parametrize("seed", range(3))
def test_duplicated_and_shuffled_job_events_with_a_trial_prepared_ahead_run_each_slot_once(
        tmp_path: Path, seed: int, kube: KubeStub):
    """The cluster's path with look-ahead: a trial's end starts the trial prepared ahead in its
    own handling, while Job events come duplicated and shuffled, each pod preempted now and
    then (a disruption the Job replaces inside the attempt). Each Job is created once, never
    more Jobs run than the study's parallelism, and the study ends with exactly its trials."""
    rng = random.Random(seed)
    kube.disrupt = lambda job, index: rng.uniform(0.02, 0.2) if index == 0 and rng.random() < 0.3 else None
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    definition = study_definition(maxTrials=6, parallelism=2)
    definition["trialTemplate"]["image"] = "python:3.12"
    runner.submit(parse_study(definition), definition, tmp_path)
    namespace = f"ahead-{seed}"
    kube.add_namespace(namespace)
    executor = KubernetesExecutor(Cluster(namespace=namespace), api_client(kube.url))
    dispatcher = Dispatcher(Deps(runner.store, executor, time.time, lookahead=1))
    try:
        chaos = Watched(runner, seed, dispatcher, executor, JobSource(kube, random.Random(seed)),
                        kube=kube, namespace=namespace)
        chaos.run("demo")
        trials = runner.store.trials("demo")
        assert runner.store.get_study("demo").status == "completed"
    finally:
        runner.close()
    # A pod preempted just as its trial ended, before its end was read, takes its log with it:
    # that run is lost, not failed, and runs again as the trial's next attempt, as on a cluster
    # (the next attempt's pod may be preempted so too). Every attempt but a trial's last is such
    # a lost run: its Job's pod was disrupted, and the trial's reason says it was preempted.
    jobs = {t.number: [job_name("demo", t.number, attempt) for attempt in range(1, t.attempt + 1)] for t in trials}
    assert [(t.number, t.state) for t in trials] == [(n, "COMPLETE") for n in range(6)]
    for trial in trials:
        assert all((name, 0) in kube.disrupted for name in jobs[trial.number][:-1]), (trial.number, kube.disrupted)
        assert trial.attempt == 1 or f"attempt {trial.attempt - 1} preempted" in trial.reason, trial.reason
    assert sorted(name for ns, name in kube.create_requests if ns == namespace) == sorted(
        name for names in jobs.values() for name in names)
    assert chaos.most <= 2, f"{chaos.most} Jobs ran at once"


def test_a_stop_before_its_studys_start_or_its_trials_launch_with_look_ahead_runs_no_process(
        embedded: Embedded, tmp_path: Path):
    """``katuna run``'s path (local processes, a trial prepared ahead): the stop handled before
    the start, or before the launches the start asked for, each delivered again in reversed
    order, leaves no trial and starts no process."""
    definition = study_definition(maxTrials=4, parallelism=2)
    early = embedded.submit(parse_study(definition), definition, tmp_path)
    stop = study_completed("demo", early.uid, "stopped", "stopped by its user")
    assert embedded.dispatcher.deliver(stop) == []
    assert embedded.dispatcher.deliver(study_created("demo", early.uid)) == []
    assert embedded.store.trials("demo") == [] and embedded.store.get_study("demo").status == "stopped"

    late = study_definition(name="late", maxTrials=4, parallelism=2)
    record = embedded.submit(parse_study(late), late, tmp_path)
    suggested = embedded.dispatcher.deliver(study_created("late", record.uid))
    assert len(suggested) == 2 and len(embedded.store.trials("late")) == 3, "two to launch, one prepared"
    for event in [study_completed("late", record.uid, "stopped", "stopped by its user")] * 2 + suggested[::-1] * 2:
        assert embedded.dispatcher.deliver(event) == []
    assert embedded.store.trials("late") == [], "trials never launched are discarded"
    assert embedded.executor.running() == 0 and list(embedded.settings.logs.glob("late/*/*.log")) == []
