"""A trial for the tests whose log grows while it runs: a few lines, a progress bar redrawn with
carriage returns, a line on stderr, then (once the file ``--go`` exists) more lines a little
apart and its loss. With ``--kill-first``, its first attempt kills itself with SIGKILL where it
would go on, as a preemption or the out-of-memory killer would: the trial runs again as its
next attempt. ``--mb`` MiB of one line without a break come first (a huge log)."""

import argparse
import os
import signal
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--go", type=Path, required=True)
parser.add_argument("--lines", type=int, default=5)
parser.add_argument("--kill-first", action="store_true")
parser.add_argument("--mb", type=int, default=0)
args = parser.parse_args()
attempt = os.environ["KATUNA_ATTEMPT"]

for _ in range(args.mb):
    sys.stdout.write("y" * (1 << 20))
print(f"attempt {attempt} begins", flush=True)
for percent in range(0, 101, 25):
    sys.stdout.write(f"\rprogress {percent:3d}%")
    sys.stdout.flush()
    time.sleep(0.05)
print(flush=True)
print(f"attempt {attempt} on stderr", file=sys.stderr, flush=True)
while not args.go.exists():
    time.sleep(0.05)
if args.kill_first and attempt == "1":
    os.kill(os.getpid(), signal.SIGKILL)
for line in range(args.lines):
    print(f"attempt {attempt} line {line}", flush=True)
    time.sleep(0.1)
print("loss=0.5", flush=True)
