"""What the CLI prints about studies and trials: tables and summaries.

Every value that comes from a study or a trial is passed through :mod:`functions.terminal`,
so rich shows it as it is, never as markup or control sequences.
"""

from __future__ import annotations

import re
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from functions.adapters.sqlite_store import SqliteStore
from functions.core.pareto import FRONT_SHOWN, best_trials, front_sample
from functions.core.records import FAIL, StudyRecord, TrialQuery, TrialRecord
from functions.core.views import cost_text, figure, study_view
from functions.settings import Settings
from functions.terminal import UNBOUNDED, markup, text

INACTIVE = "—"
"""How a table shows a parameter a trial does not have (a conditional one whose ``when`` did not hold)."""


def print_result(console: Console, store: SqliteStore, record: StudyRecord, settings: Settings) -> None:
    """How a ``katuna run`` ended: the status and reason, the best trials (of several objectives,
    a sample of the Pareto front, as ``katuna show`` has it), where results are."""
    view = study_view(store, record)
    console.print(f"Study [bold]{markup(record.name)}[/bold]: {record.status} ({markup(record.reason)})")
    if record.spec.multi_objective:
        best, size = front_sample(store, record)
        title = front_title(record, size)
    else:
        best, title = best_trials(store, record, limit=5), "Best trials"
    if best:
        console.print(trial_table(record, best, title=title))
    else:
        _print_last_failure(console, store, record)
    console.print(f"Results: {markup(settings.db.resolve())} (study {markup(repr(record.name))})", highlight=False)
    console.print(f"Logs:    {markup(settings.logs.resolve() / record.log_folder)}", highlight=False)
    console.print(f"Trials: {view['trials']} ({view['counts']['complete']} complete, "
                  f"{view['counts']['failed']} failed, {view['counts']['pruned']} pruned)")


FAILURE_LINES = 12
"""The most lines of the last failed trial's reason a run's summary prints."""


def _print_last_failure(console: Console, store: SqliteStore, record: StudyRecord) -> None:
    """For a run with no completed trial, the reason of the last trial that failed, with the
    last lines it printed: the first thing to know, where a table of best trials is empty."""
    failed, count = store.query_trials(record.name, TrialQuery(states=(FAIL,), sort="number", descending=True, limit=1))
    if not failed:
        console.print("No trial completed.")
        return
    own, notes = _split_reason(failed[0].reason)
    first, *rest = own or ["(no reason recorded)"]
    console.print(text(f"No trial completed. The last of {count} failed, trial {failed[0].number}: {first}"),
                  highlight=False)
    for line in rest[-FAILURE_LINES:]:
        console.print(text(f"  {line}"), highlight=False)
    for note in notes:
        console.print(text(f"Before: {note}"), highlight=False)
    console.print(f"Every trial's reason: katuna trials {markup(record.name)} --json", highlight=False)


def print_study(console: Console, view: dict[str, Any], record: StudyRecord, front: list[TrialRecord]) -> None:
    """``katuna show``: status, reason, description, counts, best trial (or, with several objectives, the
    Pareto ``front``) and node pool of a study's view."""
    counts = view["counts"]
    console.print(f"[bold]{markup(view['name'])}[/bold]  status: {view['status']}  "
                  f"reason: {markup(view['reason'] or '-')}")
    if view["description"]:
        console.print(text(view["description"]), highlight=False)
    cap = f"{view['maxTrials']} (set by {view['maxTrialsSetBy']})" if view["maxTrialsSetBy"] else view["maxTrials"] or "-"
    running = "interrupted" if view.get("interrupted") else "running"  # no process runs them: a run resumes them
    console.print(f"algorithm: {markup(view['algorithm'])}  trials: {view['trials']}/{cap} "
                  f"(complete {counts['complete']}, failed {counts['failed']}, pruned {counts['pruned']}, "
                  f"{running} {counts['running']}, waiting {counts['waiting']})")
    made = view["reproducibility"]
    if made["seed"] is not None:
        ahead = "" if made["lookahead"] is None else f"  look-ahead {made['lookahead']}"
        console.print(f"seed: {made['seed']}  katuna {markup(made['katunaVersion'])}  "
                      f"optuna {markup(made['optunaVersion'])}{ahead}", highlight=False)
    if view["trialTemplateSource"]:
        console.print(text(f"trial template: read from {view['trialTemplateSource']} at submission"), highlight=False)
    best = view["best"]
    if isinstance(best, dict):
        console.print(f"best: trial {best['number']} value {best['value']:.6g} params {markup(best['params'])}")
    elif record.spec.multi_objective:
        console.print(trial_table(record, front, title=front_title(record, view["frontSize"])) if front
                      else f"{front_title(record)}: no completed trial{'' if record.terminal else ' yet'}")
    pool = view["nodePool"]
    if pool:
        console.print(text(f"node pool: {pool['pool']} ({pool['provider']}, {pool['capacity']}, "
                           f"{', '.join(pool['machineTypes'])}, up to {pool['maxNodes']} nodes) {pool['phase']}"
                           f"{' and deleted' if pool['deleted'] else ''}: {figure(pool['hours'])} h, "
                           f"at most {figure(pool['maxNodeHours'])} node-hours"
                           + (f"; {pool['message']}" if pool["message"] else "")), highlight=False)
        if pool["nodeHours"] is not None:
            cost = cost_text(pool)
            console.print(f"node-hours: {figure(pool['nodeHours'])} measured on {pool['nodesSeen']} nodes "
                          f"({pool['nodesRunning']} up){', ' + cost if cost else ''}", highlight=False)
        elif pool["nodesProblem"]:
            console.print(text(f"node-hours: not measured: {pool['nodesProblem']}"), highlight=False)


def studies_table(views: list[dict[str, Any]]) -> Table:
    """``katuna studies``: one row per study view."""
    table = Table()
    for column in ("name", "status", "algorithm", "trials", "best", "reason"):
        table.add_column(column)
    for view in views:
        best = view["best"]
        shown = f"{best['value']:.6g}" if isinstance(best, dict) else (f"{view['frontSize']} on the front" if best else "")
        table.add_row(*map(text, (view["name"], view["status"], view["algorithm"], view["trials"], shown,
                                  view["reason"] or "")))
    return table


def trial_table(record: StudyRecord, trials: list[TrialRecord], title: str | None = None) -> RenderableType:
    """Trials with their values, additional metrics and parameters; without a title (all
    trials) with their state, and with their reasons in a line when any has one
    (:func:`reason_cell`)."""
    return _TrialTable(record, trials, title)


EARLIER_ATTEMPT = re.compile(r"^attempt \d+ [a-z]+: ")
"""How the notes of a trial's earlier attempts begin, which follow its reason (``attempt 1
interrupted: ...``, :func:`functions.handlers.collect._run_again`): katuna's words, not the
trial's output."""


def _split_reason(reason: str) -> tuple[list[str], list[str]]:
    """A trial's reason as its own lines (the first, then the last lines the trial printed,
    where it has them), and the notes of its earlier attempts that follow."""
    lines = [line for line in reason.splitlines() if line.strip()]
    notes: list[str] = []
    while len(lines) > 1 and EARLIER_ATTEMPT.match(lines[-1]):
        notes.insert(0, lines.pop())
    return lines, notes


def reason_cell(reason: str) -> str:
    """A trial's reason in one line: its first, and where that ends on the trial's last lines
    (a failure's), the last of them, which is most often what went wrong."""
    lines, _ = _split_reason(reason)
    if len(lines) > 1 and lines[0].endswith("last lines:"):
        return f"{lines[0]} … {lines[-1].strip()}"
    return lines[0] if lines else ""


class _TrialTable:
    """A table of trials laid out for the width it is printed in: a column for each value,
    metric and parameter where they fit side by side; else a column for each value, and the
    metrics and the parameters as ``name=value`` lists, which wrap between entries. So a wide
    study stays readable in an 80-column terminal, and no number is split across lines.

    A parameter a trial does not have (its ``when`` did not hold) shows as ``—`` in its column
    and is left out of a list; a value or metric not measured (yet) is blank."""

    def __init__(self, record: StudyRecord, trials: list[TrialRecord], title: str | None) -> None:
        self._spec = record.spec
        self._trials = trials
        self._title = title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = self._table(wide=True, width=UNBOUNDED)
        natural = Measurement.get(console, options.update_width(UNBOUNDED), wide).maximum
        yield wide if natural <= options.max_width else self._table(wide=False, width=options.max_width)

    def _table(self, wide: bool, width: int) -> Table:
        """The table, at least as wide as its title where ``width`` has room for it (rich fails
        on a table whose least width is past the room it is given: a terminal a few columns wide)."""
        spec = self._spec
        with_state = self._title is None
        with_reason = with_state and any(t.reason for t in self._trials)
        title_width = min(Text.from_markup(self._title).cell_len, width) if self._title else None
        table = Table(title=self._title, box=box.SIMPLE_HEAD, pad_edge=False, min_width=title_width)
        table.add_column("trial", justify="right", no_wrap=True)
        if with_state:
            table.add_column("state", no_wrap=True)
        for objective in spec.objectives:
            table.add_column(text(objective.metric), justify="right", no_wrap=True)
        if wide:
            for metric in spec.additional_metrics:
                table.add_column(text(metric), justify="right")
            for parameter in spec.parameters:
                table.add_column(text(parameter.name))
        else:
            if spec.additional_metrics:
                table.add_column("metrics", overflow="fold")
            table.add_column("params", overflow="fold")
        if with_reason:
            table.add_column("reason", overflow="fold", max_width=50)
        for trial in self._trials:
            row = [str(trial.number), *([trial.state] if with_state else []), *self._values(trial),
                   *(self._cells(trial) if wide else self._lists(trial))]
            if with_reason:
                row.append(reason_cell(trial.reason))
            table.add_row(*map(text, row))
        return table

    def _values(self, trial: TrialRecord) -> list[str]:
        values: list[float | None] = [*trial.values] if trial.values else [None] * len(self._spec.objectives)
        return [_number(v, ".6g") for v in values]

    def _cells(self, trial: TrialRecord) -> list[str]:
        """A cell for each additional metric, then one for each parameter."""
        return [*[_number(trial.metrics.get(m), ".4g") for m in self._spec.additional_metrics],
                *[_short(trial.params[p.name]) if p.name in trial.params else INACTIVE for p in self._spec.parameters]]

    def _lists(self, trial: TrialRecord) -> list[str]:
        """The measured additional metrics as one ``name=value`` list (when the study has any),
        then the parameters the trial has as another."""
        metrics = " ".join(f"{m}={trial.metrics[m]:.4g}" for m in self._spec.additional_metrics if m in trial.metrics)
        params = " ".join(f"{p.name}={_short(trial.params[p.name])}" for p in self._spec.parameters
                          if p.name in trial.params)
        return [metrics, params] if self._spec.additional_metrics else [params]


def front_title(record: StudyRecord, size: int | None = None) -> str:
    """The title of a Pareto front's table: which way each objective is better, and, when it
    shows a sample of a front of ``size`` trials, how many of them (``katuna best`` lists all)."""
    title = "Pareto front (" + ", ".join(f"{o.metric} {o.direction}" for o in record.spec.objectives) + ")"
    if size is not None and size > FRONT_SHOWN:
        title += f": {FRONT_SHOWN} of its {size:,} trials, spread along it (katuna best lists all)"
    return markup(title)


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
