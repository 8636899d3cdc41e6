"""A new study's time to its first trial in a database with a large history of other studies,
and a large study's own load (Optuna's state).

Each study keeps Optuna's state in a journal of its own, and a process loads a study's (its
snapshot and the records after it) the first time it serves that study, no other's. For each
history size, builds a completed study of that many trials directly through the store
(``ui_render.build``: katuna's trial rows and Optuna's journal, no trial processes), then, in a
fresh process as a ``katuna serve`` worker is, times a new study's first suggestion (flat: the
other study costs it nothing) and the large study's next one (its own history loaded). Also
prints the large study's snapshot size and Optuna's load time per trial, against which
``KATUNA_MAX_HISTORY`` (100,000 trials for one study) is set. Ends with ``name=value`` lines;
the JSON and a plot go to ``benchmarks/results/``.
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
from ui_render import NAME, build

from functions.adapters.sqlite_journal import KatunaJournalStorage, SqliteJournalBackend
from functions.adapters.sqlite_store import SqliteStore
from functions.core.limits import DEFAULTS


def first_trial(db: Path, name: str) -> dict[str, float]:
    """In this process: seconds from opening the store to the study ``name``'s next suggested
    value, and the trials of its history (what the process loaded)."""
    start = time.perf_counter()
    store = SqliteStore(db)
    with store.transaction():
        trial = store.optuna_study(name, ["minimize"]).ask()
        trial.suggest_float("x", 0.0, 1.0)
    seconds = time.perf_counter() - start
    history = store.optuna_history(name)
    store.close()
    return {"seconds": seconds, "history": history}


def in_fresh_process(db: Path, name: str) -> dict[str, float]:
    fresh = subprocess.run([sys.executable, __file__, "--first-trial", str(db), name], check=True,
                           capture_output=True, text=True, cwd=Path(__file__).parent)
    return json.loads(fresh.stdout.splitlines()[-1])


def load_cost(db: Path) -> tuple[int, float]:
    """The large study's snapshot bytes, and the seconds Optuna's storage takes to load it (the
    snapshot unpickled, then the records after it replayed)."""
    store = SqliteStore(db)
    backend = SqliteJournalBackend(store.db.conn, store.optuna_storage().get_study_id_from_name(NAME))
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
        print(f"built a {trials:,}-trial study in {time.perf_counter() - start:.1f} s", flush=True)
        size, load = load_cost(db)
        new = in_fresh_process(db, "fresh")
        large = in_fresh_process(db, NAME)
    return {"first_trial_s": new["seconds"], "history": new["history"], "large_next_trial_s": large["seconds"],
            "large_history": large["history"], "snapshot_bytes": size, "load_s": load,
            "bytes_per_trial": size / trials, "load_us_per_trial": load / trials * 1e6}


def main() -> None:
    parser = report.arguments(__doc__, "6,000 trials, past the first snapshot (a smoke run)")
    parser.add_argument("--trials", type=int, nargs="+", default=[10_000, 50_000, DEFAULTS.history])
    parser.add_argument("--first-trial", nargs=2, metavar=("DB", "STUDY"), help=argparse.SUPPRESS)
    args = report.parsed(parser)
    if args.first_trial:
        print(json.dumps(first_trial(Path(args.first_trial[0]), args.first_trial[1])))
        return
    sizes = [6_000] if args.quick else args.trials
    results = {n: measure(n) for n in sizes}
    print("a fresh process opens the database and suggests a new study's first value, or the large study's next")
    print(report.table(["other study's trials", "new study's first s", "large study's next s", "snapshot MB", "load s",
                        "B/trial", "us/trial"],
                       [[f"{n:,}", r["first_trial_s"], r["large_next_trial_s"], r["snapshot_bytes"] / 1e6, r["load_s"],
                         r["bytes_per_trial"], r["load_us_per_trial"]] for n, r in results.items()]))
    report.save("history_load", {"limit": DEFAULTS.history, "sizes": {str(n): r for n, r in results.items()}}, args.out)
    fig, ax = report.figure()
    ax.plot(list(results), [r["first_trial_s"] for r in results.values()], marker="o", label="a new study's first")
    ax.plot(list(results), [r["large_next_trial_s"] for r in results.values()], marker="s",
            label="the large study's next (its own history)")
    ax.set_xlabel("trials of the large study in the database")
    ax.set_ylabel("seconds to a trial in a fresh process")
    ax.legend()
    report.save_plot(fig, "history_load", args.out)
    largest = max(results)
    report.lines({"first_trial_s": round(results[largest]["first_trial_s"], 2), "history_trials": largest,
                  "large_next_trial_s": round(results[largest]["large_next_trial_s"], 2),
                  "load_us_per_trial": round(results[largest]["load_us_per_trial"], 1)})


if __name__ == "__main__":
    main()
