"""One study of 100,000 trials through the real handlers, dispatcher, broker and SQLite store.

The random sampler (Katib's default) proposes; trials are instant (see ``instant.py``): each
reports ``trial.finished`` the moment it is launched and its output is one ``loss=`` line, so
what is measured is katuna's control plane alone, two events per trial. A thread samples the
progress and the resident memory every second. Ends with ``peak_rss_mb=`` (target <= 500),
``db_mb=`` and ``trials_per_s=``; the study must complete with every trial stored.
"""

from __future__ import annotations

import resource
import tempfile
import threading
import time
from pathlib import Path

import report
from instant import InstantRunner, definition

NAME = "scale"


def rss_mb() -> float:
    """This process's resident memory now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Sampler(threading.Thread):
    """Every ``interval`` seconds: elapsed time, trials launched, resident memory."""

    def __init__(self, runner: InstantRunner, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.runner, self.interval = runner, interval
        self.points: list[tuple[float, int, float]] = []
        self.stopped = threading.Event()
        self.start_time = time.perf_counter()

    def point(self) -> None:
        self.points.append((time.perf_counter() - self.start_time, self.runner.executor.launched, rss_mb()))

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.point()


def main() -> None:
    parser = report.arguments(__doc__, "300 trials (a smoke run)")
    parser.add_argument("-n", "--trials", type=int, default=100_000)
    args = report.parsed(parser)
    trials = 300 if args.quick else args.trials
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "katuna.db"
        runner = InstantRunner(db)
        runner.submit(definition(NAME, trials, "random", dimensions=2), Path(tmp))
        sampler = Sampler(runner)
        sampler.start()
        start = time.perf_counter()
        record = runner.run(NAME)
        seconds = time.perf_counter() - start
        sampler.stopped.set()
        sampler.point()
        counts = runner.store.count_trials(NAME)
        runner.close()
        db_mb = sum(p.stat().st_size for p in Path(tmp).glob("katuna.db*")) / 2**20
    complete = record.status == "completed" and counts.complete == trials and counts.created == trials
    peak = peak_rss_mb()
    result = {"trials": trials, "status": record.status, "reason": record.reason, "counts": counts.__dict__,
              "seconds": seconds, "trials_per_s": trials / seconds, "peak_rss_mb": peak, "db_mb": db_mb,
              "progress": sampler.points}
    print(f"one study, {trials} instant trials, random sampler, embedded broker and SQLite store")
    print(report.table(["trials", "status", "complete", "seconds", "trials/s", "peak RSS MB", "db MB"],
                       [[trials, record.status, counts.complete, seconds, trials / seconds, peak, db_mb]]))
    report.save("scale", result, args.out)
    fig, ax = report.figure()
    elapsed = [p[0] for p in sampler.points]
    ax.plot(elapsed, [p[1] for p in sampler.points], color="tab:blue")
    ax.set_xlabel("seconds")
    ax.set_ylabel("trials launched", color="tab:blue")
    memory = ax.twinx()
    memory.plot(elapsed, [p[2] for p in sampler.points], color="tab:red")
    memory.axhline(500, color="tab:red", linestyle=":")
    memory.set_ylabel("resident memory, MB (target 500)", color="tab:red")
    memory.set_ylim(bottom=0)
    ax.set_title(f"One study of {trials:,} trials")
    report.save_plot(fig, "scale", args.out)
    report.lines({"completed": int(complete), "trials": counts.complete, "trials_per_s": trials / seconds,
                  "db_mb": db_mb, "peak_rss_mb": peak})
    if not complete:
        raise SystemExit(f"the study did not complete: {record.status} {record.reason!r}, {counts}")


if __name__ == "__main__":
    main()
