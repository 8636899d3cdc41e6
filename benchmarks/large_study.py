"""Every read of a study of 100,000 trials, as a user makes them, and what a trial's end costs
the views of a study of two objectives that large.

Builds two finished studies directly through the store (katuna's trial rows and Optuna's
journal, no trial processes): ``big``, one objective and three parameters (``ui_render.build``),
and ``front``, two objectives (a front of a few hundred trials). Then each read a user makes, in
a fresh process of its own as a command or a ``katuna serve`` worker meets it: the commands
(``katuna studies``, ``show``, ``best``, ``trials`` as a table, as JSON and a page of it), the
HTTP API (the studies, a study, a page of trials, the best, one trial), the dashboard (the
study page, its trial table sorted by a metric at a deep page, as a bookmark asks for it and as
its pager's next link does, the CSV export) and the charts,
the Pareto front's among them (each worker forked from one process that imported the web app,
as gunicorn forks its workers). A request is asked twice in its worker: the first answer
(``cold``: a chart's first reads the study's Optuna history) and the next (``warm``), with the
memory the worker added at its peak (MB) and the bytes of the answer; a command's seconds and
its peak resident memory. A chart is built again for the warm answer (what a running study's
page costs after each trial).

Then the Pareto front of ``front``: the write of one more completed trial, which keeps the
study's front current in its transaction, and the front shown after it in a warm process (a
Katib Experiment's status is written, and the study's view shown, after each trial): the
milliseconds and the SQLite work (virtual-machine steps), against the computation from every
trial and a new process's (the front the store keeps); and the
status of ``big`` made a Katib Experiment's (the latest trials of each state listed), as a
report after each trial computes it. Ends with ``name=value`` lines; the JSON and a bar chart
go to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import pareto_front
import report
from ui_render import NAME, build, memory_mb

from functions.adapters.sqlite_store import SqliteStore
from functions.core.records import COMPLETE, TrialRecord
from functions.core.trial_query import TrialQuery

FRONT = "front"
FRONT_DEFINITION = {
    "name": FRONT,
    "objective": {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "latency", "direction": "minimize"}]},
    "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
    "algorithm": {"name": "random"},
    "trialTemplate": {"command": ["python", "train.py", "--x", "${trialParameters.x}"]},
}
COMMANDS = {"studies": ["studies"], "show": ["show", NAME], "show_front": ["show", FRONT], "best_front": ["best", FRONT],
            "trials_table": ["trials", NAME], "trials_json": ["trials", NAME, "--json"],
            "trials_page": ["trials", NAME, "--after", "{deep}", "--limit", "100"]}
REQUESTS = {"api_studies": "/studies", "api_study": f"/studies/{NAME}", "api_front_study": f"/studies/{FRONT}",
            "api_trials_page": f"/studies/{NAME}/trials?after={{deep}}", "api_best_front": f"/studies/{FRONT}/best",
            "api_trial": f"/studies/{NAME}/trials/{{deep}}", "ui_studies": "/ui/", "ui_study": f"/ui/studies/{NAME}",
            "ui_table_sorted_deep": f"/ui/studies/{NAME}/trials.fragment?sort=metric:loss&desc=true&page={{page}}",
            "ui_table_sorted_next": f"/ui/studies/{NAME}/trials.fragment?sort=metric:loss&desc=true&page={{page}}"
                                    "&after={after}",
            "ui_csv": f"/ui/studies/{NAME}/trials.csv", "chart_history": f"/ui/studies/{NAME}/plots/history",
            "chart_parallel": f"/ui/studies/{NAME}/plots/parallel", "chart_contour": f"/ui/studies/{NAME}/plots/contour",
            "chart_importance": f"/ui/studies/{NAME}/plots/importance",
            "chart_pareto": f"/ui/studies/{FRONT}/plots/pareto", "chart_front_parallel": f"/ui/studies/{FRONT}/plots/parallel"}


def two_objectives(rng: random.Random) -> list[float]:
    """A loss and a latency that trade against each other, with noise: a front of a few hundred."""
    loss = rng.random()
    return [round(loss, 4), round((1 - loss) ** 2 + rng.random() * 0.2, 4)]


def request(db: Path, path: str) -> dict[str, float]:
    """In this process, as a fresh ``katuna serve`` worker: ``path`` asked twice (a chart built
    again the second time), the seconds of each answer, the memory added at the peak, the bytes."""
    from functions.adapters.web import create_app
    from functions.adapters.web.chart_cache import chart_cache
    from functions.runtime import Runtime
    from functions.settings import Settings

    runtime = Runtime(Settings(db=db, log_dir=db.parent / "logs"))
    client = create_app(runtime).test_client()
    client.get("/healthz")
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
    before, seconds, size = memory_mb(os.getpid(), "VmRSS"), [], 0
    for _ in range(2):
        chart_cache.clear()
        start = time.perf_counter()
        response = client.get(path)
        size = sum(len(chunk) for chunk in response.response)
        seconds.append(time.perf_counter() - start)
        assert response.status_code == 200, (path, response.status_code)
    added = memory_mb(os.getpid(), "VmHWM") - before
    runtime.close()
    return {"cold_s": seconds[0], "warm_s": seconds[1], "peak_added_mb": added, "bytes": size}


def forked(db: Path, path: str) -> dict[str, float]:
    """:func:`request` in a worker forked from this process, as gunicorn forks its workers: a
    fresh app, runtime and caches each time, the modules imported once (before any clock starts)."""
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(reading)
            os.write(writing, json.dumps(request(db, path)).encode())
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(writing)
    with os.fdopen(reading, "rb") as answer:
        sent = answer.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, (path, status)
    return json.loads(sent)


def requests_in_workers(db: Path, paths: dict[str, str]) -> dict[str, dict[str, float]]:
    """Each of ``paths`` in a fresh worker, forked from one process that imported the web app:
    one interpreter start for them all rather than one each."""
    done = subprocess.run([sys.executable, __file__, "--requests", str(db), json.dumps(paths)], check=True,
                          capture_output=True, text=True, cwd=Path(__file__).parent)
    return json.loads(done.stdout.splitlines()[-1])


def serve_requests(db: Path, paths: dict[str, str]) -> dict[str, dict[str, float]]:
    """The worker's modules imported here once, then each request in a worker of its own."""
    for module in ("functions.adapters.web", "functions.adapters.web.chart_cache", "functions.runtime",
                   "functions.settings"):
        importlib.import_module(module)
    return {name: forked(db, path) for name, path in paths.items()}


MEASURED = ("import os, subprocess, sys; child = subprocess.Popen(sys.argv[1:]); _, status, usage = "
            "os.wait4(child.pid, 0); print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, file=sys.stderr)")
"""Runs a command and writes its exit code and peak resident memory (KiB) to stderr: from a
small process of its own, as a process's peak counts that of the one it was forked from."""


def command(db: Path, args: list[str]) -> dict[str, float]:
    """``katuna <args>`` from start to exit: seconds, its peak resident memory (MB), its output's bytes."""
    katuna = str(Path(sys.executable).with_name("katuna"))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, katuna, *args, "--db", str(db)], capture_output=True,
                          check=True)
    seconds = time.perf_counter() - start
    code, peak = done.stderr.decode().split()[-2:]
    assert code == "0", (args, done.stderr[-500:])
    return {"seconds": seconds, "peak_mb": int(peak) / 1024, "bytes": len(done.stdout)}


def front_after_trial(db: Path, trials: int) -> dict[str, float]:
    """Milliseconds and SQLite steps of the front of ``front`` computed from every trial (a
    process that finds no front kept), of the write of one more completed trial (which keeps the
    front current in its transaction), of the front shown again in a warm process after it, and
    shown by a new process (nothing kept in memory: the front the store keeps), in a copy of the
    database."""
    from functions.adapters.sqlite_fronts import fill_fronts
    from functions.core import pareto
    from functions.core.pareto import best_trials

    store = SqliteStore(db)
    record = store.get_study(FRONT)
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0

    def counted(work) -> tuple[float, int, object]:
        steps[0] = 0
        store.db.conn.set_progress_handler(step, 100)
        start = time.perf_counter()
        done = work()
        elapsed = (time.perf_counter() - start) * 1000
        store.db.conn.set_progress_handler(None, 0)
        return elapsed, steps[0] * 100, done

    def shown() -> tuple[float, int, int]:
        return counted(lambda: len(best_trials(store, record)))

    with store.transaction():  # a process finding no front kept computes it from every trial
        store.db.execute("DELETE FROM study_fronts")
    first_ms, first_steps, _ = shown()
    with store.transaction():
        fill_fronts(store.db)
    pareto._FRONTS = pareto._Fronts()
    shown()
    write_ms, write_steps, _ = counted(lambda: store.add_trial(
        TrialRecord(FRONT, trials, {"x": 0.5}, COMPLETE, values=two_objectives(random.Random(3)))))
    after_ms, after_steps, size = shown()
    pareto._FRONTS = pareto._Fronts()
    fresh_ms, fresh_steps, _ = shown()
    store.close()
    return {"first_ms": first_ms, "first_steps": first_steps, "write_ms": write_ms, "write_steps": write_steps,
            "after_trial_ms": after_ms, "after_trial_steps": after_steps, "fresh_process_ms": fresh_ms,
            "fresh_process_steps": fresh_steps, "front_size": size}


def katib_status(db: Path) -> dict[str, float]:
    """Milliseconds and SQLite steps of the status of ``big`` as a Katib Experiment's (made one
    in this copy of the database: its trials reported): what each report after a trial, and the
    tick's check of a listed Experiment, compute."""
    from functions.core.resources import KATIB_API_VERSIONS, Origin, Ref
    from functions.handlers.writeback import behind

    store = SqliteStore(db)
    origin = Origin(Ref("Experiment", "bench", NAME, KATIB_API_VERSIONS[0]), "bench-experiment", 1)
    store.update_study(NAME, origin=origin.to_dict())
    store.set_trials_reported(NAME, store.latest_trial_change(NAME))
    record, steps = store.get_study(NAME), [0]

    def step() -> int:
        steps[0] += 1
        return 0

    store.db.conn.set_progress_handler(step, 100)
    start = time.perf_counter()
    behind(record, origin, {"status": {}}, store)
    elapsed = (time.perf_counter() - start) * 1000
    store.close()
    return {"status_ms": elapsed, "status_steps": steps[0] * 100}


def page_follows(db: Path, page: int) -> int:
    """The number of the trial the trial table's ``page`` (of 50, by loss, descending) follows:
    the one its pager's next link names from the page before."""
    store = SqliteStore(db)
    query = TrialQuery(sort="metric:loss", descending=True, limit=1, offset=(page - 1) * 50 - 1)
    [trial] = store.trials_page(NAME, query)[1]
    store.close()
    return trial.number


def main() -> None:
    parser = report.arguments(__doc__, "2,000 trials (a smoke run)")
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--requests", nargs=2, metavar=("DB", "PATHS"), help=argparse.SUPPRESS)
    args = report.parsed(parser)
    if args.requests:
        print(json.dumps(serve_requests(Path(args.requests[0]), json.loads(args.requests[1]))))
        return
    trials = 2_000 if args.quick else args.trials
    deep = {"deep": str(trials - 1_000), "page": str(trials // 100)}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "katuna.db"
        start = time.perf_counter()
        build(db, trials)
        pareto_front.build(db, trials, FRONT_DEFINITION, two_objectives, seed=2, uid="bench-front")
        print(f"built two studies of {trials:,} trials in {time.perf_counter() - start:.1f} s", flush=True)
        deep["after"] = str(page_follows(db, int(deep["page"])))
        commands = {name: command(db, [word.format(**deep) for word in words]) for name, words in COMMANDS.items()}
        requests = requests_in_workers(db, {name: path.format(**deep) for name, path in REQUESTS.items()})
        copy = Path(tmp) / "copy.db"
        copy.write_bytes(db.read_bytes())
        front = front_after_trial(copy, trials)
        katib = katib_status(copy)
    print(f"two studies of {trials:,} trials: each command in a process of its own")
    print(report.table(["command", "s", "peak MB", "bytes"],
                       [[name, r["seconds"], r["peak_mb"], r["bytes"]] for name, r in commands.items()]))
    print("each request in a fresh worker: the first answer, the next (a chart built again), the memory added")
    print(report.table(["request", "cold s", "warm s", "peak added MB", "bytes"],
                       [[name, r["cold_s"], r["warm_s"], r["peak_added_mb"], r["bytes"]] for name, r in requests.items()]))
    print(f"the front of {trials:,} trials of two objectives ({front['front_size']} on it): first "
          f"{front['first_ms']:.0f} ms ({front['first_steps']:,} SQLite steps), a trial's write keeping it "
          f"{front['write_ms']:.1f} ms ({front['write_steps']:,} steps), shown again after that trial "
          f"{front['after_trial_ms']:.1f} ms ({front['after_trial_steps']:,} steps), by a new process "
          f"{front['fresh_process_ms']:.1f} ms ({front['fresh_process_steps']:,} steps)")
    print(f"a Katib Experiment's status of {trials:,} trials, as a report after a trial computes it: "
          f"{katib['status_ms']:.1f} ms ({katib['status_steps']:,} SQLite steps)")
    result = {"trials": trials, "commands": commands, "requests": requests, "front": front, "katib": katib}
    report.save("large_study", {**result, **summary(result)}, args.out)
    fig, ax = report.figure()
    names = [*commands, *requests]
    ax.barh(names, [r["seconds"] for r in commands.values()] + [r["warm_s"] for r in requests.values()])
    ax.set_xlabel(f"seconds (a request's warm answer), {trials:,} trials")
    ax.invert_yaxis()
    report.save_plot(fig, "large_study", args.out)
    report.lines(summary(result))


def summary(result: dict) -> dict[str, float]:
    """The closing figures, which the JSON holds too."""
    requests, commands, front = result["requests"], result["commands"], result["front"]
    return {"trials": result["trials"],
            "slowest_request_s": round(max(max(r["cold_s"], r["warm_s"]) for r in requests.values()), 2),
            "largest_request_added_mb": round(max(r["peak_added_mb"] for r in requests.values()), 1),
            "chart_parallel_warm_s": round(requests["chart_parallel"]["warm_s"], 2),
            "chart_pareto_warm_s": round(requests["chart_pareto"]["warm_s"], 2),
            "cli_trials_table_mb": round(commands["trials_table"]["peak_mb"], 1),
            "cli_trials_json_mb": round(commands["trials_json"]["peak_mb"], 1),
            "front_first_ms": round(front["first_ms"], 1), "front_write_ms": round(front["write_ms"], 1),
            "front_write_steps": front["write_steps"], "front_after_trial_ms": round(front["after_trial_ms"], 1),
            "front_after_trial_steps": front["after_trial_steps"],
            "front_fresh_process_ms": round(front["fresh_process_ms"], 1),
            "front_fresh_process_steps": front["fresh_process_steps"],
            "katib_status_ms": round(result["katib"]["status_ms"], 1),
            "katib_status_steps": result["katib"]["status_steps"]}

if __name__ == "__main__":
    main()
