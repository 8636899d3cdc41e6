"""What the CLI prints about studies and trials: tables and summaries.

Every value that comes from a study or a trial is passed through :mod:`functions.terminal`,
so rich shows it as it is, never as markup or control sequences.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from functions.adapters.sqlite_store import SqliteStore
from functions.core.records import StudyRecord, TrialRecord
from functions.core.views import best_trials, study_view
from functions.settings import Settings
from functions.terminal import markup, text


def print_result(console: Console, store: SqliteStore, record: StudyRecord, settings: Settings) -> None:
    """How a ``katuna run`` ended: the status and reason, the best trials, where results are."""
    view = study_view(store, record)
    console.print(f"Study [bold]{markup(record.name)}[/bold]: {record.status} ({markup(record.reason)})")
    console.print(trial_table(record, best_trials(store, record, limit=5), title="Best trials"))
    console.print(f"Results: {markup(settings.db.resolve())} (study {markup(repr(record.name))})", highlight=False)
    console.print(f"Logs:    {markup(settings.logs.resolve() / record.name)}", highlight=False)
    console.print(f"Trials: {view['trials']} ({view['counts']['complete']} complete, "
                  f"{view['counts']['failed']} failed, {view['counts']['pruned']} pruned)")


def print_study(console: Console, view: dict[str, Any]) -> None:
    """``katuna show``: status, reason, counts, best trial and node pool of a study's view."""
    counts = view["counts"]
    console.print(f"[bold]{markup(view['name'])}[/bold]  status: {view['status']}  "
                  f"reason: {markup(view['reason'] or '-')}")
    console.print(f"algorithm: {markup(view['algorithm'])}  trials: {view['trials']}/{view['maxTrials'] or '-'} "
                  f"(complete {counts['complete']}, failed {counts['failed']}, pruned {counts['pruned']}, "
                  f"running {counts['running']}, waiting {counts['waiting']})")
    made = view["reproducibility"]
    if made["seed"] is not None:
        console.print(f"seed: {made['seed']}  katuna {markup(made['katunaVersion'])}  "
                      f"optuna {markup(made['optunaVersion'])}", highlight=False)
    if view["trialTemplateSource"]:
        console.print(text(f"trial template: read from {view['trialTemplateSource']} at submission"), highlight=False)
    best = view["best"]
    if isinstance(best, dict):
        console.print(f"best: trial {best['number']} value {best['value']:.6g} params {markup(best['params'])}")
    pool = view["nodePool"]
    if pool:
        console.print(text(f"node pool: {pool['pool']} ({pool['provider']}, {pool['capacity']}, "
                           f"{', '.join(pool['machineTypes'])}, up to {pool['maxNodes']} nodes) {pool['phase']}"
                           f"{' and deleted' if pool['deleted'] else ''}: {pool['hours']:.2f} h, "
                           f"at most {pool['maxNodeHours']:.2f} node-hours"
                           + (f"; {pool['message']}" if pool["message"] else "")), highlight=False)
        if pool["nodeHours"] is not None:
            cost = f", cost {pool['cost']:.2f} at {pool['pricePerNodeHour']:g} a node-hour" if pool["cost"] is not None else ""
            console.print(f"node-hours: {pool['nodeHours']:.2f} measured on {pool['nodesSeen']} nodes "
                          f"({pool['nodesRunning']} up){cost}", highlight=False)
        elif pool["nodesProblem"]:
            console.print(text(f"node-hours: not measured: {pool['nodesProblem']}"), highlight=False)


def studies_table(views: list[dict[str, Any]]) -> Table:
    """``katuna studies``: one row per study view."""
    table = Table()
    for column in ("name", "status", "algorithm", "trials", "best", "reason"):
        table.add_column(column)
    for view in views:
        best = view["best"]
        shown = f"{best['value']:.6g}" if isinstance(best, dict) else (f"{len(best)} on the front" if best else "")
        table.add_row(*map(text, (view["name"], view["status"], view["algorithm"], view["trials"], shown,
                                  view["reason"] or "")))
    return table


def trial_table(record: StudyRecord, trials: list[TrialRecord], title: str | None = None) -> Table:
    """Trials with their values and parameters; without a title (all trials) with their state,
    and with the first line of their reasons when any has one."""
    spec = record.spec
    with_reason = any(t.reason for t in trials)
    with_state = title is None
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("trial", justify="right")
    if with_state:
        table.add_column("state")
    for objective in spec.objectives:
        table.add_column(text(objective.metric), justify="right")
    for parameter in spec.parameters:
        table.add_column(text(parameter.name), overflow="fold")
    if with_reason:
        table.add_column("reason", overflow="fold", max_width=50)
    for trial in trials:
        values: list[float | None] = [*trial.values] if trial.values else [None] * len(spec.objectives)
        row = [str(trial.number), *([trial.state] if with_state else []),
               *["" if v is None else f"{v:.6g}" for v in values],
               *[_short(trial.params.get(p.name)) for p in spec.parameters]]
        if with_reason:
            row.append(trial.reason.splitlines()[0] if trial.reason else "")
        table.add_row(*map(text, row))
    return table


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
