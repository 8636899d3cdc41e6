"""Search quality: katuna's default algorithm (TPE) vs random search (Katib's default) vs CMA-ES,
and TPE with look-ahead (``KATUNA_LOOKAHEAD``) vs TPE without it.

The 24 noiseless BBOB functions of the COCO platform (``cocoex``, offline) at d=5 in [-5, 5]^5,
100 evaluations per run, 5 study seeds, plus a real tuning task: an SVM's ``C`` and ``gamma``
on scikit-learn's bundled digits data (error on a held-out third). Every suggestion comes from
katuna's sampler registry the way the handlers ask for it (:func:`sampler_for`, reseeded per
trial from the study seed, one trial at a time), in process so the whole run takes minutes.
"TPE with look-ahead" asks for each trial while the one before it still runs, as ``katuna run``
does with its default look-ahead of 1: the sampler sees that trial as running (constant liar),
so every suggestion is made one result behind; the same seeds, trial for trial.

Regret is the best value found minus the function's optimum. A function is a win for TPE when
its median regret over the seeds is below random search's. Ends with
``lookahead_wins_vs_random=<n>/24`` and ``wins_vs_random=<n>/24`` (target >= 22 for both).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optuna
import report

from functions.core.samplers import random_start, sampler_for
from functions.core.space import sample
from functions.core.validate import parse_study

ALGORITHMS = ("tpe", "tpe-ahead", "random", "cmaes")
LABELS = {"tpe": "TPE (katuna default)", "tpe-ahead": "TPE with look-ahead", "random": "random (Katib default)",
          "cmaes": "CMA-ES"}
AHEAD = {"tpe-ahead": ("tpe", 1)}
"""Variants: the algorithm they run, and how many trials each asks for ahead of the running one."""


def spec_for(algorithm: str, seed: int, parameters: list[dict[str, Any]], trials: int):
    names = [p["name"] for p in parameters]
    return parse_study({
        "name": "quality", "objective": {"metric": "loss", "direction": "minimize"}, "parameters": parameters,
        "algorithm": {"name": algorithm, "seed": seed}, "maxTrials": trials,
        "trialTemplate": {"command": ["train", *(f"${{trialParameters.{n}}}" for n in names)]},
    })


def minimize(objective: Callable[[Mapping[str, Any]], float], algorithm: str, seed: int,
             parameters: list[dict[str, Any]], trials: int) -> list[float]:
    """The best value after each trial, suggested as the handlers suggest one (``ahead`` trials
    asked for before the running one is told, for a look-ahead variant, none while the sampler
    is one result short of its random start's end)."""
    algorithm, ahead = AHEAD.get(algorithm, (algorithm, 0))
    spec = spec_for(algorithm, seed, parameters, trials)
    study = optuna.create_study(direction="minimize")
    best, trace = float("inf"), []
    asked: deque[optuna.trial.Trial] = deque()
    start = random_start(spec.algorithm)
    for told in range(trials):
        while len(asked) <= (0 if told + 1 == start else ahead) and len(study.trials) < trials:
            study.sampler = sampler_for(study.sampler, spec.algorithm, spec.parameters, len(study.trials))
            asked.append(sample(study, spec.parameters))
        trial = asked.popleft()
        value = objective(trial.params)
        study.tell(trial, value)
        best = min(best, value)
        trace.append(best)
    return trace


def bbob_problems(dimension: int, functions: list[int]):
    """(function number, problem, optimal value) of instance 1 of each BBOB function."""
    import cocoex

    suite = cocoex.Suite("bbob", "", f"dimensions:{dimension} instance_indices:1 function_indices:"
                         + ",".join(map(str, functions)))
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            for problem in suite:
                problem._best_parameter("print")
                xopt = np.loadtxt("._bbob_problem_best_parameter.txt")
                yield problem.id_function, problem, float(problem(xopt))
        finally:
            os.chdir(here)


def bbob(dimension: int, evaluations: int, seeds: list[int], functions: list[int]) -> dict[int, dict[str, list]]:
    """Per function and algorithm: the regret trace of every seed."""
    parameters = [{"name": f"x{i}", "type": "float", "min": -5.0, "max": 5.0} for i in range(dimension)]
    results: dict[int, dict[str, list]] = {}
    for number, problem, optimum in bbob_problems(dimension, functions):
        def objective(params: Mapping[str, Any], problem=problem) -> float:
            return float(problem(np.array([params[f"x{i}"] for i in range(dimension)])))

        results[number] = {a: [[v - optimum for v in minimize(objective, a, s, parameters, evaluations)]
                               for s in seeds] for a in ALGORITHMS}
        medians = {a: statistics.median(r[-1] for r in results[number][a]) for a in ALGORITHMS}
        print(f"  f{number:<2} " + "  ".join(f"{a}={m:.3g}" for a, m in medians.items()), flush=True)
    return results


def svm_task(evaluations: int, seeds: list[int]) -> dict[str, list[float]]:
    """Best held-out error of an SVM on the digits data, per algorithm and seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=1 / 3, random_state=0, stratify=y)
    parameters = [{"name": "C", "type": "float", "min": 1e-3, "max": 1e3, "log": True},
                  {"name": "gamma", "type": "float", "min": 1e-5, "max": 10.0, "log": True}]

    def error(params: Mapping[str, Any]) -> float:
        model = SVC(C=params["C"], gamma=params["gamma"]).fit(x_train, y_train)
        return 1.0 - model.score(x_test, y_test)

    return {a: [minimize(error, a, s, parameters, evaluations)[-1] for s in seeds] for a in ALGORITHMS}


def checkpoints(runs: dict[int, dict[str, list]], evaluations: int) -> dict[str, dict[str, dict[int, float]]]:
    """Median regret per function and algorithm after a quarter, half and all the evaluations."""
    marks = sorted({max(1, evaluations // 4), max(1, evaluations // 2), evaluations})
    return {str(m): {a: {f: statistics.median(r[m - 1] for r in runs[f][a]) for f in runs} for a in ALGORITHMS}
            for m in marks}


def main() -> None:
    parser = report.arguments(__doc__, "2 functions, 1 seed, 12 evaluations (a smoke run)")
    parser.add_argument("--evaluations", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--dimension", type=int, default=5)
    parser.add_argument("--svm-evaluations", type=int, default=40)
    args = report.parsed(parser)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    functions = [1, 15] if args.quick else list(range(1, 25))
    evaluations = 12 if args.quick else args.evaluations
    seeds = list(range(1, 2 if args.quick else args.seeds + 1))
    svm_evaluations = 4 if args.quick else args.svm_evaluations
    start = time.perf_counter()
    print(f"BBOB d={args.dimension}, {evaluations} evaluations, seeds {seeds}: median regret per function")
    runs = bbob(args.dimension, evaluations, seeds, functions)
    medians = {f: {a: statistics.median(r[-1] for r in runs[f][a]) for a in ALGORITHMS} for f in functions}
    wins = sum(1 for f in functions if medians[f]["tpe"] < medians[f]["random"])
    ahead_wins = sum(1 for f in functions if medians[f]["tpe-ahead"] < medians[f]["random"])
    ahead_vs_tpe = sum(1 for f in functions if medians[f]["tpe-ahead"] < medians[f]["tpe"])
    cma_wins = sum(1 for f in functions if medians[f]["cmaes"] < medians[f]["random"])
    svm = svm_task(svm_evaluations, seeds)
    print()
    print(report.table(["function"] + [f"{LABELS[a]} median regret" for a in ALGORITHMS],
                       [[f"f{f}"] + [medians[f][a] for a in ALGORITHMS] for f in functions]))
    svm_medians = {a: statistics.median(svm[a]) for a in ALGORITHMS}
    print(f"\nSVM on digits, {svm_evaluations} evaluations, median best held-out error: "
          + ", ".join(f"{LABELS[a]} {svm_medians[a]:.4f}" for a in ALGORITHMS))
    result = {"dimension": args.dimension, "evaluations": evaluations, "seeds": seeds, "functions": functions,
              "median_regret": medians, "regret_by_seed": {f: {a: [r[-1] for r in runs[f][a]] for a in ALGORITHMS}
                                                           for f in functions},
              "median_regret_after": checkpoints(runs, evaluations), "wins_vs_random": wins, "cmaes_wins_vs_random": cma_wins,
              "lookahead_wins_vs_random": ahead_wins, "lookahead_wins_vs_tpe": ahead_vs_tpe,
              "svm": {"evaluations": svm_evaluations, "best_error": svm, "median_best_error": svm_medians},
              "seconds": time.perf_counter() - start}
    report.save("search_quality", result, args.out)
    fig, ax = report.figure()
    width = 0.2
    xs = np.arange(len(functions))
    for i, algorithm in enumerate(ALGORITHMS):
        ax.bar(xs + (i - 1.5) * width, [max(medians[f][algorithm], 1e-9) for f in functions], width,
               label=LABELS[algorithm])
    ax.set_yscale("log")
    ax.set_xticks(xs, [str(f) for f in functions], fontsize=7)
    ax.set_xlabel("BBOB function")
    ax.set_ylabel("median regret (lower is better)")
    ax.set_title(f"d={args.dimension}, {evaluations} evaluations, {len(seeds)} seeds; TPE beats random on "
                 f"{wins}/{len(functions)}", fontsize=10)
    ax.legend(fontsize=8)
    report.save_plot(fig, "search_quality", args.out)
    report.lines({"cmaes_wins_vs_random": f"{cma_wins}/{len(functions)}",
                  "lookahead_wins_vs_tpe": f"{ahead_vs_tpe}/{len(functions)}",
                  "lookahead_wins_vs_random": f"{ahead_wins}/{len(functions)}",
                  "svm_error_tpe": svm_medians["tpe"], "svm_error_random": svm_medians["random"],
                  "svm_error_cmaes": svm_medians["cmaes"], "wins_vs_random": f"{wins}/{len(functions)}"})


if __name__ == "__main__":
    main()
