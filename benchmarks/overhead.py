"""Control-plane overhead: katuna's embedded default vs Optuna's own ``study.optimize``.

Both run the same trivial subprocess trial N times with parallelism 2 and the same sampler
(TPE). Optuna runs twice: with its default in-memory storage (the headline comparison) and
with a journal file (a storage that, like katuna's, survives the process). Prints a table,
writes ``benchmarks/results/overhead.json`` and ``overhead.png``, and ends with ``name=value``
lines; the last is ``overhead_ratio=<katuna wall / optuna in-memory wall>`` (target <= 1.10),
the median over rounds of the ratio within a round.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import report

from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings

HERE = Path(__file__).parent
TRIAL = HERE / "trivial_trial.py"


def bare_trial_seconds(samples: int = 20) -> float:
    """Wall time of the trial process alone, run back to back."""
    start = time.perf_counter()
    for _ in range(samples):
        subprocess.run([sys.executable, str(TRIAL), "1.0"], capture_output=True, check=True)
    return (time.perf_counter() - start) / samples


def cpu_seconds() -> float:
    """CPU time of this process alone (the tuner's control plane, not its trial processes)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(run, *args) -> tuple[float, float]:
    """Wall seconds and control-plane CPU seconds of ``run(*args)``."""
    cpu, start = cpu_seconds(), time.perf_counter()
    run(*args)
    return time.perf_counter() - start, cpu_seconds() - cpu


def run_katuna(trials: int, workdir: Path) -> None:
    definition = {
        "name": "overhead",
        "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": -10.0, "max": 10.0}],
        "algorithm": {"name": "tpe", "seed": 1},
        "parallelism": 2,
        "maxTrials": trials,
        "trialTemplate": {"command": [sys.executable, str(TRIAL), "${trialParameters.x}"]},
    }
    runner = Embedded(Settings(db=workdir / "katuna.db"))
    runner.submit(parse_study(definition), definition, workdir)
    record = runner.run("overhead")
    complete = runner.store.count_trials("overhead").complete
    runner.close()
    assert record.status == "completed" and complete == trials, (record, complete)


def run_optuna(trials: int, journal: Path | None = None) -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -10.0, 10.0)
        out = subprocess.run([sys.executable, str(TRIAL), repr(x)], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().split("=", 1)[1])

    storage = None
    if journal is not None:
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1), storage=storage)
    study.optimize(objective, n_trials=trials, n_jobs=2)


def measure(trials: int, rounds: int, workdir: Path | None) -> dict[str, list[tuple[float, float]]]:
    """Wall and CPU seconds of each tuner, round by round. Each round runs all three back to
    back, in alternating order, so a machine whose speed drifts slows both sides of a ratio alike."""
    runs: dict[str, list[tuple[float, float]]] = {"katuna": [], "optuna": [], "optuna+journal": []}
    for number in range(rounds):
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            tuners = {"katuna": (run_katuna, trials, Path(tmp)), "optuna": (run_optuna, trials),
                      "optuna+journal": (run_optuna, trials, Path(tmp) / "optuna.log")}
            for name in list(tuners)[::1 if number % 2 == 0 else -1]:
                runs[name].append(timed(*tuners[name]))
    return runs


def paired_ratio(ours: list[tuple[float, float]], theirs: list[tuple[float, float]]) -> float:
    """The median over rounds of the wall-time ratio within each round."""
    return statistics.median(mine[0] / other[0] for mine, other in zip(ours, theirs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--trials", type=int, default=200)
    parser.add_argument("-r", "--repeats", type=int, default=9, help="rounds; the median counts")
    parser.add_argument("--quick", action="store_true", help="10 trials, one run of each (a smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="where results go (default benchmarks/results)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where katuna's database and trial logs go, in a fresh directory per run "
                             "(default: the system's temporary directory)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.repeats = 10, 1
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bare = bare_trial_seconds(3 if args.quick else 20)
    runs = measure(args.trials, args.repeats, args.workdir)
    median = {name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for name, r in runs.items()}
    print(f"{args.trials} trials, parallelism 2, median of {args.repeats} rounds; bare trial process {bare * 1000:.1f} ms")
    print(f"{'tuner':<15} {'wall s':>8} {'per trial ms':>13} {'control-plane CPU/trial ms':>27}")
    for name, (wall, cpu) in median.items():
        print(f"{name:<15} {wall:8.2f} {wall / args.trials * 2000:13.1f} {cpu / args.trials * 1000:27.1f}")
    ratio = paired_ratio(runs["katuna"], runs["optuna"])
    persistent_ratio = paired_ratio(runs["katuna"], runs["optuna+journal"])
    result = {"trials": args.trials, "repeats": args.repeats, "bare_trial_ms": bare * 1000,
              "runs": runs, "overhead_ratio": ratio, "overhead_ratio_vs_persistent": persistent_ratio}
    report.save("overhead", result, args.out)
    fig, ax = report.figure()
    names = list(median)
    ax.bar([n.replace("+", "\n+") for n in names], [median[n][1] / args.trials * 1000 for n in names],
           color=["tab:blue", "tab:orange", "tab:green"])
    for i, n in enumerate(names):
        ax.annotate(f"{median[n][0]:.2f} s wall", (i, median[n][1] / args.trials * 1000), ha="center",
                    va="bottom", fontsize=8)
    ax.set_ylabel("control-plane CPU per trial, ms")
    ax.set_title(f"{args.trials} subprocess trials, parallelism 2: overhead_ratio={ratio:.3f} (target <= 1.10)",
                 fontsize=10)
    report.save_plot(fig, "overhead", args.out)
    print(f"katuna_wall_s={median['katuna'][0]:.3f}")
    print(f"optuna_wall_s={median['optuna'][0]:.3f}")
    print(f"katuna_cpu_ms_per_trial={median['katuna'][1] / args.trials * 1000:.2f}")
    print(f"optuna_cpu_ms_per_trial={median['optuna'][1] / args.trials * 1000:.2f}")
    print(f"optuna_journal_wall_s={median['optuna+journal'][0]:.3f}")
    print(f"overhead_ratio_vs_persistent={persistent_ratio:.3f}")
    print(f"overhead_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
