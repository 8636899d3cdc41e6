"""A trial that writes its metrics as Katib's ``tf-mnist-with-summaries`` image does, with no
training: TensorFlow event files under ``--log-path``, ``train/`` and ``test/`` (TF2 scalar
tensors, one ``loss`` and one ``accuracy`` per epoch), and progress lines on its output that
Katib's TensorFlowEvent collector ignores. The values are :func:`katib_mnist.curve`'s, so a test
can tell which metrics the collector reads."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent.parent)]

import katib_mnist  # noqa: E402
import tfevent_writer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--log-path", required=True)
    parser.add_argument("--style", choices=(tfevent_writer.TENSOR, tfevent_writer.SIMPLE), default=tfevent_writer.TENSOR)
    args = parser.parse_args()
    train, tests = katib_mnist.curve(args.lr, 0.5, args.epochs)
    name = f"events.out.tfevents.{os.getpid()}.katuna"
    train_events, test_events = [], []
    for epoch in range(args.epochs):
        accuracy, loss = tests[epoch]
        print(f"Train Epoch: {epoch + 1} loss={train[epoch]:.4f}, accuracy=0.0001", flush=True)
        train_events.append(tfevent_writer.event(epoch, [("loss", train[epoch]), ("accuracy", 0.5)], args.style))
        test_events.append(tfevent_writer.event(epoch, [("loss", loss), ("accuracy", accuracy)], args.style))
    tfevent_writer.write(Path(args.log_path) / "train" / name, train_events)
    tfevent_writer.write(Path(args.log_path) / "test" / name, test_events)


if __name__ == "__main__":
    main()
