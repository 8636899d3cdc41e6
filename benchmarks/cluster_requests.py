"""The requests katuna makes of the Kubernetes API for a study's running trials.

One study of 200 trials, all running at once as Kubernetes Jobs on the test suite's Kubernetes
API stand-in on a simulated clock (as ``progress_scan.py`` runs them), launched by the real
handlers through the Kubernetes executor and its client library. Counted from the stand-in's
audit log of the requests it served: a look at every running trial (the watcher's every 2 s, the
reconcile tick's), a progress scan of every running trial's log (beyond the log reads
themselves, one a trial), and the study's end (the ``stop`` handler: beyond a read of the last
lines of each trial's log, kept before its Job goes, the deletes inside its transaction). Then
the tick's sweep for trial Jobs no study wants over a namespace holding the finished Jobs a
``retain`` study of ``--kept`` trials keeps (15,000): its requests, and the most memory it held
(:mod:`tracemalloc`, the stand-in's serving included).

Ends with ``look_requests_per_trial=``, ``scan_requests_per_trial=``, ``stop_requests=``,
``sweep_requests=`` and ``sweep_peak_mb=``.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import report
from progress_scan import EVERY, NAMESPACE, STUDY, advance, container, launched
from standins import KubeStub, SimulatedClock, SimulatedContainers

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import TRIAL_LABEL, Cluster
from functions.core.events import study_completed
from functions.core.job import render_job
from functions.core.launch import TrialLaunch
from functions.core.ports import Place
from functions.dispatch import Dispatcher
from functions.handlers import Deps, progress_scan
from functions.handlers.reconcile import Budget, reconcile_study
from functions.handlers.strays import Wanted

NAME = "cluster_requests"


def counted(kube: KubeStub, action: Any) -> Counter[str]:
    """The requests ``action`` made, by verb and resource (``get pods/log``)."""
    before = len(kube.audit)
    action()
    return Counter(f"{verb} {resource}" for verb, resource, _, _ in kube.audit[before:])


def measure(trials: int, folder: Path) -> dict[str, Counter[str]]:
    clock = SimulatedClock()
    kube = KubeStub(namespaces=(NAMESPACE,), clock=clock)
    kube.kubelets.containers = SimulatedContainers(clock, container)
    try:
        executor = KubernetesExecutor(Cluster(namespace=NAMESPACE), api_client(kube.url), clock=clock.time)
        store = SqliteStore(folder / "katuna.db")
        deps = Deps(store, executor, clock.time, logs=executor, workdir=str(folder))
        launched(deps, kube, trials)
        advance(kube, clock, EVERY)
        record = store.get_study(STUDY)
        look = counted(kube, lambda: reconcile_study(record, deps, Budget(trials), poll=True))
        scan = counted(kube, lambda: [progress_scan.scan(deps, [record], window)
                                      for window in range(-(-trials // progress_scan.MAX_READS))])
        stop = counted(kube, lambda: Dispatcher(deps).deliver(
            study_completed(record.name, record.uid, "stopped", "the benchmark ends it", record.restarts)))
        assert not [name for ns, name in kube.jobs if ns == NAMESPACE], "the study's end deleted its Jobs"
        return {"look": look, "scan": scan, "stop": stop}
    finally:
        kube.close()


def sweep(kept: int, folder: Path) -> tuple[Counter[str], float]:
    """The requests of one sweep for unwanted trial Jobs over ``kept`` finished Jobs of a
    ``retain`` study, and the most memory (MB) it held."""
    clock = SimulatedClock()
    kube = KubeStub(namespaces=(NAMESPACE,), clock=clock)
    try:
        cluster = Cluster(namespace=NAMESPACE)
        job = render_job(TrialLaunch(STUDY, "kept-uid", 0, 1, f"{STUDY}-0", ["python", "train.py"], {}, ".", None,
                                     image="python:3.12"), cluster)
        job["metadata"]["namespace"] = NAMESPACE
        kube.keep_completed_jobs(job, kept, TRIAL_LABEL)
        executor = KubernetesExecutor(cluster, api_client(kube.url), clock=clock.time)
        store = SqliteStore(folder / "sweep.db")
        tracemalloc.start()
        try:
            made = counted(kube, lambda: executor.stop_strays(Wanted(store), [Place(NAMESPACE, None)]))
            peak = tracemalloc.get_traced_memory()[1] / 1e6
        finally:
            tracemalloc.stop()
            store.close()
        return made, peak
    finally:
        kube.close()


def plot(made: dict[str, Counter[str]], trials: int, out: Path | None) -> None:
    fig, ax = report.figure()
    ax.bar(list(made), [sum(count.values()) for count in made.values()])
    ax.set_ylabel(f"requests, {trials} trials running")
    report.save_plot(fig, NAME, out)


def main(argv: list[str] | None = None) -> int:
    parser = report.arguments(__doc__, "20 trials (a smoke run)")
    parser.add_argument("--trials", type=int, default=200, help="trials running at once")
    parser.add_argument("--kept", type=int, default=15_000, help="finished Jobs a retain study keeps, swept")
    args = report.parsed(parser, argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("katuna").setLevel(logging.ERROR)
    trials, kept = (20, 1_000) if args.quick else (args.trials, args.kept)
    with tempfile.TemporaryDirectory() as folder:
        made = measure(trials, Path(folder))
        made["sweep"], peak = sweep(kept, Path(folder))
    print(f"{trials} trials running as Jobs; requests to the Kubernetes API")
    print(report.table(["what", "requests", "by verb and resource"],
                       [[what, sum(count.values()), ", ".join(f"{n} {k}" for k, n in sorted(count.items()))]
                        for what, count in made.items()]))
    figures = {"look_requests_per_trial": sum(made["look"].values()) / trials,
               "scan_requests_per_trial": (sum(made["scan"].values()) - made["scan"]["get pods"]) / trials,
               "stop_requests": sum(made["stop"].values()) - made["stop"]["get pods"],
               "sweep_requests": sum(made["sweep"].values()), "sweep_peak_mb": round(peak, 1)}
    print(f"a sweep over {kept} finished Jobs a retain study keeps: {figures['sweep_requests']} requests, "
          f"{figures['sweep_peak_mb']} MB at most")
    report.save(NAME, {"trials": trials, "kept": kept, "requests": {k: dict(v) for k, v in made.items()}, "figures": figures},
                args.out)
    plot(made, trials, args.out)
    report.lines(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
