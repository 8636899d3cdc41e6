"""A new study's time to its first trial in a database with a large history of other studies,
and a large study's own load (Optuna's state).

Each study keeps Optuna's state in a journal of its own, and a process loads a study's (its
snapshot and the records after it) the first time it serves that study, no other's. For each
history size, builds a completed study of that many trials directly through the store
(``ui_render.build``: katuna's trial rows and Optuna's journal, no trial processes), then, in a
fresh process as a ``katuna serve`` worker is, times a new study's first suggestion (flat: the
other study costs it nothing) and the large study's next one (its own history loaded). Also
prints the large study's snapshot size and Optuna's load time per trial, against which
``KATUNA_MAX_HISTORY`` (100,000 trials for one study) is set.

Then a wide study (256 parameters, 4,000 trials, written as katuna writes them: a journal record
per parameter) is charted in a fresh process as a ``katuna serve`` worker charts it: its
parallel coordinates, the first chart of its page, which reads the study's history
(:data:`functions.core.history.CHART_CELLS` values at most) and draws it (a sample of
:data:`functions.adapters.web.plots.PARALLEL_VALUES` values at most): the seconds, the memory
the request added at its peak, and the chart's bytes.

Last, the widest study ``KATUNA_MAX_HISTORY_CELLS`` admits (256 parameters, as many trials as
:data:`functions.core.limits.Limits.history_cells` allows them) is served in a fresh process as
an event handler serves it: its Optuna history loaded (the seconds, of CPU, and the memory that
added at its peak), then a suggestion asked of TPE (the memory at the peak after it). Ends with
``name=value`` lines; the JSON and a plot go to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import report
from optuna.distributions import FloatDistribution
from ui_render import NAME, build, memory_mb

from functions.adapters.sqlite_journal import KatunaJournalStorage, SqliteJournalBackend
from functions.adapters.sqlite_store import SqliteStore
from functions.core.history_cells import trial_values
from functions.core.limits import DEFAULTS
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.validate import parse_study

WIDE = "wide"
WIDE_PARAMETERS = 256
"""The most parameters a study may have (``KATUNA_MAX_PARAMETERS``)."""
QUICK_WIDE = 40
"""Trials of the wide study in a smoke run (built a parameter at a time: 0.04 s a trial)."""


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


def wide_definition(trials: int) -> dict[str, object]:
    """A study of :data:`WIDE_PARAMETERS` parameters and ``trials`` trials."""
    names = [f"p{i}" for i in range(WIDE_PARAMETERS)]
    return {"name": WIDE, "objective": {"metric": "loss", "direction": "minimize"},
            "parameters": [{"name": p, "type": "float", "min": 0.0, "max": 1.0} for p in names],
            "algorithm": {"name": "random"}, "maxTrials": trials,
            "trialTemplate": {"command": ["train", *(f"${{trialParameters.{p}}}" for p in names)]}}


def widest_admitted() -> int:
    """The most trials of :data:`WIDE_PARAMETERS` parameters ``KATUNA_MAX_HISTORY_CELLS`` admits."""
    return DEFAULTS.history_cells // trial_values(parse_study(wide_definition(1)))


def build_wide(db: Path, trials: int) -> None:
    """A completed study of :data:`WIDE_PARAMETERS` parameters and ``trials`` trials, each asked
    and told as katuna's sampler asks (a record per parameter), in one transaction."""
    names = [f"p{i}" for i in range(WIDE_PARAMETERS)]
    definition = wide_definition(trials)
    store = SqliteStore(db)
    now = time.time()
    store.add_study(StudyRecord(parse_study(definition), definition, str(db.parent), "bench-wide", status="completed",
                                reason="max trials reached", created_at=now, started_at=now, completed_at=now))
    rng = random.Random(1)
    space = {p: FloatDistribution(0.0, 1.0) for p in names}
    with store.transaction():
        study = store.optuna_study(WIDE, ["minimize"])
        study.sampler = optuna.samplers.RandomSampler(seed=1)
        for number in range(trials):
            trial = study.ask(space)
            loss = sum(trial.params.values()) / len(names) + rng.random() * 0.1
            study.tell(trial, loss)
            store.add_trial(TrialRecord(WIDE, number, trial.params, COMPLETE, values=[loss], metrics={"loss": loss},
                                        exit_code=0, created_at=now, started_at=now, finished_at=now + 1))
    store.close()


def wide_chart(db: Path) -> dict[str, float | str]:
    """In this process, as a fresh worker with the plotting libraries loaded: the wide study's
    parallel coordinates, its history read and the chart drawn. Seconds (and of the process's
    CPU), the memory the request added at its peak (MB), the chart's bytes, the trials it drew
    and what its title says."""
    from functions.adapters.web import create_app, plots  # noqa: F401  (plots: loaded before the request)
    from functions.runtime import Runtime
    from functions.settings import Settings

    runtime = Runtime(Settings(db=db, log_dir=db.parent / "logs"))
    client = create_app(runtime).test_client()
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
    before = memory_mb(os.getpid(), "VmRSS")
    start, cpu = time.perf_counter(), time.process_time()
    response = client.get(f"/ui/studies/{WIDE}/plots/parallel")
    body = response.get_data()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    figure = json.loads(body)
    runtime.close()
    return {"seconds": seconds, "cpu_s": cpu, "peak_added_mb": memory_mb(os.getpid(), "VmHWM") - before,
            "bytes": len(body), "drawn": len(figure["data"][0]["dimensions"][0]["values"]),
            "note": (figure["layout"].get("title") or {}).get("text") or ""}


def wide_load(db: Path) -> dict[str, float]:
    """In this process, as a fresh worker serving the wide study: seconds (and of the process's
    CPU) from opening the store to the study's Optuna history loaded, the memory that added at
    its peak (MB), and the memory added at the peak once TPE suggested its next value."""
    Path("/proc/self/clear_refs").write_text("5")
    before = memory_mb(os.getpid(), "VmRSS")
    start, cpu = time.perf_counter(), time.process_time()
    store = SqliteStore(db)
    with store.transaction():
        study = store.optuna_study(WIDE, ["minimize"])
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        loaded = memory_mb(os.getpid(), "VmHWM") - before
        study.sampler = optuna.samplers.TPESampler(seed=1)
        study.ask().suggest_float("p0", 0.0, 1.0)
    asked = memory_mb(os.getpid(), "VmHWM") - before
    store.close()
    return {"seconds": seconds, "cpu_s": cpu, "peak_added_mb": loaded, "tpe_peak_added_mb": asked}


def measure_wide(folder: Path, trials: int, mode: str) -> dict[str, float | str]:
    """A wide study of ``trials`` served in a fresh process: ``mode`` ``--wide-chart``
    (:func:`wide_chart`) or ``--wide-load`` (:func:`wide_load`). The study is built once per
    size, in ``folder``; each measure reads a copy of it, as the study was built."""
    db = folder / f"wide-{trials}.db"
    if not db.exists():
        start = time.perf_counter()
        build_wide(db, trials)
        print(f"built a {trials:,}-trial study of {WIDE_PARAMETERS} parameters in {time.perf_counter() - start:.1f} s",
              flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "katuna.db"
        shutil.copyfile(db, copy)
        fresh = subprocess.run([sys.executable, __file__, mode, str(copy)], check=True, capture_output=True,
                               text=True, cwd=Path(__file__).parent)
    return {"trials": trials, **json.loads(fresh.stdout.splitlines()[-1])}


def main() -> None:
    parser = report.arguments(__doc__, f"6,000 trials, past the first snapshot; {QUICK_WIDE} wide ones (a smoke run)")
    parser.add_argument("--trials", type=int, nargs="+", default=[10_000, 50_000, DEFAULTS.history])
    parser.add_argument("--wide-trials", type=int, default=4_000,
                        help=f"trials of the wide study ({WIDE_PARAMETERS} parameters) charted")
    parser.add_argument("--first-trial", nargs=2, metavar=("DB", "STUDY"), help=argparse.SUPPRESS)
    parser.add_argument("--wide-chart", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--wide-load", metavar="DB", help=argparse.SUPPRESS)
    args = report.parsed(parser)
    if args.first_trial:
        print(json.dumps(first_trial(Path(args.first_trial[0]), args.first_trial[1])))
        return
    if args.wide_chart:
        print(json.dumps(wide_chart(Path(args.wide_chart))))
        return
    if args.wide_load:
        print(json.dumps(wide_load(Path(args.wide_load))))
        return
    sizes = [6_000] if args.quick else args.trials
    results = {n: measure(n) for n in sizes}
    with tempfile.TemporaryDirectory() as folder:
        wide = measure_wide(Path(folder), QUICK_WIDE if args.quick else args.wide_trials, "--wide-chart")
        admitted = measure_wide(Path(folder), QUICK_WIDE if args.quick else widest_admitted(), "--wide-load")
    print("a fresh process opens the database and suggests a new study's first value, or the large study's next")
    print(report.table(["other study's trials", "new study's first s", "large study's next s", "snapshot MB", "load s",
                        "B/trial", "us/trial"],
                       [[f"{n:,}", r["first_trial_s"], r["large_next_trial_s"], r["snapshot_bytes"] / 1e6, r["load_s"],
                         r["bytes_per_trial"], r["load_us_per_trial"]] for n, r in results.items()]))
    print(f"a fresh worker charts the parallel coordinates of {wide['trials']:,} trials of {WIDE_PARAMETERS} "
          "parameters: "
          f"{wide['seconds']:.1f} s ({wide['cpu_s']:.1f} s of CPU), {wide['peak_added_mb']:.0f} MB more at its peak, "
          f"{wide['bytes']:,} bytes, {wide['drawn']:,} trials drawn; its note: {wide['note'] or '(none)'}")
    print(f"a fresh worker loads the history of {admitted['trials']:,} trials of {WIDE_PARAMETERS} parameters "
          f"({widest_admitted():,}, the most KATUNA_MAX_HISTORY_CELLS admits, in a full run): "
          f"{admitted['seconds']:.1f} s ({admitted['cpu_s']:.1f} s of CPU), "
          f"{admitted['peak_added_mb']:.0f} MB more at its peak, {admitted['tpe_peak_added_mb']:.0f} MB once TPE asked")
    report.save("history_load", {"limit": DEFAULTS.history, "sizes": {str(n): r for n, r in results.items()},
                                 "wide_chart": wide, "wide_load": admitted}, args.out)
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
                  "load_us_per_trial": round(results[largest]["load_us_per_trial"], 1),
                  "wide_chart_trials": wide["trials"], "wide_chart_s": round(wide["seconds"], 2),
                  "wide_chart_cpu_s": round(wide["cpu_s"], 2),
                  "wide_chart_peak_added_mb": round(wide["peak_added_mb"]), "wide_chart_bytes": wide["bytes"],
                  "wide_chart_drawn": wide["drawn"], "wide_load_trials": admitted["trials"],
                  "wide_load_s": round(admitted["seconds"], 2), "wide_load_cpu_s": round(admitted["cpu_s"], 2),
                  "wide_load_peak_added_mb": round(admitted["peak_added_mb"]),
                  "wide_load_tpe_peak_added_mb": round(admitted["tpe_peak_added_mb"])})


if __name__ == "__main__":
    main()
