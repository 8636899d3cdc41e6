"""A trial that prints as gradient-boosting training does: by default as an XGBoost script for
Katib's StdOut collector (``accuracy=<value>`` after each of a few rounds, then
``time=<seconds>``); with ``--lightgbm`` as LightGBM's command line (``[LightGBM] [Info]
Iteration:1, valid_1 auc : 0.81``), read through a metrics filter. The values are a fixed
function of the parameters (:func:`rounds`, :func:`lightgbm`)."""

from __future__ import annotations

import argparse

TIME = 1.5
"""The ``time`` every XGBoost-style trial reports."""


def rounds(alpha: float, eta: float, subsample: float) -> list[float]:
    """The accuracy after each round, rounded as printed: best at the second round."""
    best = 0.9 - abs(eta - 0.25) - alpha - (1.0 - subsample) / 10
    return [round(best - 0.05, 4), round(best, 4), round(best - 0.02, 4)]


def lightgbm(learning_rate: float, num_leaves: int, trees: int) -> list[dict[str, float]]:
    """The metrics printed after each iteration, by name: best validation auc at the second."""
    auc = 0.8 + learning_rate - num_leaves / 1000
    return [{"training auc": round(auc + 0.05 + i / 100, 4), "training binary_logloss": round(0.5 - i / 10, 4),
             "valid_1 auc": round(auc - abs(i - 1) / 100, 4), "valid_1 binary_logloss": round(0.6 - i / 20, 4)}
            for i in range(trees)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lightgbm", action="store_true")
    for name in ("--alpha", "--eta", "--subsample", "--learning_rate"):
        parser.add_argument(name, type=float)
    parser.add_argument("--num_leaves", type=int)
    parser.add_argument("--num_trees", type=int, default=3)
    parser.add_argument("--name", default="SVHN")
    parser.add_argument("--max-depth", type=int, default=6)
    args = parser.parse_args()
    if args.lightgbm:
        for number, metrics in enumerate(lightgbm(args.learning_rate, args.num_leaves, args.num_trees), 1):
            for name in ("training auc", "training binary_logloss", "valid_1 auc", "valid_1 binary_logloss"):
                print(f"[LightGBM] [Info] Iteration:{number}, {name} : {metrics[name]}", flush=True)
        return
    for number, accuracy in enumerate(rounds(args.alpha, args.eta, args.subsample), 1):
        print(f"[{number}] {args.name} accuracy={accuracy}", flush=True)
    print(f"time={TIME}", flush=True)


if __name__ == "__main__":
    main()
