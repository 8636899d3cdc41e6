"""A trial that reports as Katib's example images do: ``loss=<value>`` once per epoch, with no
step key; the loss falls as (x-2)^2 + 1/report. With ``--batches N`` it reports N times an
epoch instead, each line naming its epoch and batch (``epoch=1 batch=0 loss=...``). It waits
``--sleep`` seconds after each report, and ``--hold`` seconds after report ``--hold-after``:
long enough for a rule judging that report to stop it."""

import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--batches", type=int, default=0)
parser.add_argument("--hold-after", type=int, default=0)
parser.add_argument("--hold", type=float, default=0.0)
parser.add_argument("--sleep", type=float, default=0.0)
args = parser.parse_args()

report = 0
for epoch in range(1, args.epochs + 1):
    for batch in range(max(args.batches, 1)):
        report += 1
        where = f"epoch={epoch} batch={batch}" if args.batches else f"Epoch {epoch}:"
        print(f"{where} loss={(args.x - 2) ** 2 + 1 / report:.6f}", flush=True)
        time.sleep(args.hold if report == args.hold_after else args.sleep)
