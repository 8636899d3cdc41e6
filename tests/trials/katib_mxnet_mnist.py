"""A trial that prints as the training image Katib's ConfigMap example Experiment was written
for (``mxnet-mnist``'s ``mnist.py``, which takes ``--lr``, ``--num-layers`` and ``--optimizer``)
prints, with no training: after each epoch ``Epoch[<n>] Train-accuracy=<value>`` and
``Epoch[<n>] Validation-accuracy=<value>``, the lines Katib's StdOut collector reads. The values
are a fixed function of the parameters (:func:`accuracies`), so a test can tell which metrics
the collector would read."""

from __future__ import annotations

import argparse

OPTIMIZERS = {"sgd": 0.0, "adam": 0.02, "ftrl": -0.02}


def accuracies(lr: float, layers: int, optimizer: str) -> tuple[float, float]:
    """(train accuracy, validation accuracy), rounded as printed; both below Katib's goal of 0.99."""
    validation = round(0.9 - 50 * (lr - 0.02) ** 2 + 0.01 * layers + OPTIMIZERS[optimizer], 4)
    return round(validation + 0.01, 4), validation


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--num-layers", type=int, required=True)
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    train, validation = accuracies(args.lr, args.num_layers, args.optimizer)
    for epoch in range(args.epochs):
        print(f"INFO:root:Epoch[{epoch}] Train-accuracy={train}", flush=True)
        print(f"INFO:root:Epoch[{epoch}] Validation-accuracy={validation}", flush=True)


if __name__ == "__main__":
    main()
