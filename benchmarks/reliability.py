"""Figures behind docs/reliability.md: the service under a flood of events, and the memory a
trial's huge output costs.

1. ``katuna serve`` with 4 workers on loopback; a study runs to its end, then ``--events``
   redelivered ``trial.finished`` CloudEvents and ``--studies`` submissions are fired from
   ``--threads`` threads. Prints requests per second, latency percentiles and the statuses.
2. ``katuna run`` of a trial printing ``--output-mb`` MiB (10 MiB lines and 1 KiB lines) and of
   a quiet one; prints both peak resident set sizes.

Ends with ``name=value`` lines; the JSON and a plot go to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
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


def _study(name: str) -> bytes:
    return json.dumps({"name": name, "objective": {"metric": "loss", "direction": "minimize"},
                       "parameters": [{"name": "x", "type": "float", "min": -5.0, "max": 5.0}],
                       "maxTrials": 2, "parallelism": 2,
                       "trialTemplate": {"command": [sys.executable, str(TRIAL), "${trialParameters.x}"]}}).encode()


def _serve(workdir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (workdir / "serve.log").open("w")
    process = subprocess.Popen([KATUNA, "serve", "--db", str(workdir / "katuna.db"), "--port", str(port),
                                "--workers", "4"], cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if _request(base, "GET", "/readyz")[0] == 200:
                return process, base
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("katuna serve did not start")


def _wait(base: str, name: str) -> None:
    for _ in range(3000):
        status, body = _request(base, "GET", f"/studies/{name}")
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--studies", type=int, default=50)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--output-mb", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="60 events, 3 studies, 20 MiB of output (a smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="where results go (default benchmarks/results)")
    args = parser.parse_args()
    if args.quick:
        args.events, args.studies, args.threads, args.output_mb = 60, 3, 4, 20
    figures = {**load(args.events, args.studies, args.threads), **memory(args.output_mb)}
    report.save("reliability", {"events": args.events, "studies": args.studies, "threads": args.threads,
                                "figures": figures}, args.out)
    fig, ax = report.figure()
    ax.bar(["quiet trial", f"{args.output_mb} MiB of output"], [figures["peak_rss_quiet_mb"],
                                                                figures["peak_rss_loud_mb"]])
    ax.set_ylabel("peak RSS of katuna run (MB)")
    report.save_plot(fig, "reliability", args.out)
    report.lines(figures)


if __name__ == "__main__":
    main()
