"""How long a katuna process takes to end: a short command, and ``katuna serve`` stopping.

A command is timed from its start to its exit, on a database holding one study, two ways:
``katuna studies`` (its entry point, :mod:`functions.entry`), and the same CLI
run as ``python -c "from functions.cli import main; main()"``, which leaves the exit to Python
and its teardown of every object the command imported. The difference is what the entry point
saves each command.

``katuna serve --workers 2`` is started, asked once for ``/readyz``, then sent SIGTERM; timed
are the moments its workers and then the whole service are gone (a Knative revision scaling
down, a deploy, Ctrl-C).

Ends with ``command_s=`` (the console script's wall time, median), ``command_teardown_s=``
(the same command with Python's teardown), ``serve_workers_gone_s=`` and ``serve_stop_s=``.
"""

from __future__ import annotations

import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import report

from functions.adapters.sqlite_store import SqliteStore
from functions.core.validate import parse_study
from functions.handlers import Deps
from functions.handlers.submit import store_study

NAME = "process_exit"
KATUNA = [sys.executable, "-m", "functions"]
"""The ``katuna`` command (``python -m functions`` is the console script's twin)."""
TEARDOWN = [sys.executable, "-c", "import sys; sys.argv[0] = 'katuna'; from functions.cli import main; main()"]


def listed_database(folder: Path) -> Path:
    """A database holding one study, for the command to list."""
    path = folder / "katuna.db"
    definition = {"name": "listed", "objective": {"metric": "loss", "direction": "minimize"},
                  "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
                  "maxTrials": 1, "trialTemplate": {"command": ["echo", "${trialParameters.x}"]}}
    store = SqliteStore(path)
    store_study(Deps(store, executor=None, clock=time.time, workdir=str(folder)), parse_study(definition), definition)
    store.close()
    return path


def command_seconds(argv: list[str], database: Path) -> float:
    start = time.perf_counter()
    subprocess.run([*argv, "studies", "--db", str(database)], check=True, capture_output=True)
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def serve_stop_seconds(folder: Path) -> tuple[float, float]:
    """Seconds from SIGTERM until the workers are gone, and until the service is."""
    port = _free_port()
    with (folder / "serve.log").open("w") as log:
        service = subprocess.Popen([*KATUNA, "serve", "--db", str(folder / "katuna.db"), "--port", str(port),
                                    "--workers", "2"], cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).close()
            break
        except OSError:
            if time.monotonic() > deadline or service.poll() is not None:
                service.kill()
                raise SystemExit("katuna serve did not start:\n" + (folder / "serve.log").read_text()) from None
            time.sleep(0.02)
    try:
        workers = [int(pid) for pid in Path(f"/proc/{service.pid}/task/{service.pid}/children").read_text().split()]
    except OSError as exc:
        raise SystemExit(f"katuna serve ended as it started ({exc}):\n" + (folder / "serve.log").read_text()) from exc
    start = time.perf_counter()
    service.send_signal(signal.SIGTERM)
    workers_gone = None
    while service.poll() is None or workers_gone is None:
        if workers_gone is None and all(_gone(pid) for pid in workers):
            workers_gone = time.perf_counter() - start
        time.sleep(0.002)
    return workers_gone, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = report.arguments(__doc__, "2 runs of each (a smoke run)")
    parser.add_argument("-r", "--repeats", type=int, default=9, help="runs of each; the median counts")
    args = report.parsed(parser, argv)
    repeats = 2 if args.quick else args.repeats
    results: dict[str, list[float]] = {"command": [], "command_teardown": [], "serve_workers_gone": [],
                                       "serve_stop": []}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        database = listed_database(folder)
        for _ in range(repeats):
            results["command"].append(command_seconds(KATUNA, database))
            results["command_teardown"].append(command_seconds(TEARDOWN, database))
            workers_gone, stopped = serve_stop_seconds(folder)
            results["serve_workers_gone"].append(workers_gone)
            results["serve_stop"].append(stopped)
    figures = {f"{key}_s": statistics.median(values) for key, values in results.items()}
    report.repeated_runs(NAME, results, figures, args.out, "a katuna process ending", rotation=15)
    report.lines(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
