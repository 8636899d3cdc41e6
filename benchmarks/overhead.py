"""Control-plane overhead: katuna's embedded default vs Optuna's own ``study.optimize``.

Both run the same trivial subprocess trial N times with parallelism 2 and the same sampler
(TPE). Optuna runs three times: with its default in-memory storage (the headline comparison),
with a journal file (a storage that, like katuna's, survives the process) and with its RDB
storage on SQLite (what optuna-dashboard users run). Where Ray Tune is installed
(``make bench-peers``), Ray Tune runs in the same rounds too, on fewer trials, with its defaults
and tuned (see ``peers.py``); its figures are per trial. Prints a table,
writes ``benchmarks/results/overhead.json`` and ``overhead.png``, and ends with ``name=value``
lines; the last is ``overhead_ratio=<katuna wall / optuna in-memory wall>`` (target <= 0.95),
the median over rounds of the ratio within a round. ``optuna_rdb_ratio``, ``ray_ratio`` and
``ray_default_ratio`` are katuna's wall time (per trial, for Ray) over each peer's, likewise.

Besides wall time, each run's CPU is split into the tuner's own process (its control plane) and
its trial processes (``RUSAGE_CHILDREN``: the trials it waited for). With both cores busy, wall
time follows the CPU spent per trial; ``cpu_ratio`` is katuna's whole CPU (its process and its
trials') over Optuna's, paired by round like ``overhead_ratio``, and ``floor_ratio`` the
``overhead_ratio`` of a tuner whose process spent nothing but TPE's own sampling time on
Optuna's trial processes: no tuner of this sampler gets below it on a machine whose cores are
all busy.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import peers
import report

from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings


def bare_trial_seconds(samples: int = 20) -> float:
    """Wall time of the trial process alone, run back to back."""
    start = time.perf_counter()
    for _ in range(samples):
        subprocess.run(peers.trial_command("1.0"), capture_output=True, check=True)
    return (time.perf_counter() - start) / samples


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """CPU time of this process alone (the tuner's control plane), or of the children it waited
    for (``RUSAGE_CHILDREN``: its trial processes)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed(run, *args) -> tuple[float, float, float]:
    """Wall seconds, control-plane CPU seconds and trial processes' CPU seconds of ``run(*args)``."""
    cpu, trials, start = cpu_seconds(), cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    run(*args)
    return time.perf_counter() - start, cpu_seconds() - cpu, cpu_seconds(resource.RUSAGE_CHILDREN) - trials


def run_katuna(trials: int, workdir: Path) -> None:
    definition = {
        "name": "overhead",
        "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": -10.0, "max": 10.0}],
        "algorithm": {"name": "tpe", "seed": 1},
        "parallelism": 2,
        "maxTrials": trials,
        "trialTemplate": {"command": peers.trial_command("${trialParameters.x}")},
    }
    runner = Embedded(Settings(db=workdir / "katuna.db"))
    runner.submit(parse_study(definition), definition, workdir)
    record = runner.run("overhead")
    complete = runner.store.count_trials("overhead").complete
    runner.close()
    assert record.status == "completed" and complete == trials, (record, complete)


def run_optuna(trials: int, journal: Path | None = None) -> None:
    def objective(trial: optuna.Trial) -> float:
        return peers.trial_loss(trial.suggest_float("x", -10.0, 10.0))

    storage = None
    if journal is not None:
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1), storage=storage)
    study.optimize(objective, n_trials=trials, n_jobs=2)


def peer_tuners(trials: int, ray_trials: int, workdir: Path) -> dict[str, tuple]:
    """The peers' runs of one round: Optuna on its RDB storage and, when asked, Ray Tune twice (in
    its own process, which reports ``Tuner.fit``'s wall seconds and ``ray.init``'s)."""
    tuners: dict[str, tuple] = {"optuna+rdb": (timed, peers.run_optuna_rdb, trials, workdir / "optuna.db")}
    if ray_trials:
        tuners.update({f"ray+{variant}": (peers.run_ray, ray_trials, variant, workdir) for variant in peers.RAY_VARIANTS})
    return tuners


def measure(trials: int, rounds: int, workdir: Path | None, ray_trials: int = 0) -> dict[str, list[tuple[float, float]]]:
    """Wall and CPU seconds of each tuner, round by round (for Ray: wall and ``ray.init`` seconds of
    ``ray_trials`` trials). Each round runs all of them back to back, in alternating order, so a
    machine whose speed drifts slows both sides of a ratio alike."""
    runs: dict[str, list[tuple[float, float]]] = {}
    for number in range(rounds):
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            tuners = {"katuna": (timed, run_katuna, trials, Path(tmp)), "optuna": (timed, run_optuna, trials),
                      "optuna+journal": (timed, run_optuna, trials, Path(tmp) / "optuna.log"),
                      **peer_tuners(trials, ray_trials, Path(tmp))}
            for name in list(tuners)[::1 if number % 2 == 0 else -1]:
                measured, *args = tuners[name]
                runs.setdefault(name, []).append(measured(*args))
    return runs


def paired_ratio(ours: list[tuple[float, ...]], theirs: list[tuple[float, ...]]) -> float:
    """The median over rounds of the wall-time ratio within each round."""
    return statistics.median(mine[0] / other[0] for mine, other in zip(ours, theirs))


def cpu_ratio(ours: list[tuple[float, ...]], theirs: list[tuple[float, ...]]) -> float:
    """The median over rounds of the ratio of whole CPU (tuner and trials) within each round."""
    return statistics.median((mine[1] + mine[2]) / (other[1] + other[2]) for mine, other in zip(ours, theirs))


def floor_ratio(theirs: list[tuple[float, ...]], sampler_s: float) -> float:
    """``overhead_ratio`` on a CPU-bound machine of a tuner whose process spent nothing but
    ``sampler_s`` (TPE's own sampling time for the same trials) on the same trial processes:
    how far below Optuna's loop any tuner of this sampler can get."""
    return statistics.median((other[2] + sampler_s) / (other[1] + other[2]) for other in theirs)


def sampler_seconds(trials: int) -> float:
    """CPU seconds TPE spends suggesting ``trials`` trials of the benchmark's space, told their
    results as they come (2 running, as in ``optimize(n_jobs=2)``): the sampler's share of any
    tuner's control plane."""
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    running: list[optuna.Trial] = []
    spent = 0.0
    for _ in range(trials):
        start = time.thread_time()
        trial = study.ask()
        x = trial.suggest_float("x", -10.0, 10.0)
        spent += time.thread_time() - start
        running.append(trial)
        if len(running) == 2:
            study.tell(running.pop(0), (x - 2) ** 2)
    return spent


def chosen_trial_python(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The Python the trials run with, handed to every tuner (Ray's processes included)."""
    if args.trial_python is None:
        return sys.executable
    if not (args.trial_python.is_file() and os.access(args.trial_python, os.X_OK)):
        parser.error(f"--trial-python: expected an executable Python, got {str(args.trial_python)!r}")
    os.environ[peers.TRIAL_PYTHON] = str(args.trial_python)
    return str(args.trial_python)


def ray_trials_asked(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """How many trials each Ray Tune run gets: 0 when Ray is off, or not installed and not asked for."""
    if args.ray == "on" and not peers.ray_installed():
        parser.error("--ray on: Ray Tune is not installed in this interpreter; `make bench-peers` installs "
                     "benchmarks/requirements-peers.lock into .venv-peers and runs this benchmark there")
    if args.ray == "off" or not peers.ray_installed():
        return 0
    return 4 if args.quick else args.ray_trials


def per_trial_ratio(ours: list[tuple[float, float]], trials: int, theirs: list[tuple[float, float]],
                    their_trials: int) -> float:
    """The median over rounds of katuna's wall time per trial over the peer's, within each round."""
    return statistics.median((mine[0] / trials) / (other[0] / their_trials) for mine, other in zip(ours, theirs))


def report_peers(runs: dict[str, list[tuple[float, float]]], trials: int, ray_trials: int) -> dict[str, float]:
    """Print the peers' table lines and return their ratios (and Ray's figures) by name."""
    figures = {"optuna_rdb_wall_s": statistics.median(r[0] for r in runs["optuna+rdb"]),
               "optuna_rdb_ratio": paired_ratio(runs["katuna"], runs["optuna+rdb"])}
    if not ray_trials:
        print("Ray Tune: not installed in this interpreter (or --ray off); `make bench-peers` runs it")
        return figures
    print(f"Ray Tune, {ray_trials} trials a run, 2 at a time; wall of Tuner.fit, ray.init apart:")
    print(f"{'tuner':<15} {'wall s':>8} {'ms a trial':>13} {'ray.init s':>11}")
    for variant in peers.RAY_VARIANTS:
        name = f"ray+{variant}"
        wall, init = (statistics.median(w for w, _ in runs[name]), statistics.median(i for _, i in runs[name]))
        print(f"{name:<15} {wall:8.2f} {wall / ray_trials * 1000:13.1f} {init:11.2f}")
        prefix = "ray" if variant == "tuned" else f"ray_{variant}"
        figures[f"{prefix}_wall_ms_per_trial"] = wall / ray_trials * 1000
        figures[f"{prefix}_init_s"] = init
        figures[f"{prefix}_ratio"] = per_trial_ratio(runs["katuna"], trials, runs[name], ray_trials)
    return figures


def main() -> None:
    parser = report.arguments(__doc__, "10 trials, one run of each (a smoke run)")
    parser.add_argument("-n", "--trials", type=int, default=200)
    parser.add_argument("-r", "--repeats", type=int, default=9, help="rounds; the median counts")
    parser.add_argument("--ray", choices=["auto", "on", "off"], default="auto",
                        help="run Ray Tune beside katuna (auto: when installed; `make bench-peers`)")
    parser.add_argument("--ray-trials", type=int, default=20,
                        help="trials of each Ray Tune run (Ray costs seconds a trial; --quick: 4)")
    parser.add_argument("--trial-python", type=Path, default=None,
                        help="the Python every tuner runs the trial process with (default: this one; "
                             "one with an editable install's import hook starts in twice the time)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where katuna's database and trial logs go, in a fresh directory per run "
                             "(default: the system's temporary directory)")
    args = report.parsed(parser)
    if args.quick:
        args.trials, args.repeats = 10, 1
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial_python = chosen_trial_python(args, parser)
    ray_trials = ray_trials_asked(args, parser)
    bare = bare_trial_seconds(3 if args.quick else 20)
    runs = measure(args.trials, args.repeats, args.workdir, ray_trials)
    median = {name: tuple(statistics.median(run[i] for run in r) for i in range(3))
              for name, r in runs.items() if not name.startswith("ray+")}
    sampler = sampler_seconds(args.trials)
    print(f"{args.trials} trials, parallelism 2, median of {args.repeats} rounds; bare trial process {bare * 1000:.1f} ms; "
          f"TPE's own sampling {sampler / args.trials * 1000:.2f} ms CPU a trial; trial Python {trial_python}")
    print(f"{'tuner':<15} {'wall s':>8} {'per trial ms':>13} {'control-plane CPU/trial ms':>27} {'trial CPU/trial ms':>19}")
    for name, (wall, cpu, trial_cpu) in median.items():
        print(f"{name:<15} {wall:8.2f} {wall / args.trials * 2000:13.1f} {cpu / args.trials * 1000:27.1f} "
              f"{trial_cpu / args.trials * 1000:19.1f}")
    ratio = paired_ratio(runs["katuna"], runs["optuna"])
    persistent_ratio = paired_ratio(runs["katuna"], runs["optuna+journal"])
    cpu_figures = {"cpu_ratio": cpu_ratio(runs["katuna"], runs["optuna"]),
                   "floor_ratio": floor_ratio(runs["optuna"], sampler),
                   "sampler_cpu_ms_per_trial": sampler / args.trials * 1000}
    peer_figures = report_peers(runs, args.trials, ray_trials)
    result = {"trials": args.trials, "repeats": args.repeats, "bare_trial_ms": bare * 1000, "trial_python": trial_python,
              "runs": runs, "overhead_ratio": ratio, "overhead_ratio_vs_persistent": persistent_ratio,
              "ray_trials": ray_trials, **cpu_figures, **peer_figures}
    report.save("overhead", result, args.out)
    fig, ax = report.figure()
    names = list(median)
    ax.bar([n.replace("+", "\n+") for n in names], [median[n][1] / args.trials * 1000 for n in names],
           color=["tab:blue", "tab:orange", "tab:green", "tab:red"])
    for i, n in enumerate(names):
        ax.annotate(f"{median[n][0]:.2f} s wall", (i, median[n][1] / args.trials * 1000), ha="center",
                    va="bottom", fontsize=8)
    ax.set_ylabel("control-plane CPU per trial, ms")
    ax.set_title(f"{args.trials} subprocess trials, parallelism 2: overhead_ratio={ratio:.3f} (target <= 0.95)",
                 fontsize=10)
    report.save_plot(fig, "overhead", args.out)
    print(f"katuna_wall_s={median['katuna'][0]:.3f}")
    print(f"optuna_wall_s={median['optuna'][0]:.3f}")
    print(f"katuna_cpu_ms_per_trial={median['katuna'][1] / args.trials * 1000:.2f}")
    print(f"optuna_cpu_ms_per_trial={median['optuna'][1] / args.trials * 1000:.2f}")
    print(f"katuna_trial_cpu_ms_per_trial={median['katuna'][2] / args.trials * 1000:.2f}")
    print(f"optuna_trial_cpu_ms_per_trial={median['optuna'][2] / args.trials * 1000:.2f}")
    for name, value in cpu_figures.items():
        print(f"{name}={value:.3f}")
    print(f"optuna_journal_wall_s={median['optuna+journal'][0]:.3f}")
    print(f"overhead_ratio_vs_persistent={persistent_ratio:.3f}")
    for name, value in peer_figures.items():
        print(f"{name}={value:.3f}")
    print(f"overhead_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
