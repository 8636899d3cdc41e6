"""Latency of handling one ``trial.finished`` as a study grows, and of a cold start.

One warm process holds a study of TPE (katuna's default) trials on a SQLite store, with
``katuna run``'s default look-ahead (``KATUNA_LOOKAHEAD``). At each size (100, 1,000, 10,000
stored trials by default; they are asked and told straight through Optuna, writing the journal
records a run writes, and stored, in one transaction) it handles ``trial.finished`` events one
at a time through the real dispatcher, each with the events it leads to: read the trial's
output, store its metrics, tell Optuna, launch the trial prepared ahead, ask for the next one,
record each event as processed, commit. Each handling is split into the sampler's time
(Optuna's ``ask``) and katuna's own (everything else), in CPU time of the handling thread (the
figure that counts: on a shared machine, wall time mostly measures the other processes) and
in wall time.

A fresh Python process then handles one more ``trial.finished`` on the largest study: the cold
start, imports included, until the freed slot is refilled (the prepared trial launched); then
it asks the sampler for the next trial ahead (``cold_ask_s``, from the process's start).

Then another study's ``trial.finished`` events are handled in this process, one after the other,
while a second process handles the end of a trial that printed ``--parse-mb`` MiB (50 by
default; lines of 1 KiB, a report of its loss in every 64): its output read and parsed into metrics. Each of this process's handlings
is a write to the same database, as another worker's or another study's would be; how long each
took while the output was parsed, against the same handlings alone, shows whether the parse
holds the database's write lock (``writer_ms_max_during_parse``, ``writer_events_during_parse``;
a handling that waited past the busy timeout counts in ``writer_refused_during_parse``).

Before all that, the text parser's own rate (``--parse-rate``: this part alone), on output made
only of reports (``epoch=N loss=... accuracy=...``, as a trial reporting every step prints),
parsed a line at a time as a trial's end reads it, with Katib's default filter and with a
Katib-style filter of the study's own (``name: value``): microseconds per report line
(``parse_us_per_report_line``, ``parse_custom_us_per_report_line``) and MiB/s, each beside the
same output parsed by the parser before it matched filters in Python's ``re`` or over bytes
(tests/metrics_reference.py), in alternating rounds on the same machine.

Ends with ``own_ms_p50_at_<largest>=`` (target <= 10 ms and <= 2x the value at the smallest
size) and ``cold_start_s=`` (target <= 1 s).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import report
from instant import InstantExecutor, InstantRunner, definition, sphere

import functions.handlers.asking as handler_steps
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import TemporaryError
from functions.core.events import TRIAL_SUGGESTED, Event, study_created, trial_finished
from functions.core.records import COMPLETE, RUNNING, TrialRecord
from functions.core.space import distribution
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.settings import Settings

NAME = "latency"
LOUD, WRITER = "loud", "writer"
"""The study whose one trial printed a large output, and the one written meanwhile."""
HERE = Path(__file__).parent
LOOKAHEAD = Settings().lookahead
"""``katuna run``'s default."""


def clocks() -> tuple[float, float]:
    """Wall time, and CPU time of this thread (which a busy shared machine does not inflate)."""
    return time.perf_counter(), time.thread_time()


class SamplerClock:
    """Wall and CPU time spent in the sampler's ``ask``, around the handlers' sampling step."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self._sample = handler_steps.sample
        handler_steps.sample = self._timed

    def _timed(self, *args):
        wall, cpu = clocks()
        try:
            return self._sample(*args)
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.thread_time() - cpu


def grow(runner: InstantRunner, to: int) -> None:
    """Add completed trials until the study holds ``to``, in one transaction: each asked and told
    through Optuna (random suggestions, so growing is quick), which writes the same journal
    records a trial run by the handlers writes, and stored in katuna's table."""
    store = runner.store
    record = store.get_study(NAME)
    have = store.count_trials(NAME).created
    space = {p.name: distribution(p) for p in record.spec.parameters}
    now = time.time()
    with store.transaction():
        study = handler_steps.optuna_study(record, runner.deps)
        kept, study.sampler = study.sampler, optuna.samplers.RandomSampler(seed=to)
        for number in range(have, to):
            trial = study.ask(space)
            value = sphere(trial.params)
            study.tell(trial, value)
            store.add_trial(TrialRecord(NAME, number, dict(trial.params), COMPLETE, values=[value],
                                        metrics={"loss": value}, created_at=now, started_at=now, finished_at=now))
        study.sampler = kept


def running_trial(runner: InstantRunner, name: str = NAME) -> TrialRecord:
    running = runner.store.trials(name, (RUNNING,))
    assert len(running) == 1, running
    return running[0]


def finished_event(runner: InstantRunner, name: str = NAME) -> Event:
    trial = running_trial(runner, name)
    record = runner.store.get_study(name)
    return trial_finished(name, record.uid, trial.number, trial.attempt, outcome="exited", exit_code=0)


def deliver_all(runner: InstantRunner, events: list[Event]) -> None:
    """Deliver the events, and the events they lead to, in the order the embedded broker does."""
    while events:
        events = runner.dispatcher.deliver(events[0]) + events[1:]


def handle_one(runner: InstantRunner, clock: SamplerClock, name: str = NAME) -> dict[str, float]:
    """Milliseconds of one ``trial.finished`` and the events it leads to (total, sampler,
    katuna's own; wall and CPU): the next trial is launched and another asked for."""
    event = finished_event(runner, name)
    clock.wall = clock.cpu = 0.0
    wall, cpu = clocks()
    deliver_all(runner, [event])
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    return {"total": wall * 1000, "sampler": clock.wall * 1000, "own": (wall - clock.wall) * 1000,
            "total_cpu": cpu * 1000, "sampler_cpu": clock.cpu * 1000, "own_cpu": (cpu - clock.cpu) * 1000}


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cold(db: Path) -> None:
    """In a fresh process: handle the pending ``trial.finished`` on the stored study until the
    freed slot is refilled, then the events that ask for the next trial."""
    runner = InstantRunner(db, lookahead=LOOKAHEAD)
    emitted = runner.dispatcher.deliver(finished_event(runner))
    launches = [event for event in emitted if event.type == TRIAL_SUGGESTED]
    for event in launches:
        runner.dispatcher.deliver(event)
    print(f"cold_handled_s={time.process_time():.3f}", flush=True)
    deliver_all(runner, [event for event in emitted if event not in launches])
    print(f"cold_asked_s={time.process_time():.3f}", flush=True)
    runner.close()


def cold_process(db: Path) -> tuple[dict[str, float], float]:
    """Run :func:`cold` in a fresh process: the seconds from its start (the interpreter's
    included) to each line it prints and to its exit, the CPU seconds it had used at each line
    (``<line>_cpu``), and the CPU seconds it took in all."""
    start, cpu = time.perf_counter(), children_cpu()
    marks = {}
    with subprocess.Popen([sys.executable, __file__, "--cold", str(db)], stdout=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            name, used = line.split("=", 1)
            marks[name], marks[f"{name}_cpu"] = time.perf_counter() - start, float(used)
    if child.returncode:
        raise SystemExit(f"the cold process failed with exit code {child.returncode}")
    marks["exit"] = time.perf_counter() - start
    return marks, children_cpu() - cpu


def parse_child(db: Path, megabytes: float) -> None:
    """In a fresh process: launch the loud study's one trial, then handle its end, which reads and
    parses its ``megabytes`` MiB of output; prints ``parsing`` before that handling, ``parsed`` after."""
    ended: list[Event] = []
    store = SqliteStore(db)
    dispatcher = Dispatcher(Deps(store, InstantExecutor(ended.append, noise_bytes=int(megabytes * (1 << 20))), time.time))
    pending = [study_created(LOUD, store.get_study(LOUD).uid)]
    while pending:
        pending = dispatcher.deliver(pending[0]) + pending[1:]
    print("parsing", flush=True)
    dispatcher.deliver(ended[0])
    print("parsed", flush=True)
    store.close()


def writer_ms(runner: InstantRunner) -> float | None:
    """Milliseconds of one ``trial.finished`` of the writer study with the events it leads to;
    None when the database stayed busy past the busy timeout (a 503 to the sender)."""
    started = time.perf_counter()
    try:
        deliver_all(runner, [finished_event(runner, WRITER)])
    except TemporaryError:
        return None
    return (time.perf_counter() - started) * 1000


def parse_phase(tmp: Path, megabytes: float, alone: int) -> dict[str, float]:
    """The writer study's handlings alone, then while another process parses a loud trial's output."""
    db = tmp / "parse.db"
    runner = InstantRunner(db)
    runner.submit(definition(WRITER, 50_000), tmp)
    runner.submit(definition(LOUD, 1), tmp)
    deliver_all(runner, [study_created(WRITER, runner.store.get_study(WRITER).uid)])
    before = [writer_ms(runner) for _ in range(alone)]
    during: list[float | None] = []
    with subprocess.Popen([sys.executable, __file__, "--parse-child", str(db), "--parse-mb", str(megabytes)],
                          stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None and child.stdout.readline().strip() == "parsing"
        parsed = threading.Event()
        started = time.perf_counter()
        threading.Thread(target=lambda: (child.stdout.readline(), parsed.set()), daemon=True).start()
        while not parsed.is_set():
            during.append(writer_ms(runner))
        parse_s = time.perf_counter() - started
    if child.returncode:
        raise SystemExit(f"the parsing process failed with exit code {child.returncode}")
    runner.close()
    done = [ms for ms in during if ms is not None]
    return {"parse_mb": megabytes, "parse_s": parse_s,
            "writer_ms_p50_alone": statistics.median(ms for ms in before if ms is not None),
            "writer_events_during_parse": len(done), "writer_refused_during_parse": len(during) - len(done),
            "writer_ms_p50_during_parse": statistics.median(done) if done else parse_s * 1000,
            "writer_ms_max_during_parse": max(done, default=parse_s * 1000)}


CUSTOM_FILTER = r"([\w|-]+)\s*:\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
"""A filter of the kind Katib users give for ``name: value`` output."""


def report_lines(megabytes: float, separator: str) -> list[str]:
    """``megabytes`` MiB of output lines that each report a step's loss and accuracy."""
    lines, size, step = [], 0, 0
    while size < megabytes * (1 << 20):
        line = f"epoch{separator}{step} loss{separator}{1 / (step + 1):.6f} accuracy{separator}{step % 997 / 997:.6f}\n"
        lines.append(line)
        size += len(line)
        step += 1
    return lines


def parse_rate(megabytes: float, rounds: int = 3) -> dict[str, float]:
    """Microseconds per report line and MiB/s of the text parser, with the default filter and a
    study's own, now and before (tests/metrics_reference.py), medians of alternating rounds."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    import metrics_reference

    from functions.core.metrics import parse_text

    cases = {"": ("=", ()), "custom_": (":", (CUSTOM_FILTER,))}
    parsers = {"": parse_text, "_before": metrics_reference.parse_text}
    seconds: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for label, (separator, filters) in cases.items():
            lines = report_lines(megabytes, separator)
            for when, parse in parsers.items():
                started = time.process_time()
                for line in lines:
                    parse([line], ["loss", "accuracy"], filters)
                seconds.setdefault((label, when), []).append((time.process_time() - started) / len(lines))
    figures = {}
    for (label, when), per_line in seconds.items():
        figures[f"parse_{label}us_per_report_line{when}"] = statistics.median(per_line) * 1e6
        figures[f"parse_{label}mib_per_s{when}"] = megabytes / (statistics.median(per_line) * len(lines))
    return figures


def main() -> None:
    parser = report.arguments(__doc__, "sizes 20,60 and 5 samples (a smoke run)")
    parser.add_argument("--sizes", default="100,1000,10000", help="stored trials at which to measure")
    parser.add_argument("--samples", type=int, default=30, help="events handled at each size")
    parser.add_argument("--parse-mb", type=float, default=50.0,
                        help="MiB of output parsed while another study is written (2 with --quick)")
    parser.add_argument("--parse-rate", action="store_true", help="only measure the text parser's rate")
    parser.add_argument("--parse-rate-mb", type=float, default=2.0,
                        help="MiB of report lines the parser's rate is measured on (0.2 with --quick)")
    parser.add_argument("--cold", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parse-child", type=Path, help=argparse.SUPPRESS)
    args = report.parsed(parser)
    if args.cold:
        cold(args.cold)
        return
    if args.parse_child:
        parse_child(args.parse_child, args.parse_mb)
        return
    rate = parse_rate(0.2 if args.quick else args.parse_rate_mb)
    print(f"text parser, output made only of reports, a line at a time (CPU, median of 3 rounds): default filter "
          f"{rate['parse_us_per_report_line']:.1f} µs a line ({rate['parse_us_per_report_line_before']:.1f} before), "
          f"a study's own filter {rate['parse_custom_us_per_report_line']:.1f} µs "
          f"({rate['parse_custom_us_per_report_line_before']:.1f} before)")
    if args.parse_rate:
        report.lines(rate)
        return
    sizes = [20, 60] if args.quick else [int(s) for s in args.sizes.split(",")]
    samples = 5 if args.quick else args.samples
    clock = SamplerClock()
    rows, result = [], {"sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "katuna.db"
        runner = InstantRunner(db, lookahead=LOOKAHEAD)
        runner.submit(definition(NAME, sizes[-1] + 10 * samples * len(sizes), "tpe", dimensions=3), Path(tmp))
        runner.store.update_study(NAME, started_at=time.time())
        for size in sizes:
            grow(runner, size)
            if size == sizes[0]:
                deliver_all(runner, [study_created(NAME, runner.store.get_study(NAME).uid)])
            timings = [handle_one(runner, clock) for _ in range(samples)]
            figures = {f"{key}_ms_p50": statistics.median(t[key] for t in timings) for key in timings[0]}
            figures["own_cpu_ms_p90"] = p([t["own_cpu"] for t in timings], 0.9)
            result["sizes"][size] = figures
            rows.append([size, figures["total_cpu_ms_p50"], figures["sampler_cpu_ms_p50"], figures["own_cpu_ms_p50"],
                         figures["own_cpu_ms_p90"], figures["total_ms_p50"], figures["own_ms_p50"]])
        runner.close()
        marks, cold_cpu = cold_process(db)
        cold_inside, cold_ask, cold_wall = marks["cold_handled_s"], marks["cold_asked_s"], marks["exit"]
        cold_start_cpu = marks["cold_handled_s_cpu"]
        parse = parse_phase(Path(tmp), 2.0 if args.quick else args.parse_mb, samples)
    print(f"one trial.finished handled in a warm process (TPE, {samples} events per size); CPU time of the "
          "handling thread, and wall time")
    print(report.table(["stored trials", "CPU ms p50", "sampler CPU p50", "own CPU p50", "own CPU p90",
                        "wall ms p50", "own wall p50"], rows))
    print(f"cold start: a fresh process handling one trial.finished on the {sizes[-1]}-trial study: the freed "
          f"slot refilled {cold_inside:.2f} s after the process was started (imports included), the next trial "
          f"asked for ahead at {cold_ask:.2f} s; the whole process {cold_wall:.2f} s of wall, {cold_cpu:.2f} s of CPU "
          f"({cold_start_cpu:.2f} s of it until the slot was refilled)")
    print(f"another study written while a process parses a trial's {parse['parse_mb']:g} MiB output "
          f"({parse['parse_s']:.2f} s): {parse['writer_events_during_parse']} trial.finished handled meanwhile "
          f"({parse['writer_refused_during_parse']} refused as busy), p50 {parse['writer_ms_p50_during_parse']:.1f} ms, "
          f"max {parse['writer_ms_max_during_parse']:.1f} ms; alone p50 {parse['writer_ms_p50_alone']:.1f} ms")
    first, last = result["sizes"][sizes[0]], result["sizes"][sizes[-1]]
    result.update(samples=samples, cold_start_s=cold_inside, cold_ask_s=cold_ask, cold_process_s=cold_wall,
                  cold_process_cpu_s=cold_cpu, cold_start_cpu_s=cold_start_cpu, lookahead=LOOKAHEAD, parse=parse,
                  parse_rate=rate,
                  own_growth=last["own_cpu_ms_p50"] / first["own_cpu_ms_p50"])
    report.save("handler_latency", result, args.out)
    fig, ax = report.figure()
    ax.plot(sizes, [result["sizes"][s]["own_cpu_ms_p50"] for s in sizes], "o-", label="katuna's own, CPU (p50)")
    ax.plot(sizes, [result["sizes"][s]["own_ms_p50"] for s in sizes], "o:", label="katuna's own, wall (p50)")
    ax.plot(sizes, [result["sizes"][s]["sampler_cpu_ms_p50"] for s in sizes], "s--",
            label="sampler: TPE ask, CPU (p50)")
    ax.axhline(10, color="grey", linestyle=":", label="target for katuna's own: 10 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("stored trials in the study")
    ax.set_ylabel("ms per trial.finished")
    ax.set_title("Handling one trial.finished in a warm process")
    ax.legend()
    report.save_plot(fig, "handler_latency", args.out)
    report.lines({f"own_ms_p50_at_{sizes[0]}": first["own_cpu_ms_p50"],
                  f"sampler_ms_p50_at_{sizes[-1]}": last["sampler_cpu_ms_p50"],
                  f"own_wall_ms_p50_at_{sizes[-1]}": last["own_ms_p50"], "own_growth": result["own_growth"],
                  "cold_process_cpu_s": cold_cpu, "cold_start_cpu_s": cold_start_cpu, "cold_process_s": cold_wall, "cold_ask_s": cold_ask,
                  "cold_start_s": cold_inside,
                  **{key: value for key, value in parse.items() if key.startswith(("writer_", "parse_s"))}, **rate,
                  f"own_ms_p50_at_{sizes[-1]}": last["own_cpu_ms_p50"]})


if __name__ == "__main__":
    main()
