"""Early stopping: the same trial budget with and without a pruner, on real learning curves.

Each trial trains scikit-learn's ``SGDClassifier`` on the bundled digits data one epoch at a
time (``partial_fit``) and reports its held-out accuracy after every epoch, as a trial reports
``accuracy=<v>`` with a step. TPE suggests (through katuna's sampler registry, reseeded per
trial, as the handlers ask) and the pruner comes from katuna's pruner registry
(:func:`functions.core.pruners.build_pruner`, rebuilt for every report as the ``prune``
handler does), with default settings: median (katuna's default), ASHA and Hyperband.

Epochs saved: the share of training epochs a pruned run skips against the run without pruning.
Best-value loss: how much lower the best accuracy is, in percent of the unpruned best. Both are
medians over the seeds. Ends with ``epochs_saved_pct=`` (target >= 50) and
``best_value_loss_pct=`` (target <= 1) for the default pruner.
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any

import numpy as np
import optuna
import report

from functions.core.pruners import EarlyStopping, build_pruner
from functions.core.samplers import sampler_for
from functions.core.space import sample
from functions.core.validate import parse_study

PRUNERS = ("none", "median", "asha", "hyperband")
PARAMETERS = [
    {"name": "alpha", "type": "float", "min": 1e-6, "max": 1e-1, "log": True},
    {"name": "eta0", "type": "float", "min": 1e-4, "max": 1.0, "log": True},
    {"name": "loss", "type": "categorical", "values": ["hinge", "log_loss", "modified_huber"]},
    {"name": "penalty", "type": "categorical", "values": ["l2", "l1", "elasticnet"]},
]


class Digits:
    """The bundled digits data: two thirds to train on, one third to report accuracy on."""

    def __init__(self) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        self.x_train, self.x_test, self.y_train, self.y_test = train_test_split(
            x / 16.0, y, test_size=1 / 3, random_state=0, stratify=y)
        self.classes = np.unique(y)

    def curve(self, params: dict[str, Any], seed: int):
        """Held-out accuracy after each epoch, computed as the caller asks for the next one."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import SGDClassifier

        model = SGDClassifier(loss=params["loss"], penalty=params["penalty"], alpha=params["alpha"],
                              learning_rate="constant", eta0=params["eta0"], random_state=seed)
        order = np.random.default_rng(seed)
        while True:
            shuffled = order.permutation(len(self.y_train))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.partial_fit(self.x_train[shuffled], self.y_train[shuffled], classes=self.classes)
            yield float(model.score(self.x_test, self.y_test))


def tune(data: Digits, pruner: str, seed: int, trials: int, epochs: int) -> dict[str, Any]:
    """One study: ``trials`` trials of at most ``epochs`` epochs; best accuracy and epochs run."""
    spec = parse_study({
        "name": "pruning", "objective": {"metric": "accuracy", "direction": "maximize"}, "parameters": PARAMETERS,
        "algorithm": {"name": "tpe", "seed": seed}, "maxTrials": trials,
        "trialTemplate": {"command": ["train", *(f"${{trialParameters.{p['name']}}}" for p in PARAMETERS)]},
    })
    early = None if pruner == "none" else EarlyStopping(pruner)
    study = optuna.create_study(direction="maximize")
    run, best = 0, 0.0
    for number in range(trials):
        study.sampler = sampler_for(study.sampler, spec.algorithm, spec.parameters, number)
        trial = sample(study, spec.parameters)
        accuracy, pruned = 0.0, False
        for step, accuracy in enumerate(data.curve(trial.params, seed * 1000 + number), start=1):
            run += 1
            trial.report(accuracy, step)
            if step == epochs:
                break
            if early is not None:
                study.pruner = build_pruner(early)
                if trial.should_prune():
                    pruned = True
                    break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, accuracy)
            best = max(best, accuracy)
    return {"best": best, "epochs": run, "pruned": sum(t.state.name == "PRUNED" for t in study.trials)}


def main() -> None:
    parser = report.arguments(__doc__, "8 trials of 5 epochs, 1 seed (a smoke run)")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    args = report.parsed(parser)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    trials, epochs, seeds = (8, 5, [1]) if args.quick else (args.trials, args.epochs, list(range(1, args.seeds + 1)))
    data = Digits()
    start = time.perf_counter()
    runs = {p: [tune(data, p, s, trials, epochs) for s in seeds] for p in PRUNERS}
    full = runs["none"]
    rows, summary = [], {}
    for pruner in PRUNERS:
        saved = statistics.median(100 * (1 - r["epochs"] / f["epochs"]) for r, f in zip(runs[pruner], full))
        loss = statistics.median(100 * (f["best"] - r["best"]) / f["best"] for r, f in zip(runs[pruner], full))
        summary[pruner] = {"epochs_saved_pct": saved, "best_value_loss_pct": loss,
                           "best_accuracy": statistics.median(r["best"] for r in runs[pruner]),
                           "epochs": statistics.median(r["epochs"] for r in runs[pruner]),
                           "pruned_trials": statistics.median(r["pruned"] for r in runs[pruner])}
        rows.append([pruner, summary[pruner]["epochs"], summary[pruner]["pruned_trials"], saved,
                     summary[pruner]["best_accuracy"], loss])
    print(f"SGDClassifier on digits: {trials} trials of up to {epochs} epochs, TPE, seeds {seeds} (medians)")
    print(report.table(["pruner", "epochs run", "trials pruned", "epochs saved %", "best accuracy",
                        "best-value loss %"], rows))
    report.save("pruning", {"trials": trials, "epochs": epochs, "seeds": seeds, "summary": summary, "runs": runs,
                            "seconds": time.perf_counter() - start}, args.out)
    fig, ax = report.figure()
    for pruner in PRUNERS[1:]:
        ax.scatter(summary[pruner]["epochs_saved_pct"], summary[pruner]["best_value_loss_pct"], s=60, label=pruner)
    ax.axvline(50, color="grey", linestyle=":")
    ax.axhline(1, color="grey", linestyle=":")
    ax.set_xlabel("epochs saved, % (target >= 50)")
    ax.set_ylabel("best accuracy lost, % (target <= 1)")
    ax.set_xlim(0, 100)
    ax.set_title(f"Early stopping on digits: {trials} trials x {epochs} epochs, {len(seeds)} seeds", fontsize=10)
    ax.legend()
    report.save_plot(fig, "pruning", args.out)
    figures = {}
    for pruner in PRUNERS[1:]:
        figures[f"{pruner}_epochs_saved_pct"] = summary[pruner]["epochs_saved_pct"]
        figures[f"{pruner}_best_value_loss_pct"] = summary[pruner]["best_value_loss_pct"]
    figures["epochs_saved_pct"] = summary["median"]["epochs_saved_pct"]
    figures["best_value_loss_pct"] = summary["median"]["best_value_loss_pct"]
    report.lines(figures)


if __name__ == "__main__":
    main()
