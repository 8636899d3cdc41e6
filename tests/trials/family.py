"""A trial that leaves processes behind: a background child and a child in a new session.

It writes ``pids.<trial>.<attempt>`` (its own pid, then its children's) into ``--dir``, and
``alive-at-start.<trial>.<attempt>``: the pids of earlier attempts that still lived when it
began. With ``--ignore-term`` it and its children ignore SIGTERM; ``--hold`` seconds it waits
before it ends (``--hold-first`` instead, in its first attempt), reporting ``loss=1``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--hold-first", type=float, default=0.0)
    args = parser.parse_args()
    folder = Path(args.dir)
    trial, attempt = os.environ.get("KATUNA_TRIAL", "0"), os.environ.get("KATUNA_ATTEMPT", "1")
    earlier = [int(pid) for path in folder.glob(f"pids.{trial}.*") for pid in path.read_text().split()]
    (folder / f"alive-at-start.{trial}.{attempt}").write_text(" ".join(str(p) for p in earlier if alive(p)))
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    children = [subprocess.Popen(["sleep", "300"]), subprocess.Popen(["sleep", "300"], start_new_session=True)]
    pids = folder / f"pids.{trial}.{attempt}"
    draft = folder / f".{pids.name}.draft"
    draft.write_text(" ".join(str(p) for p in (os.getpid(), *(c.pid for c in children))))
    draft.rename(pids)
    print("loss=1", flush=True)
    time.sleep(args.hold_first if attempt == "1" and args.hold_first else args.hold)


if __name__ == "__main__":
    main()
