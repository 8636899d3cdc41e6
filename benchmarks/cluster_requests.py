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
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import report
from progress_scan import EVERY, NAMESPACE, STUDY, advance, container, definition, launched
from standins import KubeStub, SimulatedClock, SimulatedContainers

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.kubernetes_resources import KubernetesResources
from functions.adapters.sqlite_store import SqliteStore
from functions.core.cluster import TRIAL_LABEL, Cluster
from functions.core.events import study_completed
from functions.core.job import render_job
from functions.core.launch import TrialLaunch
from functions.core.ports import Place
from functions.core.records import COMPLETED, TrialRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps, progress_scan, strays, writeback
from functions.handlers.reconcile import Budget, reconcile_study
from functions.handlers.resource_check import IN_FLIGHT, resource_events
from functions.handlers.strays import Wanted
from functions.handlers.submit import store_study

NAME = "cluster_requests"
WATCHED = "katuna"
"""Where the service watches the study resources (its own namespace)."""
RUNNING_STUDIES = 5
"""Studies still running beside the ended ones of the tick's passes."""
PASSES = 5
"""Passes of each kind timed over the stored studies (the median is the figure)."""


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


def stored(deps: Deps, kube: KubeStub, number: int, ended: bool) -> None:
    """Study ``number`` stored as the HTTP API or its resource submits it; every other one
    follows a Study resource applied first. An ended one has two completed trials, ended an
    hour ago, and its resource shows the status katuna wrote (:func:`writeback.report`)."""
    name = f"{STUDY}-{number:05d}"
    native = definition(2) | {"name": name}
    origin = None
    if number % 2 == 0:
        spec = {key: value for key, value in native.items() if key != "name"}
        obj = kube.apply({"apiVersion": "katuna.dev/v1", "kind": "Study",
                          "metadata": {"name": name, "namespace": WATCHED}, "spec": spec})
        origin = {"kind": "Study", "namespace": WATCHED, "name": name, "uid": obj["metadata"]["uid"],
                  "generation": obj["metadata"]["generation"]}
    record, _ = store_study(deps, parse_study(native), native, origin)
    if not ended:
        return
    for trial in range(2):
        deps.store.add_trial(TrialRecord(name, trial, {"x": trial / 2}, COMPLETED, values=[1.0 - trial / 2],
                                         metrics={"loss": 1.0 - trial / 2}))
    deps.store.update_study(name, status=COMPLETED, reason="maxTrials reached",
                            completed_at=deps.clock() - 6 * IN_FLIGHT)
    writeback.report(deps.store.get_study(name), deps)


def tick_passes(ended: int, folder: Path) -> dict[str, float]:
    """The CPU time (ms, the calling thread's) of a resource check and of a stray sweep over
    every stored study, each as the watcher runs it (the studies read in brief first), medians
    of :data:`PASSES`; and the events the checks found to send (none: every resource is as the
    store has it)."""
    clock = SimulatedClock()
    kube = KubeStub(namespaces=(NAMESPACE,), clock=clock)
    try:
        resources = KubernetesResources(lambda: api_client(kube.url))
        resources.namespace = WATCHED  # where the service watches, as functions.runtime sets it
        executor = KubernetesExecutor(Cluster(namespace=NAMESPACE), api_client(kube.url), clock=clock.time)
        store = SqliteStore(folder / "tick.db")
        deps = Deps(store, executor, clock.time, resources=resources, workdir=str(folder))
        for number in range(ended + RUNNING_STUDIES):
            stored(deps, kube, number, number < ended)
        checks, sweeps, events = [], [], 0
        for window in range(PASSES):
            cpu = time.thread_time()
            events += len(resource_events(deps, store.study_briefs(), window))
            checks.append(time.thread_time() - cpu)
            cpu = time.thread_time()
            strays.sweep(deps, store.study_briefs())
            sweeps.append(time.thread_time() - cpu)
        store.close()
        return {"resource_check_cpu_ms": round(statistics.median(checks) * 1000, 1),
                "stray_sweep_cpu_ms": round(statistics.median(sweeps) * 1000, 1), "events": events}
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
    parser.add_argument("--ended", type=int, default=5_000, help="ended studies stored, for the tick's passes")
    args = report.parsed(parser, argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("katuna").setLevel(logging.ERROR)
    trials, kept, ended = (20, 1_000, 40) if args.quick else (args.trials, args.kept, args.ended)
    with tempfile.TemporaryDirectory() as folder:
        made = measure(trials, Path(folder))
        made["sweep"], peak = sweep(kept, Path(folder))
        passes = tick_passes(ended, Path(folder))
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
    events = passes.pop("events")
    figures |= passes
    print(f"{ended} ended studies and {RUNNING_STUDIES} running stored: a resource check "
          f"{figures['resource_check_cpu_ms']} ms of CPU ({events} events found), a stray sweep "
          f"{figures['stray_sweep_cpu_ms']} ms")
    report.save(NAME, {"trials": trials, "kept": kept, "ended": ended, "running_studies": RUNNING_STUDIES,
                       "passes": PASSES, "tick_events": events, "requests": {k: dict(v) for k, v in made.items()},
                       "figures": figures}, args.out)
    plot(made, trials, args.out)
    report.lines(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
