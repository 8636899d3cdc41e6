"""``katuna show NAME NUMBER``: one trial as a person reads it, with what a listing leaves out:
its whole reason, the runs its attempt lost to disruptions (a preempted or evicted pod) and
each value it reported, in order (its metrics' history), as the dashboard's trial page shows
them. Every value passes through :mod:`functions.terminal`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from functions.core import trial_csv
from functions.core.memory_sizes import memory
from functions.core.records import ACTIVE_STATES
from functions.terminal import markup, pairs, printable, text


def print_trial(console: Console, study: str, view: dict[str, Any], paged: bool = False, db: str = "") -> None:
    """The trial ``view`` (:func:`~functions.core.views.trial_detail`) of the study ``study``
    (``paged``: its observations from a later page on; ``db``: the ``--db`` of the command that
    shows the next page, :func:`~functions.cli_common.on_database`)."""
    pareto = "" if "pareto" not in view else ("  on the Pareto front" if view["pareto"] else "  not on the Pareto front")
    exit_code = "" if view["exitCode"] is None else f"  exit code {view['exitCode']}"
    console.print(f"[bold]{markup(study)}[/bold] trial {view['number']}  state: {view['state']}  "
                  f"attempt {view['attempt']}{exit_code}{pareto}", highlight=False)
    if "generation" in view:
        parent = "none (drawn from the search space)" if view["parent"] is None else str(view["parent"])
        console.print(f"generation {view['generation']}  parent {parent}", highlight=False)
    if "initialTrial" in view:
        console.print(f"given: initialTrials[{view['initialTrial']}] of the study, run as given",
                      highlight=False)
    console.print(text("params: " + pairs(view["params"])), highlight=False)
    console.print(text("metrics: " + (pairs(view["metrics"]) or "none reported")), highlight=False)
    console.print(_times(view), highlight=False)
    if view["peakMemory"] is not None:
        console.print(f"peak memory: {memory(view['peakMemory'])}", highlight=False)
    if view["imageDigest"]:
        console.print(text(f"image: {view['imageDigest']}"), highlight=False)
    for run in view["lostRuns"]:
        console.print(text(f"run lost: pod {run['pod']}: {run['cause']}"
                           + (f" ({run['message']})" if run.get("message") else "")), highlight=False)
    if view["reason"]:
        console.print("reason:", highlight=False)
        for line in view["reason"].splitlines():
            console.print(text(f"  {line}"), highlight=False, soft_wrap=True)
    console.print(_observations(view["observations"], paged, view["state"] in ACTIVE_STATES))
    shown, count, after = len(view["observations"]), view["observationCount"], view["observationsAfter"]
    if paged or shown < count:
        more = "" if after is None else f"; more follow: katuna show {study} {view['number']} --after {after}{db}"
        console.print(text(f"{shown:,} of {count:,} observations shown{more}"), highlight=False, soft_wrap=True)


def _value(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _times(view: dict[str, Any]) -> str:
    """When the trial started and finished (UTC), and how long it ran."""
    started, finished = view["startedAt"], view["finishedAt"]
    took = "" if (ran := trial_csv.duration(started, finished)) is None else f" ({ran:.1f} s)"
    return f"started: {_when(started)}  finished: {_when(finished)}{took}"


def _when(value: float | None) -> str:
    return "-" if value is None else datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _observations(observations: list[dict[str, Any]], paged: bool, active: bool) -> Table | str:
    """The values of a page of those the trial reported, in order, with their step and time
    where it gave them; none, as the dashboard's trial page says it (only a trial still waiting or
    running has some to come)."""
    if not observations:
        if paged:
            return "observations: none after the key given"
        return "observations: none stored yet (they are read when the trial ends)" if active else \
            "observations: none stored"
    timed = any(o["timestamp"] for o in observations)
    table = Table(title=f"Observations ({len(observations)})", box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("metric", "value", "step", *(["time"] if timed else [])):
        table.add_column(header, justify="left" if header in ("metric", "time") else "right")
    for o in observations:
        cells = [o["metric"], _value(o["value"]), "" if o["step"] is None else str(o["step"])]
        table.add_row(*(Text(printable(cell)) for cell in [*cells, *([o["timestamp"] or ""] if timed else [])]))
    return table
