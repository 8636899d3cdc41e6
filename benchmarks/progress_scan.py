"""What the scan of running cluster trials' logs costs per trial read, with hundreds running.

One study of 200 trials, all running at once as Kubernetes Jobs on the test suite's Kubernetes
API stand-in (``tests/kube_stub.py``) on a simulated clock, each container printing a
``loss=`` and ``acc=`` line every 2 simulated seconds. katuna's handlers launch them through the
real dispatcher, the Kubernetes executor and its client library, on a SQLite store. Then, every
10 simulated seconds (a scan every ``KATUNA_K8S_PROGRESS_SECONDS``, as ``katuna serve`` does),
the scan of :mod:`functions.handlers.progress_scan` reads every running trial's log once (as
many scans as it takes at 50 logs a scan), keeping the observations of the new lines with how
far it read. Each round is timed in wall time and in CPU time of the scanning thread (the
stand-in answers on threads of its own, so the thread's CPU time is katuna's side alone, which a
busy shared machine does not inflate), with the part of each spent reading the logs apart.

Ends with ``journal_records_per_round=`` (records the scans of a round added to Optuna's journal:
none, as how far each log was read is kept in katuna's trials table), ``store_cpu_ms_per_trial=``
(the scan's CPU time per trial read beyond reading its log: parsing the new lines, looking up
and storing the read position and the observations) and ``scan_ms_per_trial=`` (wall time of
the whole scan per trial read).
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import report
from standins import KubeStub, Run, SimulatedClock, SimulatedContainers

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import Cluster
from functions.core.events import study_created
from functions.core.records import RUNNING
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps, progress_scan
from functions.handlers.submit import store_study

NAME = "progress_scan"
STUDY = "scanned"
NAMESPACE = "scan"
EVERY = 10.0
"""Simulated seconds between two rounds of scans."""
PRINT_EVERY = 2.0
"""Simulated seconds between two lines of a trial."""


def container(pod: dict) -> Run:
    """A trial that prints its loss and accuracy every :data:`PRINT_EVERY` seconds for an hour."""
    lines = tuple((t * PRINT_EVERY, f"loss={1 / (t + 1):.5f} acc={t / (t + 1):.5f}\n") for t in range(1, 1800))
    return Run(3600.0, "", pieces=lines)


def definition(trials: int) -> dict[str, Any]:
    return {
        "name": STUDY, "objective": {"metric": "loss", "direction": "minimize", "additionalMetrics": ["acc"]},
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "algorithm": {"name": "random", "seed": 1}, "parallelism": trials, "maxTrials": trials,
        "trialTemplate": {"image": "python:3.12", "command": ["train", "${trialParameters.x}"],
                          "resources": {"cpu": "100m", "memory": "128Mi"}},
    }


class TimedLogs:
    """The executor's running-log reads, timed (wall and CPU of the calling thread)."""

    def __init__(self, executor: KubernetesExecutor) -> None:
        self.executor = executor
        self.wall = self.cpu = 0.0
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.executor, name)

    def running_log(self, *args: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.executor.running_log(*args)
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.thread_time() - cpu
            self.reads += 1


def advance(kube: KubeStub, clock: SimulatedClock, seconds: float) -> None:
    """Move the simulated cluster on by ``seconds``."""
    until = clock.now + seconds
    clock.wake_at(until)
    kube.run_until(lambda: clock.now >= until, moments=100_000)


def launched(deps: Deps, kube: KubeStub, trials: int) -> None:
    """The study stored and its trials launched, every pod running."""
    spec = parse_study(definition(trials))
    record, _ = store_study(deps, spec, definition(trials))
    pending = [study_created(record.name, record.uid)]
    while pending:
        pending = [emitted for event in pending for emitted in Dispatcher(deps).deliver(event)]

    def running() -> bool:
        with kube.lock:
            pods = [p for (ns, _), p in kube.pods.items() if ns == NAMESPACE]
            return len(pods) == trials and all(p["status"].get("phase") == "Running" for p in pods)

    kube.run_until(running, moments=10_000)
    assert len(deps.store.trials(STUDY, (RUNNING,))) == trials


def one_round(deps: Deps, store: SqliteStore, logs: TimedLogs, trials: int) -> dict[str, float]:
    """Every running trial's log read once: milliseconds per trial read (wall, CPU; all of the
    scan, and the reads of the logs alone), and the records it added to Optuna's journal."""
    record = store.get_study(STUDY)
    journal = store.optuna_version(STUDY)
    logs.wall = logs.cpu = 0.0
    logs.reads = 0
    wall, cpu = time.perf_counter(), time.thread_time()
    for window in range(-(-trials // progress_scan.MAX_READS)):
        progress_scan.scan(deps, [record], window)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    reads = max(logs.reads, 1)
    return {"reads": logs.reads, "scan_ms": wall * 1000 / reads, "scan_cpu_ms": cpu * 1000 / reads,
            "log_ms": logs.wall * 1000 / reads, "log_cpu_ms": logs.cpu * 1000 / reads,
            "store_cpu_ms": (cpu - logs.cpu) * 1000 / reads, "journal_records": store.optuna_version(STUDY) - journal}


def measure(trials: int, rounds: int, folder: Path) -> list[dict[str, float]]:
    clock = SimulatedClock()
    kube = KubeStub(namespaces=(NAMESPACE,), clock=clock)
    kube.kubelets.containers = SimulatedContainers(clock, container)
    try:
        executor = KubernetesExecutor(Cluster(namespace=NAMESPACE), api_client(kube.url), clock=clock.time)
        logs = TimedLogs(executor)
        store = SqliteStore(folder / "katuna.db")
        deps = Deps(store, executor, clock.time, logs=logs, workdir=str(folder))  # type: ignore[arg-type]
        launched(deps, kube, trials)
        results = []
        for _ in range(rounds):
            advance(kube, clock, EVERY)
            results.append(one_round(deps, store, logs, trials))
        kept = deps.store.observations(STUDY, 0)
        assert len(kept) >= 2 * rounds, f"the scans kept {len(kept)} observations of trial 0"
        return results
    finally:
        kube.close()


def plot(rounds: list[dict[str, float]], out: Path | None) -> None:
    fig, ax = report.figure()
    xs = range(1, len(rounds) + 1)
    for key, label in (("scan_ms", "whole scan, wall"), ("scan_cpu_ms", "whole scan, CPU"),
                       ("log_cpu_ms", "log reads, CPU"), ("store_cpu_ms", "beyond the log reads, CPU")):
        ax.plot(xs, [r[key] for r in rounds], marker="o", label=label)
    ax.set_xlabel("round (every running trial's log read once)")
    ax.set_ylabel("ms per trial read")
    ax.set_ylim(bottom=0)
    ax.legend()
    report.save_plot(fig, NAME, out)


def main(argv: list[str] | None = None) -> int:
    parser = report.arguments(__doc__, "20 trials, 3 rounds (a smoke run)")
    parser.add_argument("--trials", type=int, default=200, help="trials running at once")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of scans, 10 simulated seconds apart")
    args = report.parsed(parser, argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("katuna").setLevel(logging.ERROR)
    trials, rounds = (20, 3) if args.quick else (args.trials, args.rounds)
    with tempfile.TemporaryDirectory() as folder:
        results = measure(trials, rounds, Path(folder))
    print(f"{trials} trials running, a line every {PRINT_EVERY:g} s each; every trial's log read every {EVERY:g} s")
    keys = ["reads", "scan_ms", "scan_cpu_ms", "log_ms", "log_cpu_ms", "store_cpu_ms", "journal_records"]
    print(report.table(["round", *keys], [[n + 1, *(r[k] for k in keys)] for n, r in enumerate(results)]))
    figures: dict[str, Any] = {f"{key}_per_trial": statistics.median(r[key] for r in results) for key in keys[1:-1]}
    figures["journal_records_per_round"] = statistics.median(r["journal_records"] for r in results)
    report.save(NAME, {"trials": trials, "rounds": results, "figures": figures}, args.out)
    plot(results, args.out)
    report.lines({"journal_records_per_round": figures["journal_records_per_round"],
                  "store_cpu_ms_per_trial": figures["store_cpu_ms_per_trial"],
                  "scan_ms_per_trial": figures["scan_ms_per_trial"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
