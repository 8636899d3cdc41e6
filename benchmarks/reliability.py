"""Figures behind docs/reliability.md: the service under a flood of events, under a flood of
hostile requests, and the memory a trial's huge output costs.

1. ``katuna serve`` with 4 workers on loopback; a study runs to its end, then ``--events``
   redelivered ``trial.finished`` CloudEvents and ``--studies`` submissions are fired from
   ``--threads`` threads. Prints requests per second, latency percentiles and the statuses.
2. ``katuna serve`` (2 workers, an API token) on loopback runs a study of ``--flood-trials``
   trials alone, then the same study again while ``--flood-threads`` threads send up to
   ``--flood`` hostile requests for at most ``--flood-seconds``: bad content types, a foreign
   Host, a foreign Origin, writes without the token, oversize bodies, forged events and dead
   letters, studies past the limits. Prints both wall times, ``/healthz`` latency percentiles
   during the flood, and the count of each status (``flood_accepted`` hostile requests got a 2xx).
3. ``katuna run`` of a trial printing ``--output-mb`` MiB (10 MiB lines and 1 KiB lines) and of
   a quiet one; prints both peak resident set sizes.

Ends with ``name=value`` lines; the JSON and a plot go to ``benchmarks/results/``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import report
import yaml

from functions.adapters.cloudevents_http import to_http
from functions.core.events import trial_finished

HERE = Path(__file__).parent
KATUNA = str(Path(sys.executable).with_name("katuna"))
TRIAL = HERE / "trivial_trial.py"
LOUD = HERE.parent / "tests" / "trials" / "loud.py"


def _request(base: str, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _definition(name: str, trials: int = 2, **overrides: object) -> dict:
    return {"name": name, "objective": {"metric": "loss", "direction": "minimize"},
            "parameters": [{"name": "x", "type": "float", "min": -5.0, "max": 5.0}],
            "maxTrials": trials, "parallelism": 2,
            "trialTemplate": {"command": [sys.executable, str(TRIAL), "${trialParameters.x}"]}, **overrides}


def _study(name: str, trials: int = 2) -> bytes:
    return json.dumps(_definition(name, trials)).encode()


def _serve(workdir: Path, workers: int = 4, **env: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (workdir / "serve.log").open("w")
    process = subprocess.Popen([KATUNA, "serve", "--db", str(workdir / "katuna.db"), "--port", str(port),
                                "--workers", str(workers)], cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if _request(base, "GET", "/readyz")[0] == 200:
                return process, base
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("katuna serve did not start")


def _wait(base: str, name: str, headers: dict[str, str] | None = None) -> None:
    for _ in range(3000):
        status, body = _request(base, "GET", f"/studies/{name}", headers=headers)
        if status == 200 and json.loads(body)["status"] in ("completed", "failed", "stopped"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not end")


def load(events: int, studies: int, threads: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="katuna-load-"))
    process, base = _serve(workdir)
    json_type = {"Content-Type": "application/json"}
    try:
        _request(base, "POST", "/studies", _study("settled"), json_type)
        _wait(base, "settled")
        with sqlite3.connect(workdir / "katuna.db") as db:
            uid = db.execute("SELECT uid FROM studies WHERE name = 'settled'").fetchone()[0]
        work = [to_http(trial_finished("settled", uid, i % 3, 1, outcome="exited", exit_code=0))
                for i in range(events)]
        work += [(json_type, _study(f"load-{i}")) for i in range(studies)]

        def fire(item) -> tuple[int, float]:
            headers, body = item
            started = time.perf_counter()
            status, _ = _request(base, "POST", "/studies" if headers is json_type else "/", body, headers)
            return status, time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(fire, work))
        wall = time.perf_counter() - started
        for i in range(studies):
            _wait(base, f"load-{i}")
        settled = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(workdir)
    latencies = sorted(latency for _, latency in results)
    statuses = Counter(status for status, _ in results)
    print(f"{len(work)} requests from {threads} threads in {wall:.2f}s; every study done after {settled:.2f}s")
    print("statuses: " + ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items())))
    return {"load_requests_per_second": len(work) / wall,
            "load_latency_p50_ms": 1000 * statistics.median(latencies),
            "load_latency_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
            "load_5xx_other_than_503": sum(c for s, c in statuses.items() if s >= 500 and s != 503),
            "load_seconds_until_every_study_ended": settled}


TOKEN = "benchmark-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
BAD_STUDIES = [
    _definition("huge-parallelism", parallelism=10**9),
    _definition("huge-max-trials", trials=10**30),
    _definition("huge-grid", algorithm={"name": "grid"},
                parameters=[{"name": f"p{i}", "type": "discrete", "values": list(range(1000))} for i in range(4)]),
    _definition("huge-bounds", parameters=[{"name": "x", "type": "float", "min": -1e308, "max": 1e308}]),
    _definition("backtracking", metricsCollector={"filters": ["(a+)+$"]}),
    _definition("broken-sampler", algorithm={"name": "tpe", "settings": {"n_startup_trials": "abc"}}),
    _definition("newline\n"),
]
"""Studies past the limits or wrong in ways that once slipped through; each must be refused."""


def _hostile(base: str, uid: str) -> list[tuple[str, str, str, bytes, dict[str, str]]]:
    """One of each kind of hostile request: (kind, method, path, body, headers)."""
    study = _study("flood-victim")
    forged = to_http(trial_finished("stormy", uid, 0, 1, outcome="exited", exit_code=0))
    requests = [
        ("text_plain", "POST", "/studies", study, {**BEARER, "Content-Type": "text/plain"}),
        ("form", "POST", "/studies", b"name=x", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("foreign_host", "POST", "/studies", study, {**BEARER, **JSON, "Host": "attacker.example"}),
        ("foreign_origin", "POST", "/studies", study, {**JSON, "Origin": "http://attacker.example",
                                                        "Cookie": "katuna_session=forged"}),
        ("no_token", "POST", "/studies", study, JSON),
        ("oversize", "POST", "/studies", b" " * (2 << 20) + study, {**BEARER, **JSON}),
        ("forged_event", "POST", "/", forged[1], forged[0]),
        ("forged_function", "POST", "/functions/collect", forged[1], forged[0]),
        ("dead_letter", "POST", "/dead-letters", forged[1] + b" " * 65536, forged[0]),
        ("huge_page", "GET", f"/studies/stormy/trials?page={2**64}", b"", BEARER),
    ]
    requests += [("bad_study", "POST", "/studies", json.dumps(d).encode(), {**BEARER, **JSON}) for d in BAD_STUDIES]
    return requests


def _timed_study(base: str, name: str, trials: int) -> float:
    started = time.perf_counter()
    status, body = _request(base, "POST", "/studies", _study(name, trials), {**BEARER, **JSON})
    if status not in (200, 201):
        raise RuntimeError(f"study {name} refused: {status} {body[:200]!r}")
    _wait(base, name, BEARER)
    return time.perf_counter() - started


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1))] if ordered else float("nan")


def flood(trials: int, count: int, seconds: float, threads: int) -> tuple[dict[str, float], dict[str, dict[int, int]]]:
    """The same study alone and under a flood of hostile requests, and /healthz meanwhile; the
    figures, and the statuses each kind of request got."""
    workdir = Path(tempfile.mkdtemp(prefix="katuna-flood-"))
    process, base = _serve(workdir, workers=2, KATUNA_API_TOKEN=TOKEN)
    statuses: Counter[tuple[str, int]] = Counter()
    health: list[float] = []
    sent = iter(range(count))
    lock, done = threading.Lock(), threading.Event()
    try:
        calm = _timed_study(base, "calm", trials)
        with sqlite3.connect(workdir / "katuna.db") as db:
            uid = db.execute("SELECT uid FROM studies WHERE name = 'calm'").fetchone()[0]
        hostile = _hostile(base, uid)
        deadline = time.monotonic() + seconds

        def attack() -> None:
            """Until the study ends (each kind of request sent at least once), the count is
            spent or the time is up."""
            while time.monotonic() < deadline:
                with lock:
                    number = next(sent, None)
                if number is None or (done.is_set() and number >= len(hostile)):
                    return
                kind, method, path, body, headers = hostile[number % len(hostile)]
                try:
                    status = _request(base, method, path, body or None, headers)[0]
                except OSError:
                    status = 0
                with lock:
                    statuses[kind, status] += 1

        def watch() -> None:
            while not done.is_set():
                started = time.perf_counter()
                _request(base, "GET", "/healthz")
                health.append(time.perf_counter() - started)
                time.sleep(0.05)

        attackers = [threading.Thread(target=attack) for _ in range(threads)]
        watcher = threading.Thread(target=watch)
        for thread in (*attackers, watcher):
            thread.start()
        try:
            stormy = _timed_study(base, "stormy", trials)
        finally:
            done.set()
            for thread in (*attackers, watcher):
                thread.join()
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(workdir)
    by_status = Counter()
    for (_, status), n in statuses.items():
        by_status[status] += n
    writes = {kind for kind, method, *_ in hostile if method != "GET"}
    accepted = sorted({kind for (kind, status) in statuses if kind in writes and 200 <= status < 300})
    print(f"a {trials}-trial study took {calm:.2f}s alone and {stormy:.2f}s under {sum(by_status.values())} hostile "
          f"requests from {threads} threads; /healthz p99 {1000 * _percentile(health, 0.99):.1f} ms")
    print("hostile statuses: " + ", ".join(f"{status}: {n}" for status, n in sorted(by_status.items())))
    if accepted:
        print("hostile writes accepted: " + ", ".join(accepted))
    return {"flood_study_seconds_alone": calm, "flood_study_seconds_under_flood": stormy,
            "flood_slowdown_ratio": stormy / calm, "flood_requests": sum(by_status.values()),
            "flood_accepted": sum(n for (kind, status), n in statuses.items() if kind in writes and 200 <= status < 300),
            **{f"flood_status_{status}": n for status, n in sorted(by_status.items())},
            "healthz_p50_ms": 1000 * _percentile(health, 0.5), "healthz_p95_ms": 1000 * _percentile(health, 0.95),
            "healthz_p99_ms": 1000 * _percentile(health, 0.99), "healthz_max_ms": 1000 * max(health, default=0.0)
            }, {kind: {status: n for (k, status), n in sorted(statuses.items()) if k == kind}
                for kind in sorted({k for k, _ in statuses})}


def _peak_rss_mb(workdir: Path, name: str, args: list[str]) -> float:
    definition = {"name": name, "objective": {"metric": "loss", "direction": "minimize"},
                  "parameters": [{"name": "best", "type": "categorical", "values": [0.125]}],
                  "maxTrials": 1, "parallelism": 1,
                  "trialTemplate": {"command": [sys.executable, str(LOUD), "--best", "${trialParameters.best}", *args]}}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(definition))
    process = subprocess.Popen([KATUNA, "run", str(path), "--db", str(workdir / "katuna.db")], cwd=workdir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    return usage.ru_maxrss / 1024


def memory(output_mb: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="katuna-huge-"))
    long_lines = output_mb * 3 // 4 // 10
    short_mb = output_mb - 10 * long_lines
    try:
        quiet = _peak_rss_mb(workdir, "quiet", [])
        loud = _peak_rss_mb(workdir, "loud", ["--long-lines", str(long_lines), "--short-mb", str(short_mb),
                                              "--reports", "30000"])
    finally:
        shutil.rmtree(workdir)
    print(f"peak RSS of katuna run: {quiet:.1f} MB with a quiet trial, {loud:.1f} MB with {output_mb} MiB of output")
    return {"huge_output_mb": output_mb, "peak_rss_quiet_mb": quiet, "peak_rss_loud_mb": loud}


def main() -> None:
    parser = report.arguments(__doc__, "60 events, 3 studies, 3 flooded trials, 14 MiB of output (a smoke run)")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--studies", type=int, default=50)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--flood-trials", type=int, default=200, help="trials of the study run alone, then flooded")
    parser.add_argument("--flood", type=int, default=20000, help="hostile requests at most")
    parser.add_argument("--flood-seconds", type=float, default=120.0, help="how long the flood lasts at most")
    parser.add_argument("--flood-threads", type=int, default=4)
    parser.add_argument("--output-mb", type=int, default=1024)
    args = report.parsed(parser)
    if args.quick:
        args.events, args.studies, args.threads, args.output_mb = 60, 3, 4, 14
        args.flood_trials, args.flood, args.flood_seconds, args.flood_threads = 3, 400, 30.0, 2
    flooded, by_kind = flood(args.flood_trials, args.flood, args.flood_seconds, args.flood_threads)
    figures = {**load(args.events, args.studies, args.threads), **flooded, **memory(args.output_mb)}
    report.save("reliability", {"events": args.events, "studies": args.studies, "threads": args.threads,
                                "flood": {"trials": args.flood_trials, "requests": args.flood,
                                          "seconds": args.flood_seconds, "threads": args.flood_threads,
                                          "statuses": by_kind},
                                "figures": figures}, args.out)
    fig, ax = report.figure()
    ax.bar(["quiet trial", f"{args.output_mb} MiB of output"], [figures["peak_rss_quiet_mb"],
                                                                figures["peak_rss_loud_mb"]])
    ax.set_ylabel("peak RSS of katuna run (MB)")
    report.save_plot(fig, "reliability", args.out)
    report.lines(figures)


if __name__ == "__main__":
    main()
