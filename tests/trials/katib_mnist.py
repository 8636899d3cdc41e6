"""A trial that prints as the training image of Katib's examples (``pytorch-mnist``) does, with no
training: a few ``Train Epoch: ... loss=<value>`` log lines per epoch, then the test line
``{metricName: accuracy, metricValue: ...};{metricName: loss, metricValue: ...}``, each behind
the log's ``<RFC 3339 time> INFO`` prefix. With ``--log-path`` the log goes to that file
instead; with ``--logger=hypertune`` the test metrics are also appended to it as JSON lines, as
``cloudml-hypertune`` writes them. The values are a fixed function of the parameters
(:func:`curve`), so a test can tell which metrics Katib's collector would read."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

REPORTS = 3
"""Train lines per epoch."""
TRAIN_ACCURACY = (0.8, 0.9, 0.85)
"""The train accuracy each epoch's train lines print with ``--train-accuracy``: best in the middle."""


def curve(lr: float, momentum: float, epochs: int) -> tuple[list[float], list[tuple[float, float]]]:
    """The train losses in order, and (accuracy, test loss) after each epoch, rounded as printed."""
    base = 100 * (lr - 0.03) ** 2 + (momentum - 0.7) ** 2
    train = [round(base + 1 / (1 + epoch * REPORTS + report), 4) for epoch in range(epochs) for report in range(REPORTS)]
    tests = [(round(1 / (1 + base + 0.5 / epoch), 4), round(base + 0.5 / epoch, 4)) for epoch in range(1, epochs + 1)]
    return train, tests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--momentum", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--log-path", default="")
    parser.add_argument("--logger", choices=("standard", "hypertune"), default="standard")
    parser.add_argument("--train-accuracy", action="store_true", help="also print accuracy=<value> on train lines")
    args = parser.parse_args()
    train, tests = curve(args.lr, args.momentum, args.epochs)
    hypertune = args.logger == "hypertune"
    if args.log_path:
        os.makedirs(os.path.dirname(args.log_path) or ".", exist_ok=True)
    log = open(args.log_path, "a") if args.log_path and not hypertune else sys.stdout  # noqa: SIM115
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for epoch in range(1, args.epochs + 1):
        for report in range(REPORTS):
            loss = train[(epoch - 1) * REPORTS + report]
            accuracy = f" accuracy={TRAIN_ACCURACY[report]}" if args.train_accuracy else ""
            print(f"{stamp} INFO     Train Epoch: {epoch} [{report * args.batch_size}/60000 ({report * 33:.0f}%)]"
                  f"\tloss={loss:.4f}{accuracy}", file=log, flush=True)
        accuracy, test_loss = tests[epoch - 1]
        print(f"{stamp} INFO     {{metricName: accuracy, metricValue: {accuracy:.4f}}};"
              f"{{metricName: loss, metricValue: {test_loss:.4f}}}\n", file=log, flush=True)
        if hypertune:
            with open(args.log_path, "a") as metrics:
                for tag, value in (("loss", test_loss), ("accuracy", accuracy)):
                    metrics.write(json.dumps({"timestamp": time.time(), "trial": "0", tag: str(value),
                                              "global_step": str(epoch), "checkpoint_path": ""}) + "\n")
    if log is not sys.stdout:
        log.close()


if __name__ == "__main__":
    main()
