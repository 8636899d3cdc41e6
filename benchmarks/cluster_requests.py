"""The requests katuna makes of the Kubernetes API for a study's running trials.

One study of 200 trials, all running at once as Kubernetes Jobs on the test suite's Kubernetes
API stand-in on a simulated clock (as ``progress_scan.py`` runs them), launched by the real
handlers through the Kubernetes executor and its client library. Counted from the stand-in's
audit log of the requests it served: a look at every running trial (the watcher's every 2 s, the
reconcile tick's), a progress scan of every running trial's log (beyond the log reads
themselves, one a trial), and the study's end (the ``stop`` handler: beyond a read of the last
lines of each trial's log, kept before its Job goes, the deletes inside its transaction).

Ends with ``look_requests_per_trial=``, ``scan_requests_per_trial=`` and ``stop_requests=``.
"""

from __future__ import annotations

import logging
import sys
import tempfile
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
from functions.core.cluster import Cluster
from functions.core.events import study_completed
from functions.dispatch import Dispatcher
from functions.handlers import Deps, progress_scan
from functions.handlers.reconcile import Budget, reconcile_study

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


def plot(made: dict[str, Counter[str]], trials: int, out: Path | None) -> None:
    fig, ax = report.figure()
    ax.bar(list(made), [sum(count.values()) for count in made.values()])
    ax.set_ylabel(f"requests, {trials} trials running")
    report.save_plot(fig, NAME, out)


def main(argv: list[str] | None = None) -> int:
    parser = report.arguments(__doc__, "20 trials (a smoke run)")
    parser.add_argument("--trials", type=int, default=200, help="trials running at once")
    args = report.parsed(parser, argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("katuna").setLevel(logging.ERROR)
    trials = 20 if args.quick else args.trials
    with tempfile.TemporaryDirectory() as folder:
        made = measure(trials, Path(folder))
    print(f"{trials} trials running as Jobs; requests to the Kubernetes API")
    print(report.table(["what", "requests", "by verb and resource"],
                       [[what, sum(count.values()), ", ".join(f"{n} {k}" for k, n in sorted(count.items()))]
                        for what, count in made.items()]))
    figures = {"look_requests_per_trial": sum(made["look"].values()) / trials,
               "scan_requests_per_trial": (sum(made["scan"].values()) - made["scan"]["get pods"]) / trials,
               "stop_requests": sum(made["stop"].values()) - made["stop"]["get pods"]}
    report.save(NAME, {"trials": trials, "requests": {k: dict(v) for k, v in made.items()}, "figures": figures},
                args.out)
    plot(made, trials, args.out)
    report.lines(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
