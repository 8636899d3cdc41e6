"""What the reference study costs on a cluster: katuna's spot pool against on-demand and a fixed pool.

The reference study (500 trials of a few minutes each, 100 at a time) runs three times through
katuna's real control plane (the dispatcher and every handler, a SQLite store with Optuna's
journal, the PingSource's tick once a simulated minute) on a simulated clock
(:mod:`simcluster`: node boot, the cluster autoscaler, spot preemptions with the cloud's notice,
the trials' run times), so each run takes seconds of wall time for hours of cluster time:

* ``spot``: katuna's default, a pool of spot machines that katuna creates when the study
  starts, which the autoscaler grows from 0 to 100 nodes, and which katuna deletes when the study
  ends; a node is preempted at ``--preemptions`` per node-hour (GKE gives 30 s notice, AWS 120 s),
  and its trial starts over on another node;
* ``on_demand``: the same pool of on-demand machines (no preemptions, the full price);
* ``fixed``: 100 on-demand nodes left running, as a Katib cluster is usually sized, counted
  only while the study runs (a lower bound of what they cost).

Each prints ``makespan_h`` (submission to the study's end), ``node_hours`` (each node from its
creation until it is gone) and ``cost_usd`` (node-hours at the machine's list price), and
``spot_measured_node_hours``: what katuna itself measured of the spot pool from the Node
objects its ticks listed (a Node exists once its kubelet registers, so the boot before is not
in it); then
``cost_ratio_vs_fixed=`` and ``makespan_ratio_vs_fixed=`` of the spot pool over the fixed pool
(targets: <= 0.40 and <= 1.15 at 5% preemptions per hour).

List prices (USD per hour, on-demand and spot): GKE ``e2-standard-4`` in us-central1, 0.134 and
0.040; EKS ``m5.xlarge`` in us-east-1, 0.192 and 0.076 — as published on Google Cloud's VM
instance pricing page and the Amazon EC2 on-demand and spot pricing pages (2026-11; spot prices
move, monthly on Google Cloud and continuously on AWS: give today's with ``--spot-price`` and
``--on-demand-price``). Node boot takes 90 s, creating or deleting a pool 60 s, and the autoscaler
removes a node idle for 10 minutes (its default ``scale-down-unneeded-time``).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import report
from simcluster import Machine, SimCluster, SimExecutor, SimNodePools, SimNodes

from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import Event, pool_check, study_created
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps

NAME = "cluster_cost"
CLOUDS = {
    "gke": {"machine": "e2-standard-4", "on_demand": 0.134, "spot": 0.040, "notice": 30.0},
    "eks": {"machine": "m5.xlarge", "on_demand": 0.192, "spot": 0.076, "notice": 120.0},
}
MAX_SIMULATED = 7 * 86400.0
"""Simulated seconds after which a run that has not ended is an error, not a wait."""
TICK_SECONDS = 60.0
"""The PingSource's period: provision and reconcile look at the study once a simulated minute."""


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
        machine = {"machineType": CLOUDS[cloud]["machine"]} if cloud == "gke" else {
            "instanceTypes": [CLOUDS[cloud]["machine"]]}
        study["nodePool"] = {"provider": cloud, "capacity": capacity, "maxNodes": ref.parallelism, **machine}
    return study


class Run:
    """One policy's run: the simulated cluster behind katuna's ports, and the events in flight."""

    def __init__(self, db: Path, machine: Machine, ref: Reference, cloud: str) -> None:
        self.cluster = SimCluster(machine, ref.seed)
        self.queue: deque[Event] = deque()
        self.store = SqliteStore(db)
        executor = SimExecutor(self.cluster, self.queue.append, ref.seconds,
                               lambda params: (float(params.get("x", 0.0)) - 2.0) ** 2)
        self.deps = Deps(self.store, executor, self.cluster.clock, node_pools=SimNodePools(self.cluster, cloud),
                         nodes=SimNodes(self.cluster))
        self.dispatcher = Dispatcher(self.deps)
        self.events = 0

    def study(self, study: dict[str, Any]) -> StudyRecord:
        """Submit the study, then deliver events and move the clock until it ends and its pool is released."""
        record = self.store.add_study(StudyRecord(parse_study(study), study, ".", "uid-reference",
                                                  created_at=self.cluster.now))
        self.queue.append(study_created(record.name, record.uid))
        self._tick()
        while True:
            self._drain()
            if self._done(record.name) or not self.cluster.advance():
                return self.store.get_study(record.name)
            if self.cluster.now - self.cluster.start > MAX_SIMULATED:
                raise RuntimeError(f"the study did not end in {MAX_SIMULATED / 86400:.0f} simulated days")

    def _tick(self) -> None:
        self.queue.append(pool_check())
        self.cluster.at(self.cluster.now + TICK_SECONDS, self._tick)

    def _drain(self) -> None:
        while self.queue:
            self.queue.extend(self.dispatcher.deliver(self.queue.popleft()))
            self.events += 1

    def _done(self, name: str) -> bool:
        """The study ended, and katuna saw the last node of its pool go (a fixed pool stays)."""
        record = self.store.get_study(name)
        use = self.store.pool_use(record.uid)
        return record.terminal and (use is None or not use.watching(self.cluster.now))

    def close(self) -> None:
        self.store.close()


def run_policy(policy: str, cloud: str, ref: Reference, rate: float, prices: dict[str, float],
               folder: Path) -> dict[str, Any]:
    """Run the study under ``policy``; its makespan, node-hours and cost."""
    spot = policy == "spot"
    machine = Machine(CLOUDS[cloud]["machine"], prices["spot" if spot else "on_demand"], rate if spot else 0.0,
                      CLOUDS[cloud]["notice"])
    run = Run(folder / f"{policy}.db", machine, ref, cloud)
    try:
        started = time.perf_counter()
        if policy == "fixed":
            run.cluster.resize(ref.parallelism, ref.parallelism, boot=False)
        submitted = run.cluster.now
        record = run.study(definition(ref, cloud, None if policy == "fixed" else
                                           "spot" if spot else "on-demand"))
        assert record.status == "completed", (record.status, record.reason)
        end = record.completed_at or run.cluster.now
        hours = run.cluster.node_seconds(until=end) / 3600
        use = run.store.pool_use(record.uid)
        return {"policy": policy, "measured_node_hours": use.node_hours(run.cluster.now) if use else hours, "makespan_h": (end - submitted) / 3600, "node_hours": hours,
                "cost_usd": hours * machine.price_per_hour, "price_per_hour": machine.price_per_hour,
                "nodes": len(run.cluster.pool.nodes), "preemptions": run.cluster.preemptions,
                "complete": run.store.count_trials(record.name).complete, "events": run.events,
                "wall_s": time.perf_counter() - started}
    finally:
        run.close()


def plot(results: list[dict[str, Any]], out: Path | None) -> None:
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
    report.save_plot(fig, NAME, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 trials, 10 at a time (a smoke run)")
    parser.add_argument("--cloud", choices=sorted(CLOUDS), default="gke")
    parser.add_argument("--preemptions", type=float, default=0.05, help="spot preemptions per node-hour")
    parser.add_argument("--spot-price", type=float, default=None, help="USD per spot node-hour")
    parser.add_argument("--on-demand-price", type=float, default=None, help="USD per on-demand node-hour")
    parser.add_argument("--out", type=Path, default=None, help="where results go (default benchmarks/results)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ref = Reference(trials=40, parallelism=10) if args.quick else Reference()
    cloud = CLOUDS[args.cloud]
    prices = {"spot": args.spot_price or cloud["spot"], "on_demand": args.on_demand_price or cloud["on_demand"]}
    with tempfile.TemporaryDirectory() as folder:
        results = [run_policy(p, args.cloud, ref, args.preemptions, prices, Path(folder))
                   for p in ("spot", "on_demand", "fixed")]
    print(f"{ref.trials} trials, {ref.parallelism} at a time, {ref.shortest / 60:.0f}-{ref.longest / 60:.0f} min "
          f"each, on {args.cloud} {cloud['machine']}; spot preemptions {args.preemptions:.0%} per node-hour")
    print(report.table(["policy", "makespan_h", "node_hours", "measured", "cost_usd", "nodes", "preemptions", "wall_s"],
                       [[r["policy"], r["makespan_h"], r["node_hours"], r["measured_node_hours"], r["cost_usd"],
                         r["nodes"], r["preemptions"], r["wall_s"]] for r in results]))
    spot, fixed = results[0], results[2]
    figures: dict[str, Any] = {}
    for r in results:
        for key in ("makespan_h", "node_hours", "cost_usd"):
            figures[f"{r['policy']}_{key}"] = r[key]
    figures["spot_measured_node_hours"] = spot["measured_node_hours"]
    figures["cost_ratio_vs_fixed"] = spot["cost_usd"] / fixed["cost_usd"]
    figures["makespan_ratio_vs_fixed"] = spot["makespan_h"] / fixed["makespan_h"]
    report.save(NAME, {"trials": ref.trials, "parallelism": ref.parallelism, "cloud": args.cloud,
                       "preemptions_per_hour": args.preemptions, "prices": prices, "results": results,
                       "figures": figures}, args.out)
    plot(results, args.out)
    report.lines(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
