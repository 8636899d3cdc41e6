"""Dashboard render times with a large study (10,000 trials by default).

Builds a completed study directly through the store (katuna's trial rows and Optuna's journal,
no trial processes), then asks the Flask app for the studies list, the study page, each chart,
the trial table (sorted by a metric, filtered by a range, a deep page) and the CSV export.
Prints a table (first request and the median of the next ones, the body's bytes and those a
browser receives, gzipped where the service compresses, and the time of an answer a browser asks
for again, the chart kept) and ends with ``name=value`` lines in milliseconds, then the bytes of
the study page's charts as built and as sent (``charts_bytes``, ``charts_sent_bytes``) and the
milliseconds of their kept answers (``charts_kept_gzip_ms``); the JSON and a bar chart go to
``benchmarks/results/``. Also prints the
peak memory of ``katuna trials --json`` listing the study, beside ``katuna studies``'s (what
any command takes), in MB.

Then, as a browser opens the study page, a real ``katuna serve`` worker (one, with 12 threads as
the image runs it) is asked for the page's charts all at once, twice (the second time with
another parameter picked for slice and contour), then once more after one more trial completed
(what a running study's page costs after each trial): the seconds until the last chart, the
worker's peak and settled resident memory, and the longest ``/healthz`` answer meanwhile.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import optuna
import report
from optuna.distributions import CategoricalDistribution, FloatDistribution

from functions.adapters.sqlite_store import SqliteStore
from functions.adapters.web import create_app
from functions.adapters.web.chart_cache import chart_cache
from functions.core.records import COMPLETE, FAIL, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

NAME = "big"
DEFINITION = {
    "name": NAME,
    "objective": {"metric": "loss", "direction": "minimize", "additionalMetrics": ["accuracy"]},
    "parameters": [{"name": "lr", "type": "float", "min": 1e-5, "max": 1e-1, "log": True},
                   {"name": "dropout", "type": "float", "min": 0.0, "max": 0.5},
                   {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam", "rmsprop"]}],
    "algorithm": {"name": "random"},
    "maxTrials": 10_000,
    "trialTemplate": {"command": ["python", "train.py", "--lr", "${trialParameters.lr}", "--dropout",
                                  "${trialParameters.dropout}", "--optimizer", "${trialParameters.optimizer}"]},
}


def build(db: Path, trials: int) -> None:
    """A completed study of ``trials`` trials (one in twenty failed), in one transaction."""
    rng = random.Random(1)
    store = SqliteStore(db)
    spec = parse_study({**DEFINITION, "maxTrials": trials})
    now = time.time()
    store.add_study(StudyRecord(spec, DEFINITION, str(db.parent), "bench", status="completed",
                                reason="max trials reached", created_at=now - trials, started_at=now - trials,
                                completed_at=now))
    distributions = {"lr": FloatDistribution(1e-5, 1e-1, log=True), "dropout": FloatDistribution(0.0, 0.5),
                     "optimizer": CategoricalDistribution(["sgd", "adam", "rmsprop"])}
    with store.transaction():
        study = store.optuna_study(NAME, ["minimize"])
        frozen = []
        for number in range(trials):
            params = {"lr": 10 ** rng.uniform(-5, -1), "dropout": rng.uniform(0, 0.5),
                      "optimizer": rng.choice(["sgd", "adam", "rmsprop"])}
            failed = number % 20 == 7
            loss = None if failed else abs(math.log10(params["lr"]) + 3) + params["dropout"] + rng.random() * 0.1
            metrics = {} if failed else {"loss": loss, "accuracy": 1 - loss / 5}
            start = now - trials + number
            store.add_trial(TrialRecord(NAME, number, params, FAIL if failed else COMPLETE,
                                        values=None if failed else [loss], metrics=metrics,
                                        reason="exited with code 1" if failed else "", exit_code=1 if failed else 0,
                                        created_at=start, started_at=start, finished_at=start + rng.uniform(1, 60)))
            frozen.append(optuna.trial.create_trial(
                params=params, distributions=distributions, value=loss,
                state=optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE))
        study.add_trials(frozen)
    store.close()


def measure(client, path: str, repeats: int) -> tuple[float, float, int, int, float]:
    """Milliseconds of the first request, the median of the next ``repeats``, the body size, what
    a browser receives of it (gzipped, where the service compresses it), and the median
    milliseconds of ``repeats`` more asked as a browser asks (gzip taken), the chart kept.

    Charts are cached until the study changes; the cache is emptied before each of the first
    requests so the figures are those of building each chart again (what a running study costs),
    and kept for the last ones (what a finished study's page costs each time it is viewed).
    """
    times, size = [], 0
    for _ in range(repeats + 1):
        chart_cache.clear()
        start = time.perf_counter()
        response = client.get(path)
        body = response.get_data()
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code, body[:300])
        size = len(body)
    sent, kept = b"", []
    for _ in range(repeats):
        start = time.perf_counter()
        sent = client.get(path, headers={"Accept-Encoding": "gzip"}).get_data()
        kept.append((time.perf_counter() - start) * 1000)
    return times[0], statistics.median(times[1:]), size, len(sent), statistics.median(kept)


def main() -> None:
    parser = report.arguments(__doc__, "200 trials, one repeat (a smoke run)")
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = report.parsed(parser)
    if args.quick:
        args.trials, args.repeats = 200, 1
    results, memory = render_times(args.trials, args.repeats)
    print("first: the first request (Optuna's journal is replayed into memory, imports load);")
    print("median: the next requests, each building its page or chart again")
    print("kept gzip ms: asked again as a browser asks, the chart kept (a finished study's page viewed again)")
    print(report.table(["page", "first ms", "median ms", "bytes", "gzipped", "kept gzip ms"],
                       [[name, *figures] for name, figures in results.items()]))
    report.save("ui_render", {"trials": args.trials, "repeats": args.repeats,
                              "pages": {name: {"first_ms": first, "median_ms": median, "bytes": size, "sent_bytes": sent,
                                               "kept_gzip_ms": kept}
                                        for name, (first, median, size, sent, kept) in results.items()}, **memory},
                args.out)
    fig, ax = report.figure()
    ax.barh(list(results), [figures[1] for figures in results.values()])
    ax.set_xlabel(f"milliseconds (median), {args.trials:,} trials")
    ax.invert_yaxis()
    report.save_plot(fig, "ui_render", args.out)
    charts = [figures for name, figures in results.items() if name.startswith("chart_")]
    report.lines({**{f"{name}_ms": round(figures[1], 1) for name, figures in results.items()}, **memory,
                  "charts_bytes": sum(figures[2] for figures in charts),
                  "charts_sent_bytes": sum(figures[3] for figures in charts),
                  "charts_kept_gzip_ms": round(sum(figures[4] for figures in charts), 1)})


def render_times(trials: int, repeats: int) -> tuple[dict[str, tuple[float, float, int, int, float]], dict[str, float]]:
    """First and median milliseconds, body size, bytes sent gzipped and milliseconds of a kept
    answer sent gzipped, of every page and chart; the peak memory of the command line's listings."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "katuna.db"
        start = time.perf_counter()
        build(db, trials)
        print(f"built a {trials}-trial study in {time.perf_counter() - start:.1f} s")
        runtime = Runtime(Settings(db=db, log_dir=Path(tmp) / "logs"))
        client = create_app(runtime).test_client()
        deep_page = max(1, trials // 500)  # page 40 of 20,000 trials; a page past the last redirects to it
        pages = {
            "studies_list": "/ui/",
            "study_page": f"/ui/studies/{NAME}",
            "chart_history": f"/ui/studies/{NAME}/plots/history",
            "chart_parallel": f"/ui/studies/{NAME}/plots/parallel",
            "chart_slice": f"/ui/studies/{NAME}/plots/slice?params=lr,dropout",
            "chart_contour": f"/ui/studies/{NAME}/plots/contour?params=lr,dropout",
            "chart_importance": f"/ui/studies/{NAME}/plots/importance",
            "trial_table": f"/ui/studies/{NAME}/trials",
            "trial_table_sorted_filtered": f"/ui/studies/{NAME}/trials?sort=metric:accuracy&desc=1"
                                           f"&field=param:dropout&min=0.1&max=0.4&state=COMPLETE&page={deep_page}",
            "trial_page": f"/ui/studies/{NAME}/trials/{trials // 2}",
            "csv_export": f"/ui/studies/{NAME}/trials.csv",
        }
        results = {name: measure(client, path, repeats) for name, path in pages.items()}
        runtime.close()
        memory = {"cli_studies_mb": peak_mb("studies", "--db", str(db)),
                  "cli_trials_json_mb": peak_mb("trials", NAME, "--json", "--db", str(db)),
                  "cli_trials_table_mb": peak_mb("trials", NAME, "--db", str(db)),
                  "cli_trials_table_s": wall_s("trials", NAME, "--db", str(db)),
                  **concurrent_charts(db)}
    return results, memory


CHARTS = ("history", "parallel", "slice?params={}", "contour?params={}", "importance", "intermediate")
"""The charts the study page fetches at once (a single-objective study: no Pareto front)."""
THREADS = 12
"""Threads of the one gunicorn worker, as ``knative/Dockerfile`` runs the service."""


def concurrent_charts(db: Path) -> dict[str, float]:
    """The page's charts fetched at once from a real worker, then again with other parameters."""
    port = free_port()
    katuna = str(Path(sys.executable).with_name("katuna"))
    server = subprocess.Popen([katuna, "serve", "--db", str(db), "--port", str(port), "--workers", "1",
                               "--threads", str(THREADS)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        worker = worker_pid(server.pid)
        figures: dict[str, float] = {"worker_start_mb": memory_mb(worker, "VmRSS")}
        for label, params in (("charts", "lr,dropout"), ("charts_other_params", "dropout,optimizer")):
            seconds, health = fetch_at_once(base, [f"/ui/studies/{NAME}/plots/" + c.format(params) for c in CHARTS])
            figures[f"{label}_all_s"] = round(seconds, 1)
            figures[f"{label}_healthz_max_s"] = round(health, 2)
        add_trial(db)
        seconds, health = fetch_at_once(base, [f"/ui/studies/{NAME}/plots/" + c.format("lr,dropout") for c in CHARTS])
        figures["charts_new_trial_all_s"] = round(seconds, 1)
        figures["charts_new_trial_healthz_max_s"] = round(health, 2)
        figures["worker_peak_mb"] = memory_mb(worker, "VmHWM")
        figures["worker_after_mb"] = memory_mb(worker, "VmRSS")
        return figures
    finally:
        server.terminate()
        server.wait(timeout=30)


def add_trial(db: Path) -> None:
    """One more completed trial, written as katuna records a trial's end: its row and Optuna's record."""
    store = SqliteStore(db)
    number = store.optuna_history(NAME)
    params = {"lr": 1e-3, "dropout": 0.25, "optimizer": "adam"}
    distributions = {"lr": FloatDistribution(1e-5, 1e-1, log=True), "dropout": FloatDistribution(0.0, 0.5),
                     "optimizer": CategoricalDistribution(["sgd", "adam", "rmsprop"])}
    with store.transaction():
        store.add_trial(TrialRecord(NAME, number, params, COMPLETE, values=[0.3], metrics={"loss": 0.3, "accuracy": 0.94},
                                    exit_code=0))
        store.optuna_study(NAME, ["minimize"]).add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=0.3))
    store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("katuna serve did not answer /healthz")


def worker_pid(master: int) -> int:
    """The gunicorn worker: the master's one child."""
    for _ in range(100):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn started no worker")


def memory_mb(pid: int, field: str) -> float:
    """A ``/proc/<pid>/status`` memory figure (``VmRSS`` now, ``VmHWM`` the peak), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} for process {pid}")


def fetch_at_once(base: str, paths: list[str]) -> tuple[float, float]:
    """Seconds until every path answered, fetched at once, and the longest ``/healthz`` answer
    while they were (asked once a second, as a liveness probe does)."""
    done = threading.Event()
    health: list[float] = []

    def probe() -> None:
        while not done.is_set():
            start = time.perf_counter()
            with contextlib.suppress(OSError):  # a probe that failed counts as its whole wait
                urllib.request.urlopen(base + "/healthz", timeout=60).read()
            health.append(time.perf_counter() - start)
            done.wait(1.0)

    def get(path: str) -> None:
        with urllib.request.urlopen(base + path, timeout=1800) as answer:
            assert answer.status == 200, (path, answer.status)
            answer.read()

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
        list(pool.map(get, paths))
    seconds = time.perf_counter() - start
    done.set()
    prober.join()
    return seconds, max(health, default=0.0)


PEAK_OF_CHILD = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
"""Run by a fresh interpreter whose only child is the command: ``RUSAGE_CHILDREN`` is its peak."""


def wall_s(*command: str) -> float:
    """The seconds ``katuna command`` takes, its output piped and thrown away."""
    katuna = str(Path(sys.executable).with_name("katuna"))
    start = time.perf_counter()
    subprocess.run([katuna, *command], check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - start, 2)


def peak_mb(*command: str) -> float:
    """The peak resident memory of ``katuna command``, its output thrown away, in MB."""
    katuna = str(Path(sys.executable).with_name("katuna"))
    kilobytes = subprocess.run([sys.executable, "-c", PEAK_OF_CHILD, katuna, *command], check=True,
                               capture_output=True, text=True).stdout
    return round(int(kilobytes) / 1024, 1)


if __name__ == "__main__":
    main()
