"""Train a linear classifier on scikit-learn's bundled digits data and report its accuracy.

A trial as katuna expects one: parameters come as command-line flags, and every epoch's
metrics go out in one of the forms katuna reads:

- ``--format text`` (default): ``epoch=3 accuracy=0.9422 loss=0.1873`` on standard output;
- ``--format json``: ``{"epoch": 3, "accuracy": 0.9422, "loss": 0.1873}`` on standard output;
- ``--metrics-file PATH``: the same lines appended to a file instead of printed.

On a cluster, studies with early stopping also get each epoch through ``report``, which posts it
to ``KATUNA_REPORT_URL`` when katuna sets it and does nothing otherwise.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

try:
    from reporter import report  # the copy the trial image carries
except ImportError:
    from functions.reporter import report  # running from katuna's own checkout


def metric_line(fmt: str, epoch: int, accuracy: float, loss: float) -> str:
    """One epoch's metrics as a ``name=value`` line or as a JSON object."""
    if fmt == "json":
        return json.dumps({"epoch": epoch, "accuracy": round(accuracy, 4), "loss": round(loss, 4)})
    return f"epoch={epoch} accuracy={accuracy:.4f} loss={loss:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alpha", type=float, required=True, help="L2 regularisation strength")
    parser.add_argument("--lr", type=float, required=True, help="initial learning rate")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--metrics-file", help="append metric lines here instead of printing them")
    args = parser.parse_args()

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    model = SGDClassifier(loss="log_loss", alpha=args.alpha, eta0=args.lr, learning_rate="constant", random_state=0)
    classes = np.unique(y)
    trial = os.environ.get("KATUNA_TRIAL", "-")
    print(f"trial {trial}: alpha {args.alpha:g}, learning rate {args.lr:g}", flush=True)
    for epoch in range(1, args.epochs + 1):
        model.partial_fit(x_train, y_train, classes=classes)
        accuracy = float(model.score(x_val, y_val))
        loss = float(log_loss(y_val, model.predict_proba(x_val)))
        line = metric_line(args.format, epoch, accuracy, loss)
        if args.metrics_file:
            with open(args.metrics_file, "a", encoding="utf-8") as metrics:
                metrics.write(line + "\n")
        else:
            print(line, flush=True)
        report(epoch, accuracy=accuracy)


if __name__ == "__main__":
    main()
