"""What a decision of population-based training costs, at 1,000 and 10,000 trials.

A study of ``n_population`` 20 in a real SQLite file, its trials generation after generation
(each child of a trial of the generation before; one in twenty fails and is run again next,
as the algorithm asks),
up to 1,000 and 10,000 trials. A decision (:func:`functions.handlers.population.ask`'s) is
timed the way it reads its trials now, :meth:`~functions.adapters.sqlite_store.SqliteStore.population_trials`
(the newest full generation with the next, and the failed trials with the later trials of
their generation and parent), and as it did before, every trial of the study as a full record:
both read, convert and decide, the decision the same. Each is the median of repeated decisions.

Ends with ``decision_ms_at_1000=`` and ``decision_ms_at_10000=`` (now), and
``every_trial_ms_at_1000=`` and ``every_trial_ms_at_10000=`` (every trial read, as before).
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import report

from functions.adapters.sqlite_store import SqliteStore
from functions.core import pbt
from functions.core.records import COMPLETE, FAIL, StudyRecord, TrialRecord
from functions.core.store_port import trials_by_number
from functions.core.validate import parse_study
from functions.handlers.population import member

NAME = "pbt_decision"
POPULATION = 20
STUDY = "population"


def stored(folder: Path, trials: int) -> tuple[SqliteStore, StudyRecord]:
    """A store holding a pbt study of ``trials`` trials, generation after generation."""
    definition = {"name": STUDY, "maxTrials": pbt.MOST_TRIALS, "objective": {"metric": "acc", "direction": "maximize"},
                  "algorithm": {"name": pbt.NAME, "seed": 1, "settings": {
                      "suggestion_trial_dir": "/ckpt", "n_population": POPULATION, "truncation_threshold": 0.2}},
                  "parameters": [{"name": "lr", "type": "float", "min": 0.0001, "max": 0.1}],
                  "trialTemplate": {"command": ["train", "--lr=${trialParameters.lr}"]}}
    store = SqliteStore(folder / "katuna.db")
    record = store.add_study(StudyRecord(parse_study(definition), definition, ".", "uid-bench", created_at=time.time()))
    rng = random.Random(1)
    number, previous, generation = 0, [None], 0
    with store.transaction():
        while number < trials:
            members = []
            retry = None
            while len(members) < POPULATION and number < trials:
                parent, lr = retry or (rng.choice(previous), rng.uniform(0.0001, 0.1))
                failed = rng.random() < 0.05
                store.add_trial(TrialRecord(STUDY, number, {"lr": lr}, state=FAIL if failed else COMPLETE,
                                            values=None if failed else [rng.random()], generation=generation,
                                            parent=parent))
                retry = (parent, lr) if failed else None
                if not failed:
                    members.append(number)
                number += 1
            previous, generation = members or previous, generation + 1
    return store, record


def decide(store: SqliteStore, record: StudyRecord, every: bool) -> pbt.Plan:
    settings = pbt.settings_of(dict(record.spec.algorithm.settings))
    trials = trials_by_number(store, STUDY, 500) if every else store.population_trials(STUDY, POPULATION)
    members = [member(record, trial) for trial in trials]
    return pbt.next_plan(settings, record.spec.parameters, members, random.Random(7))


def timed(store: SqliteStore, record: StudyRecord, every: bool, repeats: int) -> float:
    """The median milliseconds of a decision."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        decide(store, record, every)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def plot(rows: list[list], out: Path | None) -> None:
    """A decision's milliseconds at each size, as it reads its trials now and as it read every one."""
    fig, ax = report.figure()
    sizes = [str(row[0]) for row in rows]
    width = 0.4
    ax.bar([n - width / 2 for n in range(len(rows))], [float(row[2]) for row in rows], width, label="now")
    ax.bar([n + width / 2 for n in range(len(rows))], [float(row[3]) for row in rows], width, label="every trial read")
    ax.set_xticks(range(len(rows)), sizes)
    ax.set_xlabel("trials in the study")
    ax.set_ylabel("ms per decision (median)")
    ax.set_title("a pbt decision")
    ax.legend()
    report.save_plot(fig, NAME, out)


def main(argv: list[str] | None = None) -> int:
    parser = report.arguments(__doc__, "200 and 1,000 trials, 3 decisions each (a smoke run)")
    args = report.parsed(parser, argv)
    sizes, repeats = ((200, 1000), 3) if args.quick else ((1000, 10_000), 15)
    rows, figures = [], {}
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            store, record = stored(Path(folder), size)
            try:
                assert decide(store, record, True) == decide(store, record, False), "the same decision"
                now, before = timed(store, record, False, repeats), timed(store, record, True, repeats)
                read = len(store.population_trials(STUDY, POPULATION))
            finally:
                store.close()
        rows.append([size, read, f"{now:.2f}", f"{before:.2f}"])
        figures[f"decision_ms_at_{size}"] = now
        figures[f"every_trial_ms_at_{size}"] = before
    print(report.table(["trials", "trials read", "decision ms", "every trial ms"], rows))
    report.save(NAME, {"population": POPULATION, "rows": rows, "figures": figures}, args.out)
    plot(rows, args.out)
    report.lines(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
