"""What the CLI prints about studies and trials: tables and summaries.

Every value that comes from a study or a trial is passed through :mod:`functions.terminal`,
so rich shows it as it is, never as markup or control sequences.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from functions.adapters.sqlite_store import SqliteStore
from functions.cli_trial_table import split_reason, trial_table
from functions.core.pareto import FRONT_SHOWN, best_trials, front_sample
from functions.core.records import FAIL, StudyRecord, TrialRecord
from functions.core.trial_cap import GRID
from functions.core.trial_query import TrialQuery
from functions.core.views import cost_text, figure, study_view
from functions.settings import Settings
from functions.terminal import markup, pairs, text


def print_result(console: Console, store: SqliteStore, record: StudyRecord, settings: Settings, db: str = "") -> None:
    """How a ``katuna run`` ended: the status and reason, the best trials (of several objectives,
    a sample of the Pareto front, as ``katuna show`` has it), where results are (``db``: the
    ``--db`` of a command it names, :func:`functions.cli_common.on_database`)."""
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
        _print_last_failure(console, store, record, db)
    console.print(f"Results: {markup(settings.db.resolve())} (study {markup(repr(record.name))})", highlight=False)
    console.print(f"Logs:    {markup(settings.logs.resolve() / record.log_folder)}", highlight=False)
    counts = view["counts"]
    ended = f", {counts['stopped']} stopped as the study ended" if counts["stopped"] else ""
    console.print(f"Trials: {view['trials']} ({counts['complete']} complete, "
                  f"{counts['failed']} failed, {counts['pruned']} pruned{ended})")


FAILURE_LINES = 12
"""The most lines of the last failed trial's reason a run's summary prints."""


def _print_last_failure(console: Console, store: SqliteStore, record: StudyRecord, db: str) -> None:
    """For a run with no completed trial, the reason of the failed trial that ended last, with
    the last lines it printed: the first thing to know, where a table of best trials is empty.
    It is the one the study's reason names (its latest), whatever their numbers' order."""
    query = TrialQuery(states=(FAIL,), sort="finishedAt", descending=True, limit=1)
    failed, count = store.query_trials(record.name, query)
    if not failed:
        console.print("No trial completed.")
        return
    own, notes = split_reason(failed[0].reason)
    first, *rest = own or ["(no reason recorded)"]
    console.print(text(f"No trial completed. The last of {count} failed, trial {failed[0].number}: {first}"),
                  highlight=False)
    for line in rest[-FAILURE_LINES:]:
        console.print(text(f"  {line}"), highlight=False)
    for note in notes:
        console.print(text(f"Before: {note}"), highlight=False)
    console.print(f"Every trial's reason: katuna trials {markup(record.name)} --json{markup(db)}",
                  highlight=False)


def _set_by(setting: str | None, grid: dict[str, int] | None) -> str:
    """What set a study's total, as ``katuna show`` notes it after the number: nothing for the
    study's own ``maxTrials``; the grid's size, less the points its warm start covers (the
    view's ``grid``)."""
    if setting is None:
        return ""
    if setting != GRID:
        return f" (set by {setting})"
    if grid is None or not grid["covered"]:
        return " (the grid's size)"
    return f" (the grid's {grid['points']:,} points less the {grid['covered']:,} its warm start covers)"


def warm_start_text(warm: dict[str, Any], grid: dict[str, int] | None = None) -> str:
    """``katuna show``'s line of what a study's warm start gave its sampler (its view's
    ``warmStart``): the known results in all, given and taken from the earlier study; for a grid
    study (its view's ``grid``), the points of the grid they cover, which its trials do not run."""
    parts = [f"{warm['given']:,} given"] if warm["given"] else []
    if warm["study"] is not None:
        taken = "taken when it starts" if warm["taken"] is None else f"{warm['taken']:,} taken"
        parts.append(f"{taken} from {warm['study']!r}")
    total = "" if warm["knownResults"] is None else f"{warm['knownResults']:,} known results "
    covers = "" if grid is None else f"; they cover {grid['covered']:,} of the grid's {grid['points']:,} points"
    return f"warm start: {total}({', '.join(parts)}), not counted as the study's trials{covers}"


def population_text(population: dict[str, int]) -> str:
    """The line of a population's progress (a study view's ``population``): its newest
    generation, and how many of that generation's trials succeeded of the ``n_population`` that
    start the next."""
    generation, asked = population["generation"], population["trials"]
    return (f"population: generation {generation}, {population['succeeded']} of its {asked} "
            f"trial{'' if asked == 1 else 's'} succeeded ({population['size']} succeeded start generation "
            f"{generation + 1})")


def print_study(console: Console, view: dict[str, Any], record: StudyRecord, front: list[TrialRecord]) -> None:
    """``katuna show``: status, reason, description, the cluster resource it follows (its study
    may be named ``<name>--<namespace>``), counts (the ``stopped`` as the study ended, where
    there are, apart from the pruned), best trial (or, with several objectives, the Pareto
    ``front``) and node pool of a study's view; the ``population`` of a study of
    population-based training."""
    _print_heading(console, view)
    _print_trial_counts(console, view)
    _print_reproducibility(console, view["reproducibility"])
    _print_how_trials_start(console, view)
    _print_best(console, view, record, front)
    if view["nodePool"]:
        _print_node_pool(console, view["nodePool"])


def _print_heading(console: Console, view: dict[str, Any]) -> None:
    """The study's name, status and reason, its description and the cluster resource it follows."""
    console.print(f"[bold]{markup(view['name'])}[/bold]  status: {view['status']}  "
                  f"reason: {markup(view['reason'] or '-')}")
    if view["description"]:
        console.print(text(view["description"]), highlight=False)
    follows = view.get("resource")
    if follows:
        console.print(text(f"resource: {follows['kind']} {follows['name']} in namespace {follows['namespace']}"),
                      highlight=False)


def _print_trial_counts(console: Console, view: dict[str, Any]) -> None:
    """The algorithm, the trials against their cap and by state, and what the waiting wait for."""
    counts = view["counts"]
    ended = f", stopped {counts['stopped']}" if counts["stopped"] else ""
    cap = f"{view['maxTrials']}{_set_by(view['maxTrialsSetBy'], view['grid'])}" if view["maxTrials"] is not None else "-"
    running = "interrupted" if view.get("interrupted") else "running"  # no process runs them: a run resumes them
    console.print(f"algorithm: {markup(view['algorithm'])}  trials: {view['trials']}/{cap} "
                  f"(complete {counts['complete']}, failed {counts['failed']}, pruned {counts['pruned']}"
                  f"{ended}, {running} {counts['running']}, waiting {counts['waiting']})")
    if view.get("waitingBecause"):
        console.print(text(f"waiting: {view['waitingBecause']}"), highlight=False)


def _print_reproducibility(console: Console, made: dict[str, Any]) -> None:
    """The seed and the releases a seeded study ran with (nothing for a study without a seed)."""
    if made["seed"] is None:
        return
    ahead = "" if made["lookahead"] is None else f"  look-ahead {made['lookahead']}"
    libraries = "".join(f"  {markup(name)} {markup(release)}" for name, release in (made["libraryVersions"] or {}).items())
    console.print(f"seed: {made['seed']}  katuna {markup(made['katunaVersion'])}  "
                  f"optuna {markup(made['optunaVersion'])}{libraries}{ahead}", highlight=False)


def _print_how_trials_start(console: Console, view: dict[str, Any]) -> None:
    """The population, warm start, initial trials and template source, those the study has."""
    if view.get("population") is not None:
        console.print(population_text(view["population"]), highlight=False)
    warm = view["warmStart"]
    if warm is not None:
        console.print(text(warm_start_text(warm, view["grid"])), highlight=False)
    initial = view.get("initialTrials")
    if initial is not None:
        console.print(f"initial trials: {initial['asked']:,} of the {initial['given']:,} given asked for, each before "
                      "the sampler's suggestions", highlight=False)
    if view["trialTemplateSource"]:
        console.print(text(f"trial template: read from {view['trialTemplateSource']} at submission"), highlight=False)


def _print_best(console: Console, view: dict[str, Any], record: StudyRecord, front: list[TrialRecord]) -> None:
    """The best trial, or the Pareto ``front`` of a study of several objectives."""
    best = view["best"]
    if isinstance(best, dict):
        given = f" (given: initialTrials[{best['initialTrial']}])" if "initialTrial" in best else ""
        console.print(text(f"best: trial {best['number']}{given} value {best['value']:.6g} params "
                           f"{pairs(best['params'])}"), highlight=False)
    elif record.spec.multi_objective:
        console.print(trial_table(record, front, title=front_title(record, view["frontSize"])) if front
                      else f"{front_title(record)}: no completed trial{'' if record.terminal else ' yet'}")


def _print_node_pool(console: Console, pool: dict[str, Any]) -> None:
    """The study's node pool, its hours against its bound, and its node-hours measured."""
    console.print(text(f"node pool: {pool['pool']} ({pool['provider']}, {pool['capacity']}, "
                       f"{', '.join(pool['machineTypes'])}, up to {pool['maxNodes']} nodes) {pool['phase']}"
                       f"{' and deleted' if pool['deleted'] else ''}: {figure(pool['hours'])} h, "
                       f"at most {figure(pool['maxNodeHours'])} node-hours"
                       + (f"; {pool['message']}" if pool["message"] else "")), highlight=False)
    if pool["nodeHours"] is not None:
        cost = cost_text(pool)
        nodes = f"{pool['nodesSeen']} node{'' if pool['nodesSeen'] == 1 else 's'}"
        console.print(f"node-hours: {figure(pool['nodeHours'])} measured on {nodes} "
                      f"({pool['nodesRunning']} up){', ' + cost if cost else ''}", highlight=False)
    elif pool["nodesProblem"]:
        console.print(text(f"node-hours: not measured: {pool['nodesProblem']}"), highlight=False)


def front_title(record: StudyRecord, size: int | None = None) -> str:
    """The title of a Pareto front's table: which way each objective is better, and, when it
    shows a sample of a front of ``size`` trials, how many of them (``katuna best`` lists all)."""
    title = "Pareto front (" + ", ".join(f"{o.metric} {o.direction}" for o in record.spec.objectives) + ")"
    if size is not None and size > FRONT_SHOWN:
        title += f": {FRONT_SHOWN} of its {size:,} trials, spread along it (katuna best lists all)"
    return markup(title)

