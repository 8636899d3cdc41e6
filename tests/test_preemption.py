"""A preemption storm: about 30% of trial attempts killed from outside at random moments.

Locally, a storm thread SIGKILLs trial processes (as a reclaimed spot VM or an OOM killer would):
each preempted attempt is retried as a new attempt, and never counted as a failure. On
Kubernetes, the loopback API preempts pods (``DisruptionTarget``): the Job's
``podFailurePolicy`` replaces the pod inside the same attempt. Either way the study ends with
every trial successful, and Optuna sees each trial once.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from conftest import TRIAL, run_study
from kube_stub import KubeStub
from proc_stat import state
from test_delivery import ChaosDelivery, JobSource

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.core.cluster import Cluster
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.embedded import Embedded
from functions.handlers import Deps
from functions.settings import Settings

pytestmark = pytest.mark.slow

TRIALS = 12
RATE = 0.3
MAX_ATTEMPTS = 5
TRIAL_SECONDS = 0.9


def preempted(seed: int, trial: int, attempt: int) -> bool:
    """Whether the storm kills this attempt: about ``RATE`` of attempts, never the last allowed
    one (a trial preempted in every attempt fails, by design; that is another test's subject)."""
    return attempt < MAX_ATTEMPTS and random.Random(f"{seed}/{trial}/{attempt}").random() < RATE


def expected_attempts(seed: int, trial: int) -> int:
    attempt = 1
    while preempted(seed, trial, attempt):
        attempt += 1
    return attempt


class Storm:
    """Watches the pid files trials write and SIGKILLs the chosen attempts' process groups after a
    random part of their run."""

    def __init__(self, pid_dir: Path, seed: int) -> None:
        self.pid_dir, self.seed = pid_dir, seed
        self.rng = random.Random(seed)
        self.seen: set[str] = set()
        self.killed: list[tuple[int, int]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            for path in self.pid_dir.glob("*.pid"):
                if path.name in self.seen or not path.read_text():
                    continue
                self.seen.add(path.name)
                trial, attempt = (int(part) for part in path.name.split(".")[:2])
                if preempted(self.seed, trial, attempt):
                    delay = self.rng.uniform(0.02, TRIAL_SECONDS * 0.4)
                    threading.Timer(delay, self._kill, (int(path.read_text()), trial, attempt)).start()
            time.sleep(0.01)

    def _kill(self, pid: int, trial: int, attempt: int) -> None:
        try:
            if state(pid) == "Z":
                return  # it ended already: a kill now would hit nothing
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, FileNotFoundError):
            return
        self.killed.append((trial, attempt))

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()


@pytest.mark.parametrize("seed", [1, 2])
def test_a_storm_of_sigkills_is_retried_and_never_counted_as_failure(embedded, tmp_path: Path, seed: int):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    definition = {
        "name": "storm", "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": -5.0, "max": 5.0}],
        "algorithm": {"name": "random", "seed": seed}, "parallelism": 4, "maxTrials": TRIALS,
        "trialTemplate": {"command": [sys.executable, str(TRIAL), "--x", "${trialParameters.x}",
                                      "--sleep", str(TRIAL_SECONDS)],
                          "env": {"PID_DIR": str(pid_dir)}, "maxAttempts": MAX_ATTEMPTS},
    }
    storm = Storm(pid_dir, seed)
    try:
        study = run_study(embedded, definition, tmp_path)
    finally:
        storm.stop()
    trials = embedded.store.trials("storm")
    assert study.status == "completed"
    assert [t.state for t in trials] == ["COMPLETE"] * TRIALS
    attempts = [t.attempt for t in trials]
    assert attempts == [expected_attempts(seed, t.number) for t in trials]
    assert sorted(storm.killed) == sorted((t.number, a) for t in trials for a in range(1, t.attempt))
    assert sum(a - 1 for a in attempts) >= 2, "the storm preempted attempts"
    for trial in trials:
        assert [line.split("; peak memory at most ")[0] for line in trial.reason.splitlines()] == [
            f"attempt {a} preempted: killed by SIGKILL from outside katuna (another process, or the kernel's "
            "out-of-memory killer)" for a in range(trial.attempt - 1, 0, -1)]
        assert trial.values is not None and trial.exit_code == 0
        logs = sorted(p.name for p in (embedded.settings.logs / "storm").glob(f"*/{trial.number}.*.log"))
        assert logs == [f"{trial.number}.{a}.log" for a in range(1, trial.attempt + 1)]
    optuna_trials = optuna.load_study(study_name="storm", storage=embedded.store.optuna_storage()).trials
    assert [t.state.name for t in optuna_trials] == ["COMPLETE"] * TRIALS, "Optuna sees each trial once"
    counts = embedded.store.count_trials("storm")
    assert (counts.complete, counts.failed) == (TRIALS, 0)


@pytest.fixture()
def kube():
    stub = KubeStub(namespaces=("storm",))
    yield stub
    stub.close()


def test_a_storm_of_pod_disruptions_replaces_pods_inside_each_job(kube: KubeStub, tmp_path: Path):
    """Job events come from a stand-in ApiServerSource, duplicated and shuffled (tests/test_delivery.py)."""
    seed = 3
    rng = random.Random(seed)
    lock = threading.Lock()

    def disrupt(job: str, index: int) -> float | None:
        trial = int(job.rsplit("-", 1)[1])
        if not preempted(seed, trial, index + 1):
            return None
        with lock:
            return rng.uniform(0.02, TRIAL_SECONDS * 0.4)

    kube.disrupt = disrupt
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    executor = KubernetesExecutor(Cluster(namespace="storm"), api_client(kube.url))
    definition = {
        "name": "podstorm", "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": -5.0, "max": 5.0}],
        "algorithm": {"name": "random", "seed": seed}, "parallelism": 4, "maxTrials": 8,
        "trialTemplate": {"image": "python:3.12", "command": [
            sys.executable, str(TRIAL), "--x", "${trialParameters.x}", "--sleep", str(TRIAL_SECONDS)]},
    }
    try:
        runner.submit(parse_study(definition), definition, tmp_path)
        dispatcher = Dispatcher(Deps(runner.store, executor, time.time))
        ChaosDelivery(runner, seed, dispatcher, executor, JobSource(kube, random.Random(seed))).run("podstorm")
        trials = runner.store.trials("podstorm")
        assert runner.store.get_study("podstorm").status == "completed"
    finally:
        runner.close()
    assert [(t.state, t.attempt) for t in trials] == [("COMPLETE", 1)] * 8, "a disrupted pod is no new attempt"
    expected = sorted((f"podstorm-{n}", i) for n in range(8) for i in range(expected_attempts(seed, n) - 1))
    assert sorted(kube.disrupted) == expected and len(expected) >= 2, "the storm preempted pods"
    assert sorted(kube.create_requests) == [("storm", f"podstorm-{n}") for n in range(8)]
