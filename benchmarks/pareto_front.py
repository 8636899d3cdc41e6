"""What a multi-objective study's view costs as its Pareto front is shown again and again.

Builds a finished study of 20,000 trials with three objectives (by default) directly through
the store, their values drawn so that about a tenth of the trials end on the front (ties
included), then asks the HTTP API for the study (``GET /studies/<name>``, which lists a sample
of its front and the front's size) through the Flask app, on a SQLite store: the first request,
which computes the front from every completed trial (what each request cost before fronts were
kept), the median of the next ones (the front kept: one small read of the study's marker), and
the first request after one more trial completed (the front computed again); then the study
page's Pareto chart (``GET /ui/studies/<name>/plots/pareto``: the front drawn from a bounded
sample of the trials), its milliseconds and bytes, once another chart loaded the plotting
libraries and read the study's Optuna history. Ends with ``name=value`` lines in
milliseconds; the JSON and a bar chart go to ``benchmarks/results/``. Last, the front alone
(:func:`~functions.core.pareto_search.pareto_front`) of 200,000 trials each on it and each going in at
the start of the staircase of the later objectives (``(i, -i, i)``, its worst case), in CPU
seconds (``worst_front_s``); and the front of 20,000 trials of four objectives, each on it (a
simplex), where every trial is compared with the front: computed from every trial
(``four_front_s``), then extended by one more trial as a kept front is (``four_extended_s``).
Then the write of one completed trial to a study of four objectives whose 1,000, 10,000 and
100,000 trials are each on its front, the trial beating one of them (``front_write_<n>_ms``,
median, in a warm process; the front read from its rows by a process's first write,
``front_first_write_<n>_ms``).
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import report
from optuna.distributions import FloatDistribution

from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app
from functions.core.pareto_search import extended_front, pareto_front
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

NAME = "front"
DEFINITION = {
    "name": NAME,
    "objective": {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "latency", "direction": "minimize"},
                              {"name": "accuracy", "direction": "maximize"}]},
    "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
    "algorithm": {"name": "random"},
    "maxTrials": 20_000,
    "trialTemplate": {"command": ["python", "train.py", "--x", "${trialParameters.x}"]},
}


QUICK_HANDLED = 100
"""Trials of the study whose ``trial.finished`` a smoke run handles: its history is asked of
its sampler (TPE, of two objectives) a trial at a time, which costs as the square of its size."""


def values(rng: random.Random) -> list[float]:
    """Three objectives that mostly trade against one another, rounded so that ties occur."""
    loss, latency = rng.random(), rng.random()
    accuracy = (loss + latency) / 2 + rng.gauss(0, 0.01)
    return [round(loss, 3), round(latency, 3), round(accuracy, 3)]


def build(db: Path, trials: int, definition: dict[str, Any] = DEFINITION,
          draw: Callable[[random.Random], list[float]] = values, seed: int = 1, uid: str = "bench") -> StudyRecord:
    """A finished study of ``definition`` with ``trials`` completed trials, their values drawn by
    ``draw``, in one transaction: katuna's rows and Optuna's history, which the chart is drawn
    from."""
    rng, name = random.Random(seed), definition["name"]
    store = SqliteStore(db)
    spec = parse_study({**definition, "maxTrials": trials + 1})
    record = store.add_study(StudyRecord(spec, definition, str(db.parent), uid, status="completed",
                                         reason="max trials reached", created_at=time.time()))
    frozen = []
    with store.transaction():
        for number in range(trials):
            params, scored = {"x": rng.random()}, draw(rng)
            store.add_trial(TrialRecord(name, number, params, COMPLETE, values=scored))
            frozen.append(optuna.trial.create_trial(params=params, distributions={"x": FloatDistribution(0.0, 1.0)},
                                                    values=scored))
        store.optuna_study(name, [o.direction for o in spec.objectives]).add_trials(frozen)
    store.close()
    return record


def timed(client, path: str) -> tuple[float, dict]:
    start = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - start) * 1000
    assert response.status_code == 200, (path, response.status_code, response.get_data()[:300])
    return elapsed, response.get_json()


def measure(trials: int, repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "katuna.db"
        build(db, trials)
        runtime = Runtime(Settings(db=db, log_dir=Path(folder) / "logs"))
        client = create_app(runtime).test_client()
        path = f"/studies/{NAME}"
        first, view = timed(client, path)
        again = statistics.median(timed(client, path)[0] for _ in range(repeats))
        runtime.store().add_trial(TrialRecord(NAME, trials, {"x": 0.5}, COMPLETE, values=values(random.Random(2))))
        changed = timed(client, path)[0]
        timed(client, f"/ui/studies/{NAME}/plots/history")  # loads the plotting stack and reads the history
        chart_ms, chart = timed(client, f"/ui/studies/{NAME}/plots/pareto")
        runtime.close()
    return {"first_ms": first, "again_ms": again, "after_change_ms": changed, "front_size": view["frontSize"],
            "chart_ms": chart_ms, "chart_bytes": len(json.dumps(chart)),
            "chart_note": chart["layout"].get("title", {}).get("text")}


def handling(trials: int, samples: int) -> dict[str, float]:
    """CPU milliseconds (median of ``samples``) of katuna's own part of one ``trial.finished``
    of a study of two objectives of ``trials`` trials, in a warm process, through the real
    dispatcher with the events it leads to (as ``handler_latency.py`` measures a study of one):
    the trial's end stored with its study's front kept, the sampler told, the next trial asked
    (the sampler's ``ask`` apart)."""
    from handler_latency import LOOKAHEAD, SamplerClock, deliver_all, handle_one
    from instant import InstantRunner, definition, sphere

    from functions.core.events import study_created
    from functions.core.pareto import front_numbers
    from functions.handlers import asking

    def latency(params) -> float:
        return sum((float(v) - 1.0) ** 2 for v in params.values())

    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "katuna.db"
        runner = InstantRunner(db, lookahead=LOOKAHEAD, second=latency)
        study = {**definition("latency", trials + samples + 10), "objective": {"metrics": [
            {"name": "loss", "direction": "minimize"}, {"name": "latency", "direction": "minimize"}]}}
        record = runner.submit(study, Path(folder))
        store = runner.store
        with store.transaction():
            optuna_study = asking.optuna_study(record, runner.deps)
            space = {name: FloatDistribution(-5.0, 5.0) for name in ("x0", "x1")}
            for number in range(trials):
                trial = optuna_study.ask(space)
                scored = [sphere(trial.params), latency(trial.params)]
                optuna_study.tell(trial, scored)
                store.add_trial(TrialRecord("latency", number, dict(trial.params), COMPLETE, values=scored,
                                            metrics={"loss": scored[0], "latency": scored[1]}))
        store.update_study("latency", started_at=time.time())
        deliver_all(runner, [study_created("latency", record.uid)])
        clock = SamplerClock()
        own = [handle_one(runner, clock, "latency")["own_cpu"] for _ in range(samples)]
        front = len(front_numbers(store, store.get_study("latency")))
        runner.close()
    return {"handling_own_ms": statistics.median(own), "handling_front_size": front}


def worst_front(trials: int) -> float:
    """CPU seconds :func:`pareto_front` takes for ``trials`` trials shaped ``(i, -i, i)``: all on
    the front, each going in at the start of the staircase (O(n²) there, before the tree)."""
    spec = parse_study(DEFINITION)
    scored = [(i, [float(i), float(-i), float(-i)]) for i in range(trials)]  # signed: (i, -i, i)
    start = time.process_time()
    front = pareto_front(spec, scored)
    elapsed = time.process_time() - start
    assert len(front) == trials
    return elapsed


def four_objectives(trials: int) -> tuple[float, float]:
    """CPU seconds :func:`pareto_front` takes for ``trials`` trials of four objectives that sum to
    one (each on the front), and :func:`extended_front` for one more trial added to that front."""
    spec = parse_study({**DEFINITION, "objective": {"metrics": [{"name": f"m{i}", "direction": "minimize"}
                                                                for i in range(4)]}})
    rng = random.Random(4)
    drawn = [[rng.random() for _ in range(4)] for _ in range(trials + 1)]
    scored = [(number, [v / sum(values) for v in values]) for number, values in enumerate(drawn)]
    start = time.process_time()
    front = pareto_front(spec, scored[:trials])
    computed = time.process_time() - start
    values = dict(scored)
    start = time.process_time()
    extended_front(spec, [(number, values[number]) for number in front], scored[trials:])
    return computed, time.process_time() - start


FOUR = {**DEFINITION, "name": "four", "objective": {"metrics": [{"name": f"m{i}", "direction": "minimize"}
                                                                 for i in range(4)]}}
"""A study of four objectives, each minimized."""


def front_writes(size: int, writes: int) -> tuple[float, float]:
    """Milliseconds of a process's first write of a completed trial to a study of four
    objectives whose ``size`` trials are each on its front (a simplex), which reads the front's
    rows, then of the next ones (median of ``writes``): each trial beats one of the front and
    takes its place, so its write writes that trial's row and the beaten one's, where the whole
    front was written again (0.76 s at 100,000)."""
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(Path(folder) / "katuna.db")
        spec = parse_study({**FOUR, "maxTrials": size + writes + 1})
        record = store.add_study(StudyRecord(spec, FOUR, folder, "four", status="running"))
        drawn = [[rng.random() for _ in range(4)] for _ in range(size)]
        simplex = [[v / sum(values) for v in values] for values in drawn]
        with store.transaction():
            store.db.execute("DELETE FROM study_fronts WHERE study = 'four'")  # kept once, below
            for number, scored in enumerate(simplex):
                store.add_trial(TrialRecord("four", number, {"x": 0.5}, COMPLETE, values=scored))
            store.db.execute("INSERT INTO study_fronts (study, uid, change) SELECT 'four', ?, max(changed) FROM trials "
                             "WHERE study = 'four'", [record.uid])
            store.db.execute("INSERT INTO study_front_trials SELECT study, number, trial_values FROM trials "
                             "WHERE study = 'four'")
        elapsed = []
        for write in range(writes + 1):
            beaten = simplex[write * size // (writes + 1)]
            trial = TrialRecord("four", size + write, {"x": 0.5}, COMPLETE, values=[v - 1e-9 for v in beaten])
            start = time.perf_counter()
            store.add_trial(trial)
            elapsed.append((time.perf_counter() - start) * 1000)
        assert len(store.stored_front("four", record.uid)[1]) == size
        store.close()
    return elapsed[0], statistics.median(elapsed[1:])


def main() -> None:
    parser = report.arguments(__doc__, f"500 trials, {QUICK_HANDLED} for the handling (a smoke run)")
    parser.add_argument("--trials", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = report.parsed(parser)
    trials = 500 if args.quick else args.trials
    sizes = (100, 300) if args.quick else (1_000, 10_000, 100_000)
    result = measured(trials, args.repeats, sizes, args.quick)
    print_figures(result, trials, sizes, args.quick)
    saved(result, trials, args.out)


def measured(trials: int, repeats: int, sizes: tuple[int, ...], quick: bool) -> dict[str, Any]:
    """Every figure of the benchmark, by name: a smoke run (``quick``) measures smaller cases."""
    result: dict[str, Any] = measure(trials, 3 if quick else repeats)
    handled = QUICK_HANDLED if quick else trials
    result.update(handling(handled, 5 if quick else repeats), handling_trials=handled)
    result["worst_front_s"] = worst_front(2_000 if quick else 200_000)
    result["four_front_s"], result["four_extended_s"] = four_objectives(500 if quick else 20_000)
    for size in sizes:
        result[f"front_first_write_{size}_ms"], result[f"front_write_{size}_ms"] = front_writes(size, 5 if quick
                                                                                               else 20)
    return result


def print_figures(result: dict[str, Any], trials: int, sizes: tuple[int, ...], quick: bool) -> None:
    """The figures as a table and sentences, for a reader."""
    handled = result["handling_trials"]
    print(f"GET /studies/{NAME}: {trials:,} trials, three objectives, {result['front_size']:,} on the front")
    print(report.table(["request", "ms"], [["first (front computed)", result["first_ms"]],
                                            ["again (front kept)", result["again_ms"]],
                                            ["after a new trial (computed again)", result["after_change_ms"]],
                                            ["Pareto chart (history read by another)", result["chart_ms"]]]))
    print(f"Pareto chart: {result['chart_bytes']:,} bytes, {result['chart_note'] or 'every trial drawn'}")
    print(f"one trial.finished of a study of two objectives and {handled:,} trials, in a warm process "
          f"(front of {result['handling_front_size']:,}): katuna's own {result['handling_own_ms']:.2f} CPU ms (p50)")
    print(f"front of its worst shape, {2_000 if quick else 200_000:,} trials: {result['worst_front_s']:.2f} CPU s")
    print(f"four objectives, {500 if quick else 20_000:,} trials each on the front: {result['four_front_s']:.2f} "
          f"CPU s, then {result['four_extended_s']:.3f} CPU s for one more trial")
    for size in sizes:
        print(f"a completed trial's write, four objectives, {size:,} trials each on the front: "
              f"{result[f'front_write_{size}_ms']:.2f} ms (a process's first: "
              f"{result[f'front_first_write_{size}_ms']:.1f} ms)")


def saved(result: dict[str, Any], trials: int, out: Path) -> None:
    """The figures saved as JSON and a bar chart, then printed as ``name=value`` lines."""
    report.save("pareto_front", {"trials": trials, **result}, out)
    fig, ax = report.figure()
    ax.bar(["first", "again", "after a new trial"], [result["first_ms"], result["again_ms"], result["after_change_ms"]])
    ax.set_ylabel(f"ms for GET /studies/{NAME} ({trials:,} trials, three objectives)")
    report.save_plot(fig, "pareto_front", out)
    report.lines({"first_ms": round(result["first_ms"], 1), "again_ms": round(result["again_ms"], 2),
                  "after_change_ms": round(result["after_change_ms"], 1), "front_size": result["front_size"],
                  "chart_ms": round(result["chart_ms"], 1), "chart_bytes": result["chart_bytes"],
                  "worst_front_s": round(result["worst_front_s"], 3),
                  "four_front_s": round(result["four_front_s"], 3),
                  "four_extended_s": round(result["four_extended_s"], 4),
                  **{key: round(value, 2) for key, value in result.items() if key.startswith("front_") and "write" in key}})


if __name__ == "__main__":
    main()
