"""What the CLI prints about studies and trials: tables and summaries.

Every value that comes from a study or a trial is passed through :mod:`functions.terminal`,
so rich shows it as it is, never as markup or control sequences.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from functions.adapters.sqlite_store import SqliteStore
from functions.cli_trial_table import split_reason, trial_table
from functions.core.pareto import FRONT_SHOWN, best_trials, front_sample
from functions.core.records import FAIL, StudyRecord, TrialRecord
from functions.core.trial_cap import GRID
from functions.core.trial_query import TrialQuery
from functions.core.views import cost_text, figure, study_view
from functions.settings import Settings
from functions.terminal import markup, pairs, printable, text


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


STUDY_COLUMNS = ("name", "resource", "status", "algorithm", "trials", "best", "reason")
KEPT_FIRST = ("name", "best", "trials", "algorithm", "resource", "status")
"""Columns of ``katuna studies`` kept whole where the table is too wide for its terminal, first
the first (a study's name is what every other command takes, a number is read whole, then the
algorithm, the resource a study follows, then its status), as long as the others fit at their
least (:func:`_least`)."""
LEFT_OUT_FIRST = ("reason", "algorithm", "resource", "status", "best", "trials")
"""Columns of ``katuna studies`` left out, first the first, where the terminal is too narrow for
every column at its least: a column never splits a word (``algo``/``rith``/``m``, ``comp``/``lete``/
``d``), so in 40 columns the table shows fewer columns, and says which (``katuna show`` and
``--json`` give them all). The name is never left out: a name wider than the terminal alone is
the one word that folds."""
NUMBER_COLUMNS = ("trials", "best")
"""Columns of ``katuna studies`` right-aligned, as numbers are in the trial table and the
dashboard's list of studies (a multi-objective study's best, ``3 on the front``, too)."""


def studies_table(views: list[dict[str, Any]]) -> _StudiesTable:
    """``katuna studies``: one row per study view."""
    rows = []
    for view in views:
        best = view["best"]
        shown = f"{best['value']:.6g}" if isinstance(best, dict) else (f"{view['frontSize']} on the front" if best else "")
        rows.append([printable(cell) for cell in (view["name"], _follows(view.get("resource")), view["status"],
                                                  view["algorithm"], view["trials"], shown, _one_line(view["reason"]))])
    return _StudiesTable(rows)


def _one_line(reason: str | None) -> str:
    """A study's reason in one line, its lines and runs of spaces each one space: the table
    cuts it to its column (``katuna show`` and ``--json`` give it whole)."""
    return " ".join((reason or "").split())


def _follows(resource: dict[str, str] | None) -> str:
    """The cluster resource a study follows, as ``Experiment team-b/random`` (``-`` for none):
    Experiments of one name in two namespaces are studies ``random`` and ``random--team-b``."""
    return "-" if not resource else f"{resource['kind']} {resource['namespace']}/{resource['name']}"


class _StudiesTable:
    """The studies as a table laid out for the width it is printed in: where it is too narrow
    for every cell in one line, the columns of :data:`KEPT_FIRST` that fit stay whole and the
    others are narrowed, the widest first (most often the reason), never below their longest
    word, and where even that is too wide, columns are left out (:data:`LEFT_OUT_FIRST`). A
    reason stays on one line, cut to its column with an ellipsis (a failed study's can run to
    hundreds of characters); no other value is cut, a cell wider than its column wraps between
    its words onto the lines below."""

    def __init__(self, rows: list[list[str]]) -> None:
        self._rows = rows
        cells = {column: [row[index] for row in rows] for index, column in enumerate(STUDY_COLUMNS)}
        self._natural = {column: max(cell_len(text) for text in (column, *cells[column])) for column in STUDY_COLUMNS}
        self._least = {column: _least(column, cells[column]) for column in STUDY_COLUMNS}

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        room = options.max_width
        shown = self._shown(room)
        widths = self._widths(shown, room)
        table = Table()
        for column in shown:
            table.add_column(column, justify="right" if column in NUMBER_COLUMNS else "left", overflow="fold",
                             width=widths[column])
        for row in self._rows:
            cells = [cell for column, cell in zip(STUDY_COLUMNS, row, strict=True) if column in shown]
            last = Text(cells[-1], no_wrap=True, overflow="ellipsis") if shown[-1] == "reason" else Text(cells[-1])
            table.add_row(*map(Text, cells[:-1]), last)
        yield table
        left = [column for column in STUDY_COLUMNS if column not in shown and (column != "resource" or self._follows())]
        if left:
            yield Text(f"left out for width: {', '.join(left)}")

    def _follows(self) -> bool:
        return any(row[1] != "-" for row in self._rows)

    def _shown(self, room: int) -> list[str]:
        """The columns drawn: all, but the resource where no study follows one (each ``-``) and
        the table is too wide for ``room``, which it leaves to the reason; then, while they are
        too wide for ``room`` at their least, less of them (:data:`LEFT_OUT_FIRST`)."""
        shown = list(STUDY_COLUMNS)
        if _width(self._natural, shown) > room and not self._follows():
            shown.remove("resource")
        for column in LEFT_OUT_FIRST:
            if _width(self._least, shown) <= room:
                break
            if column in shown:
                shown.remove(column)
        return shown

    def _widths(self, shown: list[str], room: int) -> dict[str, int]:
        """Each shown column's width in ``room``: whole where all fit; else the columns of
        :data:`KEPT_FIRST` whole, in order, while the others fit at their least, and the others
        narrowed from their widest, the widest first, down to their least (a name wider than
        ``room`` alone, below it)."""
        widths = {column: self._natural[column] for column in shown}
        if _width(widths, shown) <= room:
            return widths
        whole: set[str] = set()
        for column in KEPT_FIRST:
            trial = {name: widths[name] if name in whole | {column} else self._least[name] for name in shown}
            if column in shown and _width(trial, shown) <= room:
                whole.add(column)
        narrowed = [column for column in shown if column not in whole]
        while (excess := _width(widths, shown) - room) > 0:
            wider = [column for column in narrowed if widths[column] > self._least[column]]
            if not wider:
                widths["name"] = max(1, widths["name"] - excess)
                break
            widest = max(wider, key=lambda column: widths[column])
            widths[widest] -= 1
        return widths


def _least(title: str, cells: list[str]) -> int:
    """The least width of a column: its longest word, of its ``title`` and ``cells``, so that
    it wraps between words and never inside one; a reason's, its title's (a reason is cut to
    one line, with an ellipsis)."""
    texts = (title,) if title == "reason" else (title, *cells)
    return max(cell_len(word) for text in texts for word in text.split() or [""])


def _width(widths: dict[str, int], shown: Iterable[str]) -> int:
    """The studies table's width with the ``shown`` columns at ``widths``: each column has a
    space of padding each side, and a border after it."""
    return 1 + sum(widths[name] + 3 for name in shown)


def front_title(record: StudyRecord, size: int | None = None) -> str:
    """The title of a Pareto front's table: which way each objective is better, and, when it
    shows a sample of a front of ``size`` trials, how many of them (``katuna best`` lists all)."""
    title = "Pareto front (" + ", ".join(f"{o.metric} {o.direction}" for o in record.spec.objectives) + ")"
    if size is not None and size > FRONT_SHOWN:
        title += f": {FRONT_SHOWN} of its {size:,} trials, spread along it (katuna best lists all)"
    return markup(title)

