"""Control-plane overhead: katuna's embedded default vs Optuna's own ``study.optimize``.

Both run the same trivial subprocess trial N times with parallelism 2 and the same sampler
(TPE). Prints a table, writes ``benchmarks/results/overhead.json``, and ends with
``name=value`` lines; the last is ``overhead_ratio=<katuna wall / optuna wall>``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

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


def run_katuna(trials: int, workdir: Path) -> float:
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
    start = time.perf_counter()
    record = runner.run("overhead")
    wall = time.perf_counter() - start
    complete = runner.store.count_trials("overhead").complete
    runner.close()
    assert record.status == "completed" and complete == trials, (record, complete)
    return wall


def run_optuna(trials: int) -> float:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -10.0, 10.0)
        out = subprocess.run([sys.executable, str(TRIAL), repr(x)], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().split("=", 1)[1])

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=2)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--trials", type=int, default=200)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bare = bare_trial_seconds()
    ideal = bare * args.trials / 2
    with tempfile.TemporaryDirectory() as tmp:
        katuna_wall = run_katuna(args.trials, Path(tmp))
    optuna_wall = run_optuna(args.trials)
    rows = {
        "katuna": katuna_wall,
        "optuna": optuna_wall,
    }
    print(f"{args.trials} trials, parallelism 2; bare trial {bare * 1000:.1f} ms; ideal wall {ideal:.2f} s")
    print(f"{'tuner':<8} {'wall s':>8} {'per trial ms':>13} {'overhead/trial ms':>18}")
    for name, wall in rows.items():
        per_trial = wall / args.trials * 2
        print(f"{name:<8} {wall:8.2f} {per_trial * 1000:13.1f} {(per_trial - bare) * 1000:18.1f}")
    ratio = katuna_wall / optuna_wall
    result = {"trials": args.trials, "bare_trial_ms": bare * 1000, "katuna_wall_s": katuna_wall,
              "optuna_wall_s": optuna_wall, "overhead_ratio": ratio}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "overhead.json").write_text(json.dumps(result, indent=2))
    print(f"katuna_wall_s={katuna_wall:.3f}")
    print(f"optuna_wall_s={optuna_wall:.3f}")
    print(f"overhead_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
