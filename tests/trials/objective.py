"""A trial for the tests: prints loss=(x-2)^2 (+ y^2), or misbehaves as --mode asks."""

import argparse
import json
import os
import signal
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--y", type=float, default=0.0)
parser.add_argument("--mode", default="ok")
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--until", help="after the first epoch, wait until this file exists")
parser.add_argument("--ignore-sigterm", action="store_true",
                    help="only SIGKILL ends this trial (a SIGTERM is noted in <trial>.<attempt>.term of PID_DIR)")
args = parser.parse_args()
pid_dir = os.environ.get("PID_DIR")


def note_sigterm(signum, frame):
    """Go on, leaving word that katuna began to stop this trial."""
    name = f"{os.environ['KATUNA_TRIAL']}.{os.environ['KATUNA_ATTEMPT']}.term"
    open(os.path.join(pid_dir, name), "w").close()


if args.ignore_sigterm:
    signal.signal(signal.SIGTERM, note_sigterm if pid_dir else signal.SIG_IGN)

if pid_dir:
    name = f"{os.environ['KATUNA_TRIAL']}.{os.environ['KATUNA_ATTEMPT']}.pid"
    draft = os.path.join(pid_dir, f".{name}.draft")
    with open(draft, "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(draft, os.path.join(pid_dir, name))  # a reader never sees a half-written file

loss = (args.x - 2) ** 2 + args.y ** 2
if args.mode == "crash":
    print("about to fail", flush=True)
    sys.exit(3)
if args.mode == "silent":
    print("training without reporting the objective")
    print("Validation-loss=0.5")
    sys.exit(0)
if args.mode == "hang":
    print("hanging", flush=True)
    time.sleep(600)
if args.mode == "nan":
    print(json.dumps({"loss": float("nan")}))
    sys.exit(0)
if args.mode == "wild-metrics":  # a finite objective beside metrics that are NaN or infinite
    print(f"epoch=1 loss={loss + 1:.6f} grad=nan norm=inf", f"loss={loss:.6f} grad=0.5 norm=-inf", sep="\n")
    sys.exit(0)
if args.mode == "huge":  # steps and numbers beyond what Optuna, the store or a float holds
    print(f"step=1e30 loss={loss + 2:.6f}", f"epoch=-1 loss={loss + 1:.6f}", f"loss={loss:.6f}", sep="\n")
    print(json.dumps({"step": 1e30, "loss": loss + 2}), json.dumps({"epoch": -1, "loss": loss + 1}),
          json.dumps({"loss": loss, "samples": 10**400}), sep="\n")
    sys.exit(0)
if args.mode == "preempt-once" and os.environ["KATUNA_ATTEMPT"] == "1":
    os.kill(os.getpid(), signal.SIGKILL)
steps = args.epochs if args.mode == "curve" else 3
for step in range(1, steps + 1):
    time.sleep(args.sleep / steps)
    print(f"epoch={step} loss={loss + 1.0 / step:.6f} size={abs(args.x) + args.y:.6f}", flush=True)
    while args.until and step == 1 and not os.path.exists(args.until):
        time.sleep(0.05)
    if os.environ.get("KATUNA_REPORT_URL"):
        from functions.reporter import report

        report(step, loss=loss + 1.0 / step)
print(f"loss={loss:.6f}")
