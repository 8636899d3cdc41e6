"""A burst of ``trial.finished`` CloudEvents posted concurrently to ``katuna serve --workers 4``.

A study of 1,000 trials is prepared with every trial running at once (random sampler): each
attempt's log already holds its ``loss=`` line, and an owner file names this process as the one
running it, as for trials another worker launched. Then ``katuna serve`` (gunicorn, 4 workers,
one SQLite file, loopback only) gets all 1,000 ``trial.finished`` events in binary CloudEvents
mode from a bounded pool of client threads, plus a share of them a second time (a broker's
redelivery). A 503 (temporary) is retried as a broker would; anything else is a failure.
Afterwards the store is checked: every trial completed once, in katuna's table and in Optuna's
journal. Ends with ``events_per_s=``, ``lost=`` and ``duplicated=`` (both must be 0).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import report
from instant import definition, sphere

from functions.adapters.cloudevents_http import to_http
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import Event, study_created, trial_finished
from functions.core.launch import TrialLaunch
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.settings import Settings

NAME = "burst"
KATUNA = str(Path(sys.executable).with_name("katuna"))


def identity() -> str:
    """This process as the local executor names an owner (pid and start time)."""
    stat = Path("/proc/self/stat").read_text()
    return f"{os.getpid()}:{stat.rsplit(')', 1)[1].split()[19]}"


class HeldExecutor:
    """Launching writes the attempt's finished log and owner file; the attempt then stays
    "running" (owned by this live process) until its ``trial.finished`` is posted."""

    def __init__(self, logs: Path) -> None:
        self.logs, self.owner = logs, identity()

    def launch(self, launch: TrialLaunch) -> None:
        folder = self._folder(launch)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{launch.number}.{launch.attempt}.log").write_text(f"loss={sphere(launch.params)!r}\n")
        (folder / f"{launch.number}.{launch.attempt}.owner").write_text(self.owner)

    def exists(self, launch: TrialLaunch) -> bool:
        return (self._folder(launch) / f"{launch.number}.{launch.attempt}.owner").exists()

    def _folder(self, launch: TrialLaunch) -> Path:
        """Where the local executor keeps the attempt's log: its study's own folder."""
        return self.logs / (launch.log_folder or launch.study)


def prepare(settings: Settings, trials: int, base_dir: Path) -> StudyRecord:
    """The study, with all ``trials`` suggested and running (over as many events as the
    suggest handler takes to fill that many slots)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = definition(NAME, trials, "random", parallelism=trials)
    store = SqliteStore(settings.db)
    record = store.add_study(StudyRecord(parse_study(study), study, str(base_dir), "uid-burst", created_at=time.time()))
    dispatcher = Dispatcher(Deps(store, HeldExecutor(settings.logs), time.time))
    pending = deque([study_created(NAME, record.uid)])
    while pending:
        pending.extend(dispatcher.deliver(pending.popleft()))
    running = store.count_trials(NAME).running
    store.close()
    assert running == trials, f"{running} of {trials} trials running"
    return record


def post(base: str, event: Event) -> tuple[int, int]:
    """Deliver one event as a broker would: retry while the answer is 503. Final status, tries."""
    headers, body = to_http(event)
    for attempt in range(1, 20):
        request = urllib.request.Request(base + "/", data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, attempt
        except urllib.error.HTTPError as error:
            if error.code != 503:
                return error.code, attempt
        time.sleep(0.05 * attempt)
    return 503, attempt


def serve(settings: Settings, port: int, workers: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen([KATUNA, "serve", "--db", str(settings.db), "--port", str(port),
                                "--workers", str(workers)], stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("katuna serve did not become ready:\n" + log.read_text())


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def audit(db: Path, trials: int) -> dict[str, int]:
    """Lost: trials not completed. Duplicated: trials completed or observed more than once."""
    conn = sqlite3.connect(db)
    states = Counter(dict(conn.execute("SELECT state, count(*) FROM trials WHERE study = ? GROUP BY state", [NAME])))
    observed = conn.execute("SELECT count(*) FROM (SELECT trial FROM observations WHERE study = ? "
                            "GROUP BY trial, attempt HAVING count(*) > 1)", [NAME]).fetchone()[0]
    handled = conn.execute("SELECT count(*) FROM processed_events WHERE handler = 'collect'").fetchone()[0]
    told = Counter()
    for (body,) in conn.execute("SELECT body FROM optuna_journal WHERE stream = "
                                "(SELECT id FROM optuna_streams WHERE name = ?)", [NAME]):
        log = json.loads(body)
        if log["op_code"] == 6 and log.get("state") == 1:
            told[log["trial_id"]] += 1
    conn.close()
    return {"complete": states["COMPLETE"], "lost": trials - states["COMPLETE"], "handled": handled,
            "told_complete": len(told), "duplicated": observed + sum(1 for n in told.values() if n > 1)}


def main() -> None:
    parser = report.arguments(__doc__, "60 events, 8 clients, 2 workers (a smoke run)")
    parser.add_argument("-n", "--events", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=32, help="concurrent client threads (the bound)")
    parser.add_argument("--redeliver", type=float, default=0.1, help="share of events posted a second time")
    args = report.parsed(parser)
    trials, clients = (60, 8) if args.quick else (args.events, args.clients)
    if args.quick:
        args.workers = 2
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db=Path(tmp) / "katuna.db")
        record = prepare(settings, trials, Path(tmp))
        events = [trial_finished(NAME, record.uid, n, 1, outcome="exited", exit_code=0) for n in range(trials)]
        again = events[:: max(1, round(1 / args.redeliver))] if args.redeliver > 0 else []
        port = free_port()
        process = serve(settings, port, args.workers, Path(tmp) / "serve.log")
        try:
            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                answers = list(pool.map(lambda e: post(f"http://127.0.0.1:{port}", e), events + again))
            seconds = time.perf_counter() - start
        finally:
            process.terminate()
            process.wait(timeout=30)
        found = audit(settings.db, trials)
    statuses = Counter(status for status, _ in answers)
    retries = sum(tries - 1 for _, tries in answers)
    posted = len(answers)
    rate = posted / seconds
    print(f"{trials} trial.finished events (+{len(again)} redelivered) from {clients} client threads to "
          f"katuna serve --workers {args.workers}")
    print(report.table(["posted", "seconds", "events/s", "answers", "503 retries", "completed", "lost", "duplicated"],
                       [[posted, seconds, rate, dict(statuses), retries, found["complete"], found["lost"],
                         found["duplicated"]]]))
    result = {"events": trials, "redelivered": len(again), "clients": clients, "workers": args.workers,
              "seconds": seconds, "events_per_s": rate, "statuses": dict(statuses), "retries_503": retries, **found}
    report.save("burst", result, args.out)
    fig, ax = report.figure()
    ax.bar(["posted", "completed", "lost", "duplicated"], [posted, found["complete"], found["lost"], found["duplicated"]],
           color=["tab:blue", "tab:green", "tab:red", "tab:orange"])
    ax.set_title(f"{posted} events in {seconds:.1f} s ({rate:.0f}/s), {args.workers} workers")
    report.save_plot(fig, "burst", args.out)
    report.lines({"posted": posted, "failed_posts": posted - statuses.get(202, 0), "lost": found["lost"],
                  "duplicated": found["duplicated"], "events_per_s": rate})


if __name__ == "__main__":
    main()
