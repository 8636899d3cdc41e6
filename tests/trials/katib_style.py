"""A trial that reports as Katib's example images do: ``loss=<value>`` once per epoch, with no
step key; the loss falls as (x-2)^2 + 1/epoch. It waits ``--sleep`` seconds after each report,
and ``--hold`` seconds after report ``--hold-after``: long enough for a rule judging that report
to stop it."""

import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--hold-after", type=int, default=0)
parser.add_argument("--hold", type=float, default=0.0)
parser.add_argument("--sleep", type=float, default=0.0)
args = parser.parse_args()

for epoch in range(1, args.epochs + 1):
    print(f"Epoch {epoch}: loss={(args.x - 2) ** 2 + 1 / epoch:.6f}", flush=True)
    time.sleep(args.hold if epoch == args.hold_after else args.sleep)
