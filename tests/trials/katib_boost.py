"""A trial that prints as a gradient-boosting training script does for Katib's StdOut collector:
``accuracy=<value>`` after each of a few boosting rounds, then ``time=<seconds>``. The values
are a fixed function of the parameters (:func:`rounds`)."""

from __future__ import annotations

import argparse

TIME = 1.5
"""The ``time`` every trial reports."""


def rounds(alpha: float, eta: float, subsample: float) -> list[float]:
    """The accuracy after each round, rounded as printed: best at the second round."""
    best = 0.9 - abs(eta - 0.25) - alpha - (1.0 - subsample) / 10
    return [round(best - 0.05, 4), round(best, 4), round(best - 0.02, 4)]


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--alpha", "--eta", "--subsample"):
        parser.add_argument(name, type=float, required=True)
    parser.add_argument("--name", default="SVHN")
    parser.add_argument("--max-depth", type=int, default=6)
    args = parser.parse_args()
    for number, accuracy in enumerate(rounds(args.alpha, args.eta, args.subsample), 1):
        print(f"[{number}] {args.name} accuracy={accuracy}", flush=True)
    print(f"time={TIME}", flush=True)


if __name__ == "__main__":
    main()
