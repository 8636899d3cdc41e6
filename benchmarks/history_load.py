"""A new study's time to its first trial in a database with a large history (Optuna's state).

Optuna's state is one journal for the whole database, and a process loads all of it (the
snapshot of every study's trials) the first time it serves any study. For each history size,
builds a completed study of that many trials directly through the store (``ui_render.build``:
katuna's trial rows and Optuna's journal, no trial processes), then, in a fresh process as a
``katuna serve`` worker is, times a new study's first suggestion. Also prints the snapshot's
size and Optuna's load time per trial, against which ``KATUNA_MAX_HISTORY`` (100,000) is set.
Ends with ``name=value`` lines; the JSON and a plot go to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import report
from ui_render import build

from functions.adapters.sqlite_journal import KatunaJournalStorage, SqliteJournalBackend
from functions.adapters.sqlite_store import SqliteStore
from functions.core.limits import DEFAULTS


def first_trial(db: Path) -> dict[str, float]:
    """In this process: seconds from opening the store to a new study's first suggested value."""
    start = time.perf_counter()
    store = SqliteStore(db)
    with store.transaction():
        trial = store.optuna_study("fresh", ["minimize"]).ask()
        trial.suggest_float("x", 0.0, 1.0)
    seconds = time.perf_counter() - start
    history = store.optuna_history()
    store.close()
    return {"first_trial_s": seconds, "history": history}


def load_cost(db: Path) -> tuple[int, float]:
    """The snapshot's bytes, and the seconds Optuna's storage takes to load (the snapshot
    unpickled, then the records after it replayed)."""
    store = SqliteStore(db)
    backend = SqliteJournalBackend(store.db.conn)
    _, body = backend.snapshot()
    start = time.perf_counter()
    KatunaJournalStorage(backend)
    seconds = time.perf_counter() - start
    store.close()
    return len(body or b""), seconds


def measure(trials: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "katuna.db"
        start = time.perf_counter()
        build(db, trials)
        print(f"built a {trials:,}-trial history in {time.perf_counter() - start:.1f} s", flush=True)
        size, load = load_cost(db)
        fresh = subprocess.run([sys.executable, __file__, "--first-trial", str(db)], check=True,
                               capture_output=True, text=True, cwd=Path(__file__).parent)
        result = json.loads(fresh.stdout.splitlines()[-1])
    return {**result, "snapshot_bytes": size, "load_s": load,
            "bytes_per_trial": size / trials, "load_us_per_trial": load / trials * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[10_000, 50_000, DEFAULTS.history])
    parser.add_argument("--quick", action="store_true", help="6,000 trials, past the first snapshot (a smoke run)")
    parser.add_argument("--first-trial", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="where results go (default benchmarks/results)")
    args = parser.parse_args()
    if args.first_trial:
        print(json.dumps(first_trial(args.first_trial)))
        return
    sizes = [6_000] if args.quick else args.trials
    results = {n: measure(n) for n in sizes}
    print("first trial: a fresh process opens the database and suggests a new study's first value")
    print(report.table(["history trials", "first trial s", "snapshot MB", "load s", "B/trial", "us/trial"],
                       [[f"{n:,}", r["first_trial_s"], r["snapshot_bytes"] / 1e6, r["load_s"],
                         r["bytes_per_trial"], r["load_us_per_trial"]] for n, r in results.items()]))
    report.save("history_load", {"limit": DEFAULTS.history, "sizes": {str(n): r for n, r in results.items()}}, args.out)
    fig, ax = report.figure()
    ax.plot(list(results), [r["first_trial_s"] for r in results.values()], marker="o")
    ax.set_xlabel("trials in Optuna's history")
    ax.set_ylabel("seconds to a new study's first trial")
    report.save_plot(fig, "history_load", args.out)
    largest = max(results)
    report.lines({"first_trial_s": round(results[largest]["first_trial_s"], 2), "history_trials": largest,
                  "load_us_per_trial": round(results[largest]["load_us_per_trial"], 1)})


if __name__ == "__main__":
    main()
