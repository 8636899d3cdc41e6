"""The tuners a user would pick instead of katuna, run on the overhead benchmark's trial.

``benchmarks/overhead.py`` runs these beside katuna in its paired rounds:

* Optuna's ``study.optimize(n_jobs=2)`` on its RDB storage over a SQLite file (what
  ``optuna-dashboard`` users run), in this process like Optuna's other runs.
* Ray Tune (``ray[tune]``, installed from ``benchmarks/requirements-peers.lock`` by
  ``make bench-peers``): a function trainable that runs the same trial process, Optuna's TPE
  through Ray's ``OptunaSearch``, 2 concurrent trials. Ray runs twice: with its defaults, and as
  tuned as its documentation allows (actor reuse, no result loggers, no artifact syncing, quiet
  output, 2 CPUs, no dashboard). ``local_mode``, which would run trials in the driver, is no
  longer supported by Ray (2.60 refuses it) and would run one trial at a time anyway.

Each Ray run is a fresh process (``python benchmarks/peers.py ray ...``) so that Ray's
environment variables, logging hooks and worker processes never touch the other tuners' runs;
it prints one JSON line: the tuning loop's wall seconds (``Tuner.fit``) and, apart, how long
``ray.init`` took.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna

HERE = Path(__file__).parent
TRIAL = HERE / "trivial_trial.py"
RAY_VARIANTS = ("tuned", "default")

# Environment of every Ray run: no usage report sent over the network (this is not a tuning).
RAY_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0"}
# What Ray Tune's documentation offers to cut its own overhead (docs: "Environment variables used
# by Ray Tune", "Logging and outputs in Tune"): no automatic CSV/JSON/TensorBoard loggers, the
# old quiet output path, and the experiment state saved once a minute at most.
RAY_TUNED_ENVIRONMENT = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_AIR_NEW_OUTPUT": "0",
                         "TUNE_GLOBAL_CHECKPOINT_S": "60"}


TRIAL_PYTHON = "KATUNA_BENCH_TRIAL_PYTHON"
"""The variable naming the Python that runs the trial process (default: the benchmark's own). It
is read where a trial starts, so the processes Ray runs trials in see it too. A trial's start is
most of its cost, and an interpreter's start depends on its site-packages: an editable install's
import hook (setuptools' default mode) alone doubles it."""


def trial_command(x: str) -> list[str]:
    """The trial process's argv for ``x``, with the Python that :data:`TRIAL_PYTHON` names."""
    return [os.environ.get(TRIAL_PYTHON) or sys.executable, str(TRIAL), x]


def trial_loss(x: float) -> float:
    """Run the benchmark's trial process for ``x`` and read the loss it prints."""
    out = subprocess.run(trial_command(repr(x)), capture_output=True, text=True, check=True)
    return float(out.stdout.strip().split("=", 1)[1])


def run_optuna_rdb(trials: int, database: Path) -> None:
    """Optuna's own loop, 2 threads, TPE, its RDB storage on a fresh SQLite file."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{database}")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1), storage=storage)
    study.optimize(lambda trial: trial_loss(trial.suggest_float("x", -10.0, 10.0)), n_trials=trials, n_jobs=2)
    complete = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    assert complete == trials, (complete, trials)


def ray_installed() -> bool:
    """Whether this interpreter can run the Ray Tune peer (``make bench-peers`` installs it)."""
    return importlib.util.find_spec("ray") is not None


def run_ray(trials: int, variant: str, workdir: Path) -> tuple[float, float]:
    """Ray Tune's wall seconds for ``trials`` trials in a fresh process, and its ``ray.init`` seconds.

    Raises ``RuntimeError`` with Ray's output when the run fails."""
    environment = {**os.environ, **RAY_ENVIRONMENT, **(RAY_TUNED_ENVIRONMENT if variant == "tuned" else {})}
    done = subprocess.run([sys.executable, __file__, "ray", "--trials", str(trials), "--variant", variant,
                           "--workdir", str(workdir)], capture_output=True, text=True, env=environment)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"Ray Tune ({variant}) failed with exit code {done.returncode}:\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    figures = json.loads(lines[-1])
    return figures["fit_s"], figures["init_s"]


def ray_trainable(config: dict) -> dict:
    """Ray Tune's function trainable: the same trial process, its loss as the final result."""
    return {"loss": trial_loss(config["x"])}


def ray_tuner(trials: int, variant: str, workdir: Path):
    """A ``ray.tune.Tuner`` over x in [-10, 10] with Optuna's TPE (seed 1), 2 trials at a time."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    tuned = variant == "tuned"
    search = OptunaSearch(metric="loss", mode="min", sampler=optuna.samplers.TPESampler(seed=1))
    tune_config = tune.TuneConfig(search_alg=search, num_samples=trials, max_concurrent_trials=2,
                                  reuse_actors=tuned)
    # Results go under the run's own directory (not ~/ray_results) in both variants; tuned, nothing
    # is printed and no trial artifacts are synced (no checkpoints are taken in either variant).
    quiet = {"verbose": 0, "sync_config": tune.SyncConfig(sync_artifacts=False)} if tuned else {}
    run_config = tune.RunConfig(name=f"overhead-{variant}", storage_path=str(workdir), **quiet)
    return tune.Tuner(ray_trainable, param_space={"x": tune.uniform(-10.0, 10.0)}, tune_config=tune_config,
                      run_config=run_config)


def ray_main(trials: int, variant: str, workdir: Path) -> None:
    """Start Ray, time ``Tuner.fit``, check every trial completed, print the figures as JSON."""
    import ray

    started = time.perf_counter()
    if variant == "tuned":
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    else:
        ray.init()
    initialised = time.perf_counter()
    results = ray_tuner(trials, variant, workdir).fit()
    fitted = time.perf_counter()
    ray.shutdown()
    assert len(results) == trials and results.num_errors == 0, (len(results), results.num_errors)
    print(json.dumps({"fit_s": fitted - initialised, "init_s": initialised - started}))


def main() -> None:
    parser = argparse.ArgumentParser(description="One Ray Tune run of the overhead benchmark's trial.")
    parser.add_argument("tuner", choices=["ray"])
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--variant", choices=RAY_VARIANTS, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    ray_main(args.trials, args.variant, args.workdir)


if __name__ == "__main__":
    main()
