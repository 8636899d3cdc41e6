"""A trial for the tests that prints a lot: lines of ``--long-mb`` MiB each (no break inside),
``--short-mb`` MiB of 1 KiB lines, and ``--reports`` loss lines whose smallest value is
``--best``, reported in the middle; written in pieces, so this process stays small. With
``--first-attempt-only``, a later attempt of the trial prints its loss lines alone."""

import argparse
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--long-lines", type=int, default=0)
parser.add_argument("--long-mb", type=int, default=10)
parser.add_argument("--short-mb", type=int, default=0)
parser.add_argument("--reports", type=int, default=3)
parser.add_argument("--best", type=float, default=0.125)
parser.add_argument("--first-attempt-only", action="store_true")
args = parser.parse_args()
if args.first_attempt_only and os.environ["KATUNA_ATTEMPT"] != "1":
    args.long_lines = args.short_mb = 0

out = sys.stdout
piece = "x" * (1 << 20)
for _ in range(args.long_lines):
    for _ in range(args.long_mb):
        out.write(piece)
    out.write("\n")
short = ("noise " * 170)[:1023] + "\n"
short_lines = args.short_mb * 1024
for index in range(max(short_lines, args.reports)):
    if index < short_lines:
        out.write(short)
    if index < args.reports:
        value = args.best if index == args.reports // 2 else 1.0 + index / args.reports
        out.write(f"step={index} loss={value!r}\n")
out.write("done\n")
