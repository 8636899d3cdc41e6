"""What the reference study costs on a cluster: katuna's spot pool against on-demand and a fixed pool.

The reference study (500 trials of a few minutes each, 100 at a time) runs three times through
katuna as the service wires it (:class:`functions.runtime.Runtime`: every handler, a SQLite
store with Optuna's journal, the Kubernetes executor and the node-pool adapter with their real
client libraries) against the strict stand-ins of the test suite on loopback: the Kubernetes
API (``tests/kube_stub.py``: its Job controller, scheduler, kubelets, cluster autoscaler and pod
garbage collection) and GKE's API (``tests/gke_stub.py``), or EKS's through moto. All of them
read one simulated clock (``tests/kube_standin/clock.py``), which jumps from one due moment to the
next, so each run takes a minute or two of wall time for hours of cluster time. This script
plays the Knative parts: it delivers each event to the handlers (retrying what fails for now),
sends every change of a trial Job as the ApiServerSource would, and ticks as the PingSource
does once a simulated minute.

* ``spot``: katuna's default, a pool of spot machines that katuna creates when the study
  starts, which the autoscaler grows from 0 to 100 nodes, and which katuna deletes when the study
  ends; a node is interrupted at ``--preemptions`` per node-hour (GKE gives 30 s notice, AWS
  120 s) and its trial starts over on another node;
* ``on_demand``: the same pool of on-demand machines (no interruptions, the full price);
* ``fixed``: 100 on-demand nodes left running, as a Katib cluster is usually sized, counted
  only while the study runs (a lower bound of what they cost).

Each prints ``makespan_h`` (submission to the study's end), ``node_hours`` (each machine from
its creation, boot included, until it is gone, as the cloud bills it) and ``cost_usd``
(node-hours at the machine's list price), and ``spot_measured_node_hours``: what katuna itself
measured of the spot pool from the Node objects its ticks listed (a Node exists once its
kubelet registers, so the boot before is not in it); then ``cost_ratio_vs_fixed=`` and
``makespan_ratio_vs_fixed=`` of the spot pool over the fixed pool (targets: <= 0.40 and <= 1.15
at 5% interruptions per node-hour).

List prices (USD per hour, on-demand and spot): GKE ``e2-standard-4`` in us-central1, 0.134 and
0.040; EKS ``m5.xlarge`` in us-east-1, 0.192 and 0.076 — as published on Google Cloud's VM
instance pricing page and the Amazon EC2 on-demand and spot pricing pages (2026-11; spot prices
move, monthly on Google Cloud and continuously on AWS: give today's with ``--spot-price`` and
``--on-demand-price``). A node is Ready 210 s after the autoscaler asks for it (the cluster
autoscaler's FAQ: "on GCE it usually takes 3 to 4 minutes from CA request to when pods can be
scheduled on newly created nodes"); the autoscaler looks at the pools every 10 s and removes a
node unneeded for 10 minutes, none within 10 minutes of a scale-up, at most 10 at once (its
defaults ``scan-interval``, ``scale-down-unneeded-time``, ``scale-down-delay-after-add`` and
``max-scale-down-parallelism``); GKE creates a pool in 90 s and deletes it in 60 s, its nodes
billed until then (moto's EKS node groups are ready at once, and deleted at once).
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import report
from standins import Cloud, KubeStub, Run, SimulatedClock, SimulatedContainers, make_cloud

from functions.core.cluster import STUDY_LABEL, TRIAL_LABEL
from functions.core.errors import TemporaryError
from functions.core.events import Event, pool_check
from functions.core.ports import has_study
from functions.core.records import StudyRecord
from functions.core.template_sources import load
from functions.dispatch import Dispatcher
from functions.runtime import Runtime
from functions.settings import Settings

NAME = "cluster_cost"
PRICES = {"gke": {"machine": "e2-standard-4", "on_demand": 0.134, "spot": 0.040},
          "eks": {"machine": "m5.xlarge", "on_demand": 0.192, "spot": 0.076}}
NAMESPACE = "katuna"
MAX_SIMULATED = 86400.0
"""Simulated seconds after which a run that has not ended is an error, not a wait."""
TICK_SECONDS = 60.0
"""The PingSource's period: provision and reconcile look at the studies once a simulated minute."""
RETRY_SECONDS = 10.0
"""When an event whose handling failed for now is delivered again (a Trigger's retry)."""
BOOT_SECONDS = 210.0
"""From the autoscaler's request to a Ready node: the middle of its FAQ's 3 to 4 minutes on GCE."""
IDLE_SECONDS = 600.0
"""The autoscaler's ``--scale-down-unneeded-time``, and its ``--scale-down-delay-after-add``."""
SOURCE_CHANGES = {"ADDED": "add", "MODIFIED": "update", "DELETED": "delete"}
"""The ApiServerSource's event type for each kind of change it watches."""


@dataclass(frozen=True)
class Reference:
    """The study's size: trials, how many at once, and their run times (seconds)."""

    trials: int = 500
    parallelism: int = 100
    shortest: float = 180.0
    longest: float = 360.0
    seed: int = 18

    def seconds(self, number: int) -> float:
        """Trial ``number``'s run time, the same under every policy."""
        return random.Random(self.seed * 100_003 + number).uniform(self.shortest, self.longest)

    def container(self, pod: dict) -> Run:
        """How a trial's container runs: its trial's run time, then its loss, ``(x - 2)^2``."""
        number = int(pod["metadata"]["labels"][TRIAL_LABEL])
        container = pod["spec"]["containers"][0]
        x = float([*container.get("command", []), *container.get("args", [])][-1])
        return Run(self.seconds(number), f"loss={(x - 2.0) ** 2!r}\n")


def definition(ref: Reference, cloud: str, capacity: str | None) -> dict[str, Any]:
    """The reference study, on a pool of ``capacity`` machines (no pool: the fixed nodes)."""
    study: dict[str, Any] = {
        "name": "reference", "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": -5.0, "max": 5.0}],
        "algorithm": {"name": "random", "seed": ref.seed}, "parallelism": ref.parallelism,
        "maxTrials": ref.trials,
        "trialTemplate": {"image": "python:3.12", "command": ["train", "${trialParameters.x}"],
                          "resources": {"cpu": "3", "memory": "4Gi"}},
    }
    if capacity is not None:
        machine = {"machineType": PRICES[cloud]["machine"]} if cloud == "gke" else {
            "instanceTypes": [PRICES[cloud]["machine"]]}
        study["nodePool"] = {"provider": cloud, "capacity": capacity, "maxNodes": ref.parallelism, **machine}
    return study


class Simulation:
    """One policy's run: the stand-ins on a simulated clock, katuna's runtime, the events in flight."""

    def __init__(self, folder: Path, cloud: Cloud, ref: Reference) -> None:
        self.clock = cloud.clock
        self.kube = KubeStub(namespaces=(NAMESPACE,), pools=cloud.pools, resize=cloud.resize,
                             boot_seconds=BOOT_SECONDS, idle_seconds=IDLE_SECONDS, clock=self.clock)
        self.kube.kubelets.containers = SimulatedContainers(self.clock, ref.container)
        self.autoscaler = self.kube.autoscaler
        self.autoscaler.interruptions = cloud.interruptions
        self.settings = Settings.from_env({"KATUNA_DB": str(folder / "katuna.db"), "KATUNA_EXECUTOR": "kubernetes",
                                           "KATUNA_K8S_API": self.kube.url, "KATUNA_K8S_NAMESPACE": NAMESPACE,
                                           **cloud.settings})
        self.runtime = Runtime(self.settings, clock=self.clock.time)
        self.deps = self.runtime.deps()
        self.dispatcher = Dispatcher(self.deps)
        self.queue: deque[Event] = deque()
        self.retries: list[tuple[float, Event]] = []
        self.seen = self.kube.history.version
        self.next_tick = self.clock.now
        self.events = 0

    def submit(self, study: dict[str, Any]) -> StudyRecord:
        """Submit the study as ``POST /studies`` does: read it, then :meth:`Runtime.submit` (the
        service's checks, the access review asked of the cluster, the store, and
        ``study.created`` put on the runtime's queue, which :meth:`_sources` takes it from)."""
        spec, definition = load(study, self.runtime.templates, self.settings.limits, partial(has_study, self.deps.store))
        record, _ = self.runtime.submit(spec, definition)
        return record

    def until(self, done: Callable[[], bool]) -> None:
        """Move the clock from one due moment to the next, settling each, until ``done``."""
        while True:
            self.settle()
            if done():
                return
            if self.clock.now - self.clock.start > MAX_SIMULATED or not self.clock.advance():
                raise RuntimeError(f"stuck at {(self.clock.now - self.clock.start) / 3600:.2f} simulated hours")

    def settle(self) -> None:
        """Step the cluster and deliver events until nothing more happens at this moment."""
        while True:
            self.kube.settle()
            self._sources()
            if not self.queue:
                return
            while self.queue:
                self._deliver(self.queue.popleft())

    def _sources(self) -> None:
        """The PingSource's tick when due, the ApiServerSource's events of the trial Jobs that
        changed (those labelled with a study, in katuna's namespace, as its manifest selects), the
        retries that are due, and what the runtime put on its queue (a submission's ``study.created``)."""
        if self.clock.now >= self.next_tick:
            self.queue.append(pool_check())
            self.next_tick = self.clock.now + TICK_SECONDS
            self.clock.wake_at(self.next_tick)
        with self.kube.lock:
            changes = self.kube.changes_since(self.seen, "jobs")
            self.seen = self.kube.history.version
        for change in changes:
            if change.namespace == NAMESPACE and STUDY_LABEL in (change.object["metadata"].get("labels") or {}):
                self.queue.append(Event(f"dev.knative.apiserver.resource.{SOURCE_CHANGES[change.type]}",
                                        change.object))
        due = [event for when, event in self.retries if when <= self.clock.now]
        self.retries = [(when, event) for when, event in self.retries if when > self.clock.now]
        self.queue.extend(due)
        while (delivery := self.runtime.queue.take(timeout=0)) is not None:
            self.queue.append(delivery.event)
            self.runtime.queue.done(delivery)

    def _deliver(self, event: Event) -> None:
        self.events += 1
        try:
            self.queue.extend(self.dispatcher.deliver(event))
        except TemporaryError:
            self.retries.append((self.clock.now + RETRY_SECONDS, event))
            self.clock.wake_at(self.clock.now + RETRY_SECONDS)

    def released(self, record: StudyRecord) -> bool:
        """The study ended, and katuna saw the last node of its pool go (a fixed pool stays)."""
        current = self.deps.store.get_study(record.name)
        use = self.deps.store.pool_use(record.uid)
        return current.terminal and (use is None or not use.watching(self.clock.now))

    def close(self) -> None:
        self.runtime.close()
        self.deps.store.close()
        self.kube.close()


def run_policy(policy: str, cloud_name: str, ref: Reference, rate: float, prices: dict[str, float],
               folder: Path) -> dict[str, Any]:
    """Run the study under ``policy``; its makespan, node-hours and cost."""
    spot = policy == "spot"
    cloud = make_cloud(cloud_name, SimulatedClock(), rate if spot else 0.0, ref.seed)
    (folder / policy).mkdir()
    sim = Simulation(folder / policy, cloud, ref)
    try:
        started = time.perf_counter()
        if policy == "fixed":
            cloud.fixed_pool(PRICES[cloud_name]["machine"], ref.parallelism)
            sim.until(lambda: len(sim.kube.nodes) >= ref.parallelism)
        submitted = sim.clock.now
        record = sim.submit(definition(ref, cloud_name, None if policy == "fixed" else
                                       "spot" if spot else "on-demand"))
        sim.until(lambda: sim.released(record))
        record = sim.deps.store.get_study(record.name)
        assert record.status == "completed", (record.status, record.reason)
        end = record.completed_at or sim.clock.now
        hours = sim.autoscaler.node_seconds(since=submitted, until=end if policy == "fixed" else sim.clock.now) / 3600
        use = sim.deps.store.pool_use(record.uid)
        price = prices["spot" if spot else "on_demand"]
        return {"policy": policy, "makespan_h": (end - submitted) / 3600, "node_hours": hours,
                "measured_node_hours": use.node_hours(sim.clock.now) if use else hours,
                "cost_usd": hours * price, "price_per_hour": price, "nodes": len(sim.autoscaler.machines),
                "peak_nodes": sim.autoscaler.peak(), "preemptions": cloud.interruptions.count,
                "complete": sim.deps.store.count_trials(record.name).complete, "events": sim.events,
                "wall_s": time.perf_counter() - started}
    finally:
        sim.close()
        cloud.close()


def result_name(cloud: str) -> str:
    """The name of a run's files: ``cluster_cost`` on GKE, ``cluster_cost_<cloud>`` on another
    cloud, so that each cloud's figures are kept side by side."""
    return NAME if cloud == "gke" else f"{NAME}_{cloud}"


def plot(results: list[dict[str, Any]], name: str, out: Path | None) -> None:
    """Cost and makespan of each policy, relative to the fixed pool."""
    fig, ax = report.figure()
    fixed = results[-1]
    positions = range(len(results))
    ax.bar([p - 0.2 for p in positions], [r["cost_usd"] / fixed["cost_usd"] for r in results], 0.4, label="cost")
    ax.bar([p + 0.2 for p in positions], [r["makespan_h"] / fixed["makespan_h"] for r in results], 0.4,
           label="makespan")
    ax.set_xticks(list(positions), [r["policy"] for r in results])
    ax.set_ylabel("relative to the fixed pool")
    ax.legend()
    report.save_plot(fig, name, out)


def amount(text: str) -> float:
    """A price or a rate as given on the command line: a finite number of 0 or more."""
    return _number(text, lambda value: value >= 0, "a finite number of 0 or more")


def reference_price(text: str) -> float:
    """The on-demand price, which the ratios divide by: a finite number above 0."""
    return _number(text, lambda value: value > 0, "a finite number above 0")


def _number(text: str, fits: Callable[[float], bool], expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and fits(value)):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def arguments() -> argparse.ArgumentParser:
    parser = report.arguments(__doc__, "10 trials, 5 at a time (a smoke run)")
    parser.add_argument("--cloud", choices=sorted(PRICES), default="gke")
    parser.add_argument("--preemptions", type=amount, default=0.05, help="spot interruptions per node-hour")
    parser.add_argument("--spot-price", type=amount, default=None, help="USD per spot node-hour")
    parser.add_argument("--on-demand-price", type=reference_price, default=None, help="USD per on-demand node-hour")
    return parser


def prices(args: argparse.Namespace) -> dict[str, float]:
    """The prices given, else the cloud's list prices (a price of 0 is a price given)."""
    listed = PRICES[args.cloud]
    return {"spot": listed["spot"] if args.spot_price is None else args.spot_price,
            "on_demand": listed["on_demand"] if args.on_demand_price is None else args.on_demand_price}


def main(argv: list[str] | None = None) -> int:
    args = report.parsed(arguments(), argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("katuna").setLevel(logging.ERROR)
    ref = Reference(trials=10, parallelism=5) if args.quick else Reference()
    machine = PRICES[args.cloud]
    given = prices(args)
    with tempfile.TemporaryDirectory() as folder:
        results = [run_policy(p, args.cloud, ref, args.preemptions, given, Path(folder))
                   for p in ("spot", "on_demand", "fixed")]
    print(f"{ref.trials} trials, {ref.parallelism} at a time, {ref.shortest / 60:.0f}-{ref.longest / 60:.0f} min "
          f"each, on {args.cloud} {machine['machine']}; spot interruptions {args.preemptions:.0%} per node-hour")
    print(report.table(["policy", "makespan_h", "node_hours", "measured", "cost_usd", "nodes", "preemptions",
                        "events", "wall_s"],
                       [[r["policy"], r["makespan_h"], r["node_hours"], r["measured_node_hours"], r["cost_usd"],
                         r["nodes"], r["preemptions"], r["events"], r["wall_s"]] for r in results]))
    spot, fixed = results[0], results[2]
    figures: dict[str, Any] = {}
    for r in results:
        for key in ("makespan_h", "node_hours", "cost_usd"):
            figures[f"{r['policy']}_{key}"] = r[key]
    figures["spot_measured_node_hours"] = spot["measured_node_hours"]
    figures["cost_ratio_vs_fixed"] = spot["cost_usd"] / fixed["cost_usd"]
    figures["makespan_ratio_vs_fixed"] = spot["makespan_h"] / fixed["makespan_h"]
    name = result_name(args.cloud)
    report.save(name, {"trials": ref.trials, "parallelism": ref.parallelism, "cloud": args.cloud,
                       "preemptions_per_hour": args.preemptions, "prices": given, "results": results,
                       "figures": figures}, args.out)
    plot(results, name, args.out)
    report.lines(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
