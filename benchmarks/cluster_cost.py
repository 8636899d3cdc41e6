"""What the reference study costs on a cluster: katuna's spot pool against on-demand and a fixed pool.

The reference study (500 trials of a few minutes each, 100 at a time) runs through katuna as the
service wires it (:class:`functions.runtime.Runtime`: every handler, a SQLite store with Optuna's
journal, the Kubernetes executor and the node-pool adapter with their real client libraries)
against the strict stand-ins of the test suite on loopback: the Kubernetes API
(``tests/kube_stub.py``: its Job controller, scheduler, kubelets, cluster autoscaler and pod
garbage collection) and GKE's API (``tests/gke_stub.py``), or EKS's through moto. All of them
read one simulated clock (``tests/kube_standin/clock.py``), which jumps from one due moment to the
next, so each run takes a minute or two of wall time for hours of cluster time. The Knative
parts are played as a cluster runs them (``cluster_simulation.py``): each event delivered to the
handlers (what fails for now retried), every change of a trial Job sent as the ApiServerSource
sends it, and a tick once a simulated minute, as the PingSource's schedule ``* * * * *``.

Each policy runs on a cluster of its own:

* ``spot``: katuna's default, a pool of spot machines that katuna creates when the study
  starts, which the autoscaler grows from 0 to 100 nodes, and which katuna deletes when the study
  ends; a node is interrupted at ``--preemptions`` per node-hour (GKE gives 30 s notice, AWS
  120 s) and its trial starts over on another node: the trial, deaf to SIGTERM as a training
  script run as its container's PID 1 is, runs on until SIGKILL at the end of its grace (GKE's
  node shutdown gives it 15 s, an EKS drain's eviction its own 30 s), and its Job replaces the
  pod 10 s later (the Job controller's back-off);
* ``on_demand``: the same pool of on-demand machines (no interruptions, the full price);
* ``fixed``: 100 on-demand nodes left running, as a Katib cluster is usually sized, counted
  only while the study runs (a lower bound of what they cost);
* ``spot_steady``: the steady state of a team that keeps a ``shared`` spot pool 0..100: an
  earlier study (``spot_shared_first``) creates it, ends, and katuna scales it back to a minimum
  of 0 and, on GKE, resizes it to 0 nodes (on EKS the autoscaler removes each node two
  minutes after its last trial, the unneeded time katuna tags the group it made with); once the cloud
  runs none of them, the measured study is submitted, finds the pool, and is billed the machines from its submission until the
  autoscaler removed its own last node.

Each row gives ``makespan_h`` (submission to the study's end), ``node_hours`` (each machine from
its creation, boot included, until it is gone, as the cloud bills it) and ``cost_usd``
(node-hours at the machine's list price), and where the time went: ``pool_asked_s`` (submission
to katuna's request for the pool), ``first_node_s`` (to the autoscaler's first new machine: the
pool's creation, then its next scan), ``first_trial_s`` (to the first trial's container running:
the node's boot after that), ``launch_wait_s`` (the longest a slot freed by a trial's end waited
for katuna's next Job) and ``tail_s`` (the study's end to its last machine gone, billed as
``after_node_hours``). ``spot_measured_node_hours`` is what katuna itself measured of the spot
pool from the Node objects its ticks listed (a Node exists once its kubelet registers, so the
boot before is not in it). Then the spot pool's ratios to the fixed pool:
``cost_ratio_vs_fixed=`` and ``makespan_ratio_vs_fixed=`` in the steady state, and
``first_study_cost_ratio_vs_fixed=`` and ``first_study_makespan_ratio_vs_fixed=`` for ``spot``,
whose study creates its own pool (targets: <= 0.40 and <= 1.15 at 5% interruptions per
node-hour).

Where the few interruptions of a study land decides its makespan (a trial preempted near the end
runs again from its start), so one run is one draw. The spot policies run once for each of
``--seeds`` (the interruptions' random draws; the trials' run times stay the same), the
interruption-free policies once; each ratio is then the median of the draws' ratios, and
``..._max=`` the worst of them.

List prices (USD per hour, on-demand and spot): GKE ``e2-standard-4`` in us-central1, 0.134 and
0.040; EKS ``m5.xlarge`` in us-east-1, 0.192 and 0.076 — as published on Google Cloud's VM
instance pricing page and the Amazon EC2 on-demand and spot pricing pages (2026-11; spot prices
move, monthly on Google Cloud and continuously on AWS: give today's with ``--spot-price`` and
``--on-demand-price``). A node is Ready 210 s after the autoscaler asks for it (the cluster
autoscaler's FAQ: "on GCE it usually takes 3 to 4 minutes from CA request to when pods can be
scheduled on newly created nodes"); the autoscaler scans the pools every 10 s, growing a pool for
the pods marked unschedulable since its last scan, and removes a node unneeded for 10 minutes,
none within 10 minutes of a scale-up, at most 10 at once (its defaults ``scan-interval``,
``scale-down-unneeded-time``, ``scale-down-delay-after-add`` and ``max-scale-down-parallelism``;
an EKS group's own unneeded time where its Auto Scaling group's tags give one); GKE creates a
pool in 90 s and deletes it in 60 s, its nodes billed until then (the EKS stand-in keeps a node
group ``CREATING`` for 150 s and ``DELETING`` for 120 s).
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import report
from cluster_simulation import PRICES, Reference, Simulation, definition
from standins import Cloud, SimulatedClock, make_cloud

NAME = "cluster_cost"
POLICIES = ("spot", "on_demand", "fixed", "spot_steady")
DRAWN = ("spot", "spot_steady")
"""The policies whose figures depend on the interruptions' draw; the others run once."""
SEEDS = (18, 19, 20, 21, 22)
"""The interruptions' draws of a full run (the first also a smoke run's)."""
SHARED_POOL = "katuna-trials"
"""The pool the studies of ``spot_steady`` share (a shared pool needs a name)."""
QUICK = Reference(trials=6, parallelism=3)
"""The smoke run's study: spot nodes are still taken back at ``--preemptions 2``, on either cloud."""


def run_policy(policy: str, cloud_name: str, ref: Reference, rate: float, prices: dict[str, float],
               folder: Path, seed: int) -> list[dict[str, Any]]:
    """Run the study under ``policy`` on a cluster of its own, its interruptions drawn from
    ``seed``: its row of figures, or for ``spot_steady`` two, the earlier study's that created
    the shared pool, then the measured one's."""
    spot = policy.startswith("spot")
    cloud = make_cloud(cloud_name, SimulatedClock(), rate if spot else 0.0, seed)
    (folder / f"{policy}-{seed}").mkdir()
    sim = Simulation(folder / f"{policy}-{seed}", cloud, ref)
    price = prices["spot" if spot else "on_demand"]
    try:
        if policy == "fixed":
            cloud.fixed_pool(PRICES[cloud_name]["machine"], ref.parallelism)
            sim.until(lambda: len(sim.kube.nodes) >= ref.parallelism)
            return [measure(sim, cloud, policy, definition(ref, cloud_name, None), price)]
        if policy != "spot_steady":
            capacity = "spot" if spot else "on-demand"
            return [measure(sim, cloud, policy, definition(ref, cloud_name, capacity), price)]
        return [measure(sim, cloud, row, definition(ref, cloud_name, "spot", name, SHARED_POOL), price)
                for row, name in (("spot_shared_first", "first"), ("spot_steady", "reference"))]
    finally:
        sim.close()
        cloud.close()


def measure(sim: Simulation, cloud: Cloud, row: str, study: dict[str, Any], price: float) -> dict[str, Any]:
    """Submit ``study`` and run it until it ended and, on a pool, until the cloud runs none of
    the pool's machines any more (a fixed pool's keep running, counted until the study's end):
    its makespan, its node-hours and cost (machines billed from its submission on, so nothing
    of an earlier study on the same cluster counts, whose machines must all be gone by then),
    and where its time went (:class:`~cluster_simulation.Timeline`)."""
    started, submitted, preempted, events = time.perf_counter(), sim.clock.now, cloud.interruptions.count, sim.events
    fixed = study.get("nodePool") is None
    assert fixed or sim.machines_running() == 0, "an earlier study's machines would count in this one's cost"
    record = sim.submit(study)
    sim.until(lambda: sim.released(record) and (fixed or sim.machines_running() == 0))
    record = sim.deps.store.get_study(record.name)
    assert record.status == "completed", (record.status, record.reason)
    end = record.completed_at or sim.clock.now
    until = end if fixed else sim.clock.now
    hours = sim.autoscaler.node_seconds(since=submitted, until=until) / 3600
    machines = [m for m in sim.autoscaler.machines.values() if m.seconds(submitted, until) > 0]
    asked = [m.created - submitted for m in machines if m.created >= submitted]
    use, timeline = sim.deps.store.pool_use(record.uid), sim.timelines[record.name]
    return {"policy": row, "seed": cloud.interruptions.seed if cloud.interruptions.per_hour else None,
            "makespan_h": (end - submitted) / 3600, "node_hours": hours,
            "measured_node_hours": use.node_hours(sim.clock.now) if use else hours,
            "cost_usd": hours * price, "price_per_hour": price, "nodes": len(machines),
            "after_node_hours": sim.autoscaler.node_seconds(since=end, until=until) / 3600,
            "pool_asked_s": use.requested_at - submitted if use else None,
            "first_job_s": min(timeline.created) - submitted, "first_node_s": min(asked, default=None),
            "first_trial_s": timeline.first_trial(submitted),
            "launch_wait_s": timeline.launch_wait(record.spec.parallelism),
            "tail_s": 0.0 if fixed else max(m.removed for m in machines) - end,
            "preemptions": cloud.interruptions.count - preempted,
            "complete": sim.deps.store.count_trials(record.name).complete, "events": sim.events - events,
            "wall_s": time.perf_counter() - started}


def result_name(cloud: str) -> str:
    """The name of a run's files: ``cluster_cost`` on GKE, ``cluster_cost_<cloud>`` on another
    cloud, so that each cloud's figures are kept side by side."""
    return NAME if cloud == "gke" else f"{NAME}_{cloud}"


def plot(results: list[dict[str, Any]], name: str, out: Path | None) -> None:
    """Cost and makespan of each policy relative to the fixed pool: a bar each for the median
    of its draws, each draw a point on it where there are several."""
    fig, ax = report.figure()
    fixed = next(r for r in results if r["policy"] == "fixed")
    policies = list(dict.fromkeys(r["policy"] for r in results))
    for offset, key, label in ((-0.2, "cost_usd", "cost"), (0.2, "makespan_h", "makespan")):
        draws = [[r[key] / fixed[key] for r in results if r["policy"] == policy] for policy in policies]
        ax.bar([p + offset for p in range(len(policies))], [statistics.median(d) for d in draws], 0.4, label=label)
        points = [(p + offset, value) for p, d in enumerate(draws) if len(d) > 1 for value in d]
        if points:
            ax.scatter(*zip(*points), color="black", s=8)
    ax.set_xticks(list(range(len(policies))), [policy.replace("_", "\n", 1) for policy in policies])
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


def seeds(text: str) -> list[int]:
    """The interruptions' draws as given on the command line: distinct whole numbers, comma-separated."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct whole numbers separated by commas, got {text!r}")
    return values


def arguments() -> argparse.ArgumentParser:
    parser = report.arguments(__doc__, f"{QUICK.trials} trials, {QUICK.parallelism} at a time (a smoke run)")
    parser.add_argument("--cloud", choices=sorted(PRICES), default="gke")
    parser.add_argument("--preemptions", type=amount, default=0.05, help="spot interruptions per node-hour")
    parser.add_argument("--spot-price", type=amount, default=None, help="USD per spot node-hour")
    parser.add_argument("--on-demand-price", type=reference_price, default=None, help="USD per on-demand node-hour")
    parser.add_argument("--seeds", type=seeds, default=None,
                        help=f"the spot interruptions' draws (default {','.join(map(str, SEEDS))}; "
                             f"--quick: {SEEDS[0]})")
    return parser


def prices(args: argparse.Namespace) -> dict[str, float]:
    """The prices given, else the cloud's list prices (a price of 0 is a price given)."""
    listed = PRICES[args.cloud]
    return {"spot": listed["spot"] if args.spot_price is None else args.spot_price,
            "on_demand": listed["on_demand"] if args.on_demand_price is None else args.on_demand_price}


def ratios(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The closing figures: each row's (the median of its draws), then the spot pool's ratios to
    the fixed pool, in the steady state (``spot_steady``: the names the target is stated in) and
    for a study that creates its own pool (``spot``: ``first_study_``), each the median of the
    draws' ratios and, over several draws, the worst of them (``_max``)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        rows.setdefault(r["policy"], []).append(r)
    figures: dict[str, Any] = {}
    for policy, draws in rows.items():
        for key in ("makespan_h", "node_hours", "cost_usd", "first_trial_s", "launch_wait_s"):
            figures[f"{policy}_{key}"] = statistics.median(r[key] for r in draws)
    figures["spot_measured_node_hours"] = statistics.median(r["measured_node_hours"] for r in rows["spot"])
    fixed = rows["fixed"][0]
    for prefix, policy in (("first_study_", "spot"), ("", "spot_steady")):
        for key, name in (("cost_usd", "cost"), ("makespan_h", "makespan")):
            drawn = [r[key] / fixed[key] for r in rows[policy]]
            figures[f"{prefix}{name}_ratio_vs_fixed"] = statistics.median(drawn)
            if len(drawn) > 1:
                figures[f"{prefix}{name}_ratio_vs_fixed_max"] = max(drawn)
    return figures


def main(argv: list[str] | None = None) -> int:
    args = report.parsed(arguments(), argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("katuna").setLevel(logging.ERROR)
    ref = QUICK if args.quick else Reference()
    machine = PRICES[args.cloud]
    given = prices(args)
    draws = args.seeds or list(SEEDS[:1] if args.quick else SEEDS)
    with tempfile.TemporaryDirectory() as folder:
        results = [row for seed in draws for p in POLICIES if p in DRAWN or seed == draws[0]
                   for row in run_policy(p, args.cloud, ref, args.preemptions, given, Path(folder), seed)]
    print(f"{ref.trials} trials, {ref.parallelism} at a time, {ref.shortest / 60:.0f}-{ref.longest / 60:.0f} min "
          f"each, on {args.cloud} {machine['machine']}; spot interruptions {args.preemptions:.0%} per node-hour, "
          f"drawn from seeds {', '.join(map(str, draws))}")
    columns = ["policy", "seed", "makespan_h", "node_hours", "after_node_hours", "measured_node_hours", "cost_usd", "nodes",
               "first_node_s", "first_trial_s", "launch_wait_s", "tail_s", "preemptions", "events", "wall_s"]
    print(report.table(columns, [[r[c] for c in columns] for r in results]))
    figures = ratios(results)
    name = result_name(args.cloud)
    report.save(name, {"trials": ref.trials, "parallelism": ref.parallelism, "cloud": args.cloud,
                       "preemptions_per_hour": args.preemptions, "seeds": draws, "prices": given, "results": results,
                       "figures": figures}, args.out)
    plot(results, name, args.out)
    report.lines(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
